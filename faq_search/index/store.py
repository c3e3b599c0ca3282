"""Vector store: a FAISS inner-product index over unit vectors (= cosine).

Each stored vector is a *row*; several rows may belong to one FAQ entry (its
question paraphrases and its answer). Search returns entries, not rows: an
entry's score is the maximum over its rows, and an entry appears once.

Four index types: ``flat`` (exact, the default: right for FAQs up to some
hundred thousand rows), and for large collections the approximate ``hnsw``
(a graph, FAISS ``IndexHNSWFlat``) and ``ivf`` (inverted lists over k-means
cells, FAISS ``IndexIVFFlat``). Both keep the full float32 vectors, so scores
are exact cosines; what they approximate is *which* rows are looked at.
``ivfpq`` compresses (:mod:`.store_ivfpq`): FAISS's 4-bit fast-scan IVF-PQ codes
of :func:`pq_bytes` bytes (48 for 384 dimensions) find candidates, which 8-bit
scalar-quantized copies (a byte per dimension) rank again (``IndexRefine``),
so a row takes 440 bytes instead of 1,536 and ten million rows about 4.4 GB;
its scores are cosines of the 8-bit vectors (within about 0.005), and it keeps
no exact vectors, so an update re-embeds every text (the resume cache still works). Search
settings (``efSearch``, ``nprobe``) are part of FAISS's own file, so a loaded
bundle searches as it was built. benchmarks/bench_ann.py and
benchmarks/bench_scale.py measure build time, memory, recall@10 and latency.
"""

from __future__ import annotations

import contextlib
import enum
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faq_search.encoding.settings import choice
from faq_search.errors import BundleError, InputError
from faq_search.index.store_ivfpq import ADD_CHUNK, add_chunks, build_ivfpq, pq_bytes, train_ivfpq, train_positions

__all__ = [  # the ivfpq build functions live in store_ivfpq; callers import them from here too
    "ADD_CHUNK", "INDEX_TYPES", "AnnSettings", "Hit", "IndexType", "VectorStore", "add_chunks", "build_index",
    "one_thread", "pq_bytes", "search_index", "train_ivfpq", "train_positions",
]  # fmt: skip

if TYPE_CHECKING:  # imported where used: the CLI shows IndexType in --help without loading them
    import mmap

    import faiss
    import numpy as np


class IndexType(str, enum.Enum):
    """FAISS index layouts: exact, or approximate for large collections."""

    FLAT = "flat"  # exact: every row is scored (IndexFlatIP)
    HNSW = "hnsw"  # approximate: a neighbour graph (IndexHNSWFlat); fastest queries at a million rows
    IVF = "ivf"  # approximate: k-means cells, a few scanned per query (IndexIVFFlat); fastest to build
    IVFPQ = "ivfpq"  # approximate and compressed: k-means cells of product-quantized codes, re-ranked (IndexRefine)


INDEX_TYPES = tuple(kind.value for kind in IndexType)
"""Supported FAISS index layouts: ``flat`` is exact search, ``hnsw``, ``ivf`` and ``ivfpq`` approximate."""


@dataclass(frozen=True)
class AnnSettings:
    """Build and search settings of the approximate index types.

    HNSW: ``hnsw_m`` links per node, ``hnsw_ef_construction`` and
    ``hnsw_ef_search`` the candidate lists while building and searching.
    IVF: ``ivf_lists`` k-means cells (default about the square root of the row
    count), ``ivf_probe`` cells scanned per query (default a twelfth of
    them, at least 32, at most all), k-means trained on at most
    ``ivf_train_per_list`` rows per cell. On the clustered million vectors of
    benchmarks/bench_ann.py the defaults give HNSW recall@10 0.97 at about a
    millisecond per query, IVF 0.96 at about 7 ms with a build more than ten
    times faster (docs/performance.md). ivfpq (4-bit fast-scan codes): a sixth
    of the cells, at most 256, and a refine factor of 64, chosen from the
    recall/latency tables of benchmarks/bench_scale.py (docs/scale.md): at 10M
    rows past about 260 cells recall no longer grows while the scan does, and
    the refine factor buys the recall the 4-bit codes lose (0.70 -> 0.83 ->
    0.87 from 16 to 64 to 128 at 10M); 64 keeps ask's 100-row search (6,400
    candidates re-ranked) cheap at 1M.
    """

    hnsw_m: int = 16
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 256
    ivf_lists: int | None = None
    ivf_probe: int | None = None
    ivf_train_per_list: int = 64
    pq_train_rows: int = 65_536  # ivfpq: at least this many rows (or all) train the codebooks
    refine_factor: int = 64  # ivfpq: candidates from the codes per row asked for, re-ranked on 8-bit vectors
    pq_probe_share: int = 6  # ivfpq: a 1/pq_probe_share of the cells scanned per query (ivf_probe overrides)
    pq_max_probe: int = 256  # ivfpq: ... but at most this many cells
    pq_bits: int = 4  # ivfpq: 4 = fast-scan codes (IndexIVFPQFastScan), 8 = the former 8-bit codes (IndexIVFPQ)

    def lists_for(self, rows: int) -> int:
        """IVF cells for ``rows`` vectors: about sqrt(rows), with at least 39 training rows per cell."""
        if self.ivf_lists is not None:
            return max(1, min(self.ivf_lists, rows))
        return max(1, min(round(math.sqrt(rows)), rows // 39))

    def probe_for(self, lists: int, compressed: bool = False) -> int:
        """Cells scanned per query: ``ivf_probe``, else a twelfth (``ivf``) or a sixth (``ivfpq``, at most
        ``pq_max_probe``), at least 32.

        ivfpq scans more: its codes rank less exactly, so its true neighbours spread over more
        cells' candidates. But past a few hundred cells its recall stops growing while the scan
        grows with the rows (a sixth of 10M rows is 1.7M codes): there the codes' ranking, not the
        cells, limits it. Measured by benchmarks/bench_scale.py (recall@10 against exact search and
        latency per nprobe and refine factor, at 1M fused and at 10M for the store; docs/scale.md).
        """
        if self.ivf_probe is not None:
            return max(1, min(self.ivf_probe, lists))
        if compressed:
            return min(lists, max(32, min(lists // self.pq_probe_share, self.pq_max_probe)))
        return min(lists, max(32, lists // 12))


def build_index(
    vectors: np.ndarray, index_type: IndexType | str = IndexType.FLAT, settings: AnnSettings | None = None
) -> faiss.Index:
    """A FAISS inner-product index of ``index_type`` holding ``vectors`` (float32, unit length)."""
    import faiss
    import numpy as np

    kind = choice(IndexType, index_type, "index type")
    settings = settings or AnnSettings()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows, dimension = vectors.shape
    if kind is IndexType.HNSW:
        hnsw = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = settings.hnsw_ef_construction
        hnsw.hnsw.efSearch = settings.hnsw_ef_search
        hnsw.add(vectors)
        return hnsw
    if kind is IndexType.IVFPQ and rows > 0:
        return build_ivfpq(vectors, settings)
    if kind is IndexType.IVF and rows > 0:
        lists = settings.lists_for(rows)
        quantizer = faiss.IndexFlatIP(dimension)
        ivf = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
        sample = min(rows, lists * settings.ivf_train_per_list)
        chosen = np.random.default_rng(0).choice(rows, size=sample, replace=False) if sample < rows else slice(None)
        ivf.train(vectors[chosen])
        ivf.add(vectors)
        ivf.nprobe = settings.probe_for(lists)
        return ivf
    index = faiss.IndexFlatIP(dimension)
    index.add(vectors)
    return index


def search_index(index: faiss.Index, queries: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``index.search``, on one OpenMP thread for a single query.

    FAISS splits a lone query's flat scan over its threads, which costs more
    than it gains: one thread is two to three times faster here at 10k to 300k
    rows (benchmarks/bench_query.py). The thread count is OpenMP's per-thread
    setting, restored afterwards, so other threads' searches are unaffected.
    """

    if len(queries) != 1:
        return index.search(queries, k, params=params)
    with one_thread():
        return index.search(queries, k, params=params)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread (a per-thread setting, restored afterwards)."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


@dataclass(frozen=True)
class Hit:
    """One entry found by the store: its position in the entry list, score and best row."""

    entry: int
    score: float
    row: int


class VectorStore:
    """Rows of unit vectors, each tagged with the entry it belongs to and the field it embeds."""

    def __init__(self, index: faiss.Index, row_entry: np.ndarray, row_field: Sequence[str]) -> None:
        import numpy as np

        if index.ntotal != len(row_entry) or len(row_entry) != len(row_field):
            raise BundleError(f"vector count {index.ntotal} does not match {len(row_entry)} rows; rebuild the index")
        from faq_search.index.columnar import LazyColumn

        self.index = index
        self.row_entry = np.asarray(row_entry, dtype=np.int64)  # a mapped int64 column stays mapped
        self.row_field: Sequence[str] = row_field if isinstance(row_field, LazyColumn) else list(row_field)
        counts = np.bincount(self.row_entry) if len(self.row_entry) else np.zeros(0, dtype=np.int64)
        self.entry_count = int(counts.size)
        self.max_rows_per_entry = int(counts.max()) if counts.size else 0
        self._rows_by_entry: tuple[np.ndarray, np.ndarray] | None = None  # (rows sorted by entry, starts)
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        row_entry: Sequence[int],
        row_field: Sequence[str],
        index_type: IndexType | str = IndexType.FLAT,
        settings: AnnSettings | None = None,
    ) -> VectorStore:
        """Index ``vectors`` (float32, unit length) exactly as given, in a FAISS index of ``index_type``."""
        import numpy as np

        index = build_index(vectors, index_type, settings)
        return cls(index, np.asarray(row_entry, dtype=np.int64), row_field)

    @property
    def index_type(self) -> IndexType:
        """The layout, read from the FAISS index itself."""
        import faiss

        kind = type(faiss.downcast_index(self.index)).__name__
        named = {"IndexHNSWFlat": IndexType.HNSW, "IndexIVFFlat": IndexType.IVF, "IndexRefine": IndexType.IVFPQ}
        return named.get(kind, IndexType.FLAT)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[Hit]]:
        """The ``k`` best entries for each query row, best first, one hit per entry.

        Rows are fetched in growing rounds until ``k`` distinct entries are
        seen: the first time an entry shows up in a score-sorted row list is its
        maximum, so the result is exact for an exact index. ``allowed`` (a
        boolean mask over entries, from a filter) restricts the search to those
        entries' rows before ranking (:mod:`.filtered_search`).
        """
        import numpy as np

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise InputError(f"query vectors must be [n, {self.dimension}], got {list(queries.shape)}")
        if allowed is not None:
            from faq_search.index.filtered_search import search_allowed

            return search_allowed(self, queries, k, np.asarray(allowed, dtype=bool))
        k = min(k, self.entry_count)
        if k <= 0 or len(self) == 0:
            return [[] for _ in range(len(queries))]
        fetch = min(len(self), k * self.max_rows_per_entry)
        while True:
            scores, rows = search_index(self.index, queries, fetch)
            results = [self.entry_hits(s, r, k) for s, r in zip(scores, rows, strict=True)]
            if fetch >= len(self) or all(len(hits) >= k for hits in results):
                return results
            fetch = min(len(self), fetch * 4)

    def entry_scores(self, query: np.ndarray, entries: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """One query's score of each of ``entries`` (its best row) and that row, computed directly.

        For candidates the index search did not return (a lexical match the
        dense search missed): the score is what a search would report, the
        cosine of the stored row (decoded, for ``ivfpq``).
        """
        import numpy as np

        order, starts = self._entry_rows()
        cosine = np.full(len(entries), -1.0)
        best = np.full(len(entries), -1, dtype=np.int64)
        for position, entry in enumerate(entries):
            rows = order[starts[entry] : starts[entry + 1]]
            if not len(rows):
                continue
            vectors = self.index.reconstruct_batch(rows)
            scores = vectors @ np.asarray(query, dtype=np.float32)
            top = int(np.argmax(scores))
            cosine[position], best[position] = float(scores[top]), int(rows[top])
        return cosine, best

    def _entry_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Store rows grouped by entry, and where each entry's group starts (built once; IVF gets a direct map)."""
        import faiss
        import numpy as np

        if self._rows_by_entry is None:
            with self._lock:
                if self._rows_by_entry is None:
                    if self.index_type is IndexType.IVF:  # ivfpq reconstructs from its 8-bit vectors
                        faiss.extract_index_ivf(self.index).make_direct_map()
                    order = np.argsort(self.row_entry, kind="stable")
                    starts = np.searchsorted(self.row_entry[order], np.arange(self.entry_count + 1))
                    self._rows_by_entry = (order, starts)
        return self._rows_by_entry

    def entry_hits(self, scores: np.ndarray, rows: np.ndarray, k: int) -> list[Hit]:
        """Score-sorted rows (``-1`` ends them) to the ``k`` best distinct entries, each at its first (best) row."""
        hits: list[Hit] = []
        seen: set[int] = set()
        for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
            if row < 0:
                break
            entry = int(self.row_entry[row])
            if entry in seen:
                continue
            seen.add(entry)
            hits.append(Hit(entry=entry, score=float(score), row=int(row)))
            if len(hits) == k:
                break
        return hits

    def to_bytes(self) -> bytes:
        """The FAISS index in FAISS's own file format."""
        import faiss

        return bytes(faiss.serialize_index(self.index).tobytes())

    @staticmethod
    def index_from_bytes(data: bytes | mmap.mmap) -> faiss.Index:
        """The FAISS index in ``data`` (FAISS's file format), read in 16 MiB steps.

        ``faiss.deserialize_index`` first copies the whole file into a FAISS byte vector and then
        reads the index out of that copy: twice the index in memory at the peak, and a second
        pass. Reading through a callback copies each step once, straight into the index.
        """
        import faiss

        view = memoryview(data)
        position = 0

        def read(size: int) -> bytes:
            nonlocal position
            chunk = bytes(view[position : position + size])
            position += len(chunk)
            return chunk

        try:
            return faiss.read_index(faiss.PyCallbackIOReader(read, 1 << 24))  # type: ignore[attr-defined]
        except RuntimeError as exc:
            raise BundleError(f"the FAISS index cannot be read ({str(exc).splitlines()[0]}); rebuild it") from None
        finally:
            view.release()
