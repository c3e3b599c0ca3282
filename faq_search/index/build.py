"""Building an index: which texts to encode, which vectors to reuse or resume, and encoding the rest.

A vector is a function of its text and the encoder (identity and precision),
so every row is keyed by :func:`~faq_search.index.rows.text_digest` of its
text. A build encodes each distinct text once, takes the vector of every text
an earlier index of the same encoder embedded (``reuse``), and of every text a
killed run had already written to its resume cache (:mod:`faq_search.index.cache`).
Texts are encoded in groups of equal token length, so no text is ever padded
and its vector does not depend on which other texts were encoded with it: an
updated index equals a full rebuild, in bf16 too.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.protocol import Encoder
from faq_search.encoding.settings import EncoderSettings, Fields, choice
from faq_search.errors import InputError
from faq_search.index.columns import ColumnSpec, FilterColumns, build_columns
from faq_search.index.lexical import HybridSettings
from faq_search.index.manifest import IndexManifest
from faq_search.index.records import BuildReport, compare_entries
from faq_search.index.rows import ANSWER, QUESTION, check_entries, embedding_rows, text_digest
from faq_search.index.store import IndexType, VectorStore
from faq_search.progress import progress_bar

if TYPE_CHECKING:
    from faq_search.index.cache import EmbeddingCache
    from faq_search.index.faq_index import FaqIndex

CACHE_CHUNK = 128
"""Most texts per encoder call, and so between two writes to a resume cache: the most work a kill can lose.

Every build cuts its length groups into pieces of this size, with or without a cache and on any engine, so
the encoder sees the same calls (the same batches) everywhere: in bf16 a vector does depend on how many texts
share its forward pass, and equal calls make a local and a Ray build byte-identical.
"""


class EncodeEngine(Protocol):
    """Where the encoder calls of a build run: in this process (:class:`LocalEngine`) or on a cluster.

    ``encode_units`` gets the texts of each encoder call (a *unit*) and yields ``(unit index, vectors)``
    as units finish, in any order: the caller places vectors by unit, never by arrival.
    """

    def encode_units(self, encoder: Encoder, units: Sequence[Sequence[str]]) -> Iterator[tuple[int, np.ndarray]]: ...


class LocalEngine:
    """Encoder calls in this process, one after the other, with the encoder the build was given."""

    def encode_units(self, encoder: Encoder, units: Sequence[Sequence[str]]) -> Iterator[tuple[int, np.ndarray]]:
        for position, texts in enumerate(units):
            yield position, encoder.encode(list(texts))


_EXACT_STORAGE = ("IndexFlat", "IndexFlatIP", "IndexFlatL2", "IndexHNSWFlat", "IndexIVFFlat")
"""FAISS index classes that give back stored vectors exactly, so they can be reused."""


@dataclass(frozen=True)
class BuildOptions:
    """How an FAQ becomes an index: the one list of build options every way in takes.

    :meth:`FaqIndex.build <faq_search.index.faq_index.FaqIndex.build>`,
    :func:`~faq_search.index.update.update_bundle`, :func:`~faq_search.index.ray_build.index_on_ray`
    and ``faq-search index`` all take this record (the library calls also take
    its fields as keywords).
    """

    settings: EncoderSettings | None = None
    """The encoder loaded when the build is not given one (None: the default model, layer -2 mean)."""
    fields: Fields | str = Fields.QUESTION_ANSWER
    """What is embedded: answers only, or questions too (where the FAQ has them)."""
    hybrid: HybridSettings | None = None
    """BM25 evidence (None: on, with the default settings; ``HybridSettings(weight=0)`` is dense only)."""
    index_type: IndexType | str = IndexType.FLAT
    """The vector store: flat (exact), hnsw, ivf or ivfpq."""
    batch_size: int = 64
    threads: int | None = None
    """Torch threads of the loaded encoder (None: every core)."""
    progress: bool = False
    """Show a progress bar while encoding."""
    engine: EncodeEngine | None = None
    """Where the encoder calls run (None: this process; a :class:`~faq_search.index.ray_build.RayEngine` spreads
    them over a Ray cluster)."""
    metadata_columns: Sequence[str | ColumnSpec] | None = None
    """Columns ``ask(..., where=...)`` can filter on, as ``"name"`` or ``"name:type"`` (see
    :mod:`faq_search.index.columns`). None: none for a new index, the bundle's own for ``update_bundle``."""

    def revised(self, **changes: object) -> BuildOptions:
        """These options with some fields changed (TypeError naming an unknown one)."""
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[arg-type]

    def load_encoder(self) -> Encoder:
        """The encoder these options describe (loaded now)."""
        return BertEncoder(self.settings, batch_size=self.batch_size, threads=self.threads)


@dataclass(frozen=True)
class Built:
    """Everything a new index is made of, and the report of how it was made."""

    entries: list[FaqEntry]
    store: VectorStore
    manifest: IndexManifest
    row_digests: list[str]
    encoder: Encoder
    report: BuildReport
    columns: FilterColumns | None = None


def build_index(
    source: str | Path | Sequence[FaqEntry],
    options: BuildOptions,
    *,
    encoder: Encoder | None = None,
    reuse: FaqIndex | None = None,
    cache: EmbeddingCache | None = None,
) -> Built:
    """Embed an FAQ (see :meth:`faq_search.index.faq_index.FaqIndex.build`, which documents the arguments)."""
    started = time.perf_counter()
    entries, source_name = _read_source(source)
    fields = choice(Fields, options.fields, "fields")
    kind = choice(IndexType, options.index_type, "index type")
    hybrid = HybridSettings() if options.hybrid is None else options.hybrid
    specs = [c if isinstance(c, ColumnSpec) else ColumnSpec.parse(c) for c in options.metadata_columns or ()]
    columns = build_columns(entries, specs) if specs else None  # before encoding: a bad column fails at once
    if encoder is None:
        encoder = options.load_encoder()
    precision = encoder.precision.value

    texts, row_entry, row_field = embedding_rows(entries, fields, encoder.windows)
    digests = [text_digest(t) for t in texts]
    where: dict[str, int] = {}
    unique: list[str] = []
    for text, digest in zip(texts, digests, strict=True):
        if digest not in where:  # identical texts (a question shared by answers) embed once
            where[digest] = len(unique)
            unique.append(text)
    known, reuse_note = reusable_vectors(reuse, encoder, precision)
    vectors, counts = embed_unique(encoder, unique, list(where), known, cache, options.progress, options.engine)
    store = VectorStore.build(vectors[[where[d] for d in digests]], row_entry, row_field, kind)
    manifest = IndexManifest(
        identity=encoder.identity,
        settings=encoder.settings,
        precision=precision,
        entry_count=len(entries),
        vector_count=len(store),
        fields=tuple(f for f in (QUESTION, ANSWER) if f in set(row_field)),
        index_type=kind,
        hybrid=hybrid if hybrid.enabled else HybridSettings(weight=0.0),
        source=source_name,
    )
    report = BuildReport(
        entries=len(entries),
        vectors=len(store),
        unique_texts=len(unique),
        seconds=time.perf_counter() - started,
        fields=manifest.fields,
        encoded=counts[0],
        reused=counts[1],
        resumed=counts[2],
        changes=None if reuse is None else compare_entries(reuse.entries, entries),
        reuse_note=reuse_note,
    )
    return Built(entries, store, manifest, digests, encoder, report, columns)


def _read_source(source: str | Path | Sequence[FaqEntry]) -> tuple[list[FaqEntry], str | None]:
    """The entries (a file is read with default columns) and the file's name, checked for text and emptiness."""
    if isinstance(source, (str, Path)):
        entries, name = read_faq(source), Path(source).name
    else:
        entries, name = list(source), None
    if not entries:
        raise InputError("the FAQ has no entries; add at least one answer")
    check_entries(entries)
    return entries, name


def stored_vectors(store: VectorStore) -> np.ndarray | None:
    """All stored vectors, in row order, when the FAISS index keeps them exactly; else None."""
    import faiss

    try:
        index = faiss.downcast_index(store.index)
        if type(index).__name__ not in _EXACT_STORAGE:
            return None
        return np.asarray(index.reconstruct_n(0, len(store)), dtype=np.float32)
    except (RuntimeError, AttributeError, TypeError):
        return None


def reusable_vectors(
    previous: FaqIndex | None, encoder: Encoder, precision: str
) -> tuple[dict[str, np.ndarray], str | None]:
    """``digest -> vector`` from an earlier index built by the same encoder, or why there is none."""
    if previous is None:
        return {}, None
    differences = previous.identity.differences(encoder.identity)
    if differences:
        return {}, "the encoder settings changed (" + "; ".join(differences) + "); every text is embedded again"
    if previous.manifest.precision != precision:
        return {}, (
            f"the previous index was computed in {previous.manifest.precision}, this run in {precision}; "
            "every text is embedded again"
        )
    vectors = previous.stored_vectors()
    if vectors is None:
        return {}, f"the previous index ({previous.manifest.index_type.value}) does not keep exact vectors to reuse"
    digests = previous.text_digests(encoder)
    if digests is None:
        return {}, "the previous index's rows do not match its entries; every text is embedded again"
    return {digest: vectors[row] for row, digest in enumerate(digests)}, None


def embed_unique(
    encoder: Encoder,
    texts: Sequence[str],
    digests: Sequence[str],
    known: Mapping[str, np.ndarray],
    cache: EmbeddingCache | None,
    progress: bool,
    engine: EncodeEngine | None = None,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Vectors for distinct texts: known ones reused, cached ones resumed, the rest encoded.

    Returns the vectors and (encoded, reused, resumed) counts. What is encoded
    goes to the encoder in groups of equal token length (no padding, so a
    vector depends on its text only), at most :data:`CACHE_CHUNK` per call, run
    by ``engine`` (this process by default); with a cache, vectors go to the
    cache every :data:`CACHE_CHUNK` texts, as they arrive.
    """
    out = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    cached = cache.load() if cache is not None else {}
    todo: list[int] = []
    reused = resumed = 0
    for position, digest in enumerate(digests):
        if digest in known:
            out[position] = known[digest]
            reused += 1
        elif digest in cached:
            out[position] = cached[digest]
            resumed += 1
        else:
            todo.append(position)
    bar = progress_bar(len(todo), progress)
    pending: list[int] = []
    units = [[todo[i] for i in group] for group in encode_groups(encoder, [texts[i] for i in todo], CACHE_CHUNK)]
    runner = engine if engine is not None else LocalEngine()
    try:
        for unit, vectors in runner.encode_units(encoder, [[texts[i] for i in positions] for positions in units]):
            positions = units[unit]
            out[positions] = vectors
            bar.update(len(positions))
            if cache is not None:
                pending += positions
                if len(pending) >= CACHE_CHUNK:
                    cache.put([digests[i] for i in pending], out[pending])
                    pending = []
        if cache is not None and pending:
            cache.put([digests[i] for i in pending], out[pending])
    finally:
        bar.close()
    return out, (len(todo), reused, resumed)


def encode_groups(encoder: Encoder, texts: Sequence[str], piece: int | None) -> list[list[int]]:
    """Positions of ``texts`` in encoder calls: equal token length per call where the encoder measures texts
    (no padding, so a vector never depends on its batch), at most ``piece`` each: lengths ``[5, 3, 5]`` ->
    ``[[1], [0, 2]]``."""
    if not texts:
        return []
    groups: list[list[int]]
    if encoder.windows is not None:
        by_length: dict[int, list[int]] = defaultdict(list)
        for position, length in enumerate(encoder.windows.token_lengths(texts)):
            by_length[length].append(position)
        groups = [by_length[n] for n in sorted(by_length)]
    else:
        groups = [list(range(len(texts)))]
    if piece is None:
        return groups
    return [group[start : start + piece] for group in groups for start in range(0, len(group), piece)]
