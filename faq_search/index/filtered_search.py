"""A store search restricted to the rows of some entries (a metadata filter's mask), exact where it must be.

:meth:`faq_search.index.store.VectorStore.search` hands a search with an
entry mask here. Small filters are scored row by row from the stored
vectors; larger ones go through the FAISS index with an ID selector (widened
for approximate indexes), with an exact fallback, so ``k`` entries come back
whenever ``k`` pass the filter (benchmarks/bench_filters.py measures it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from faq_search.index.store import Hit, IndexType, VectorStore, one_thread, search_index

if TYPE_CHECKING:
    import faiss
    import numpy as np

FILTER_EXACT_ROWS = 8_192
"""A filter keeping at most this many rows has them scored exactly, one by one (measured at 100k rows of 384
dimensions: 5,000 rows in about 0.5 ms, as fast as an unfiltered HNSW search; 20,000 rows already 20 times
slower, as they no longer fit the CPU cache, while HNSW skipping the other rows stays near 1 ms)."""


def selector_search(index: faiss.Index, allowed: np.ndarray, share: float, fetch: int, exact: bool) -> tuple[Any, Any]:
    """The FAISS index to search and parameters that skip rows outside ``allowed``.

    ``exact``: an HNSW index's flat storage, an IVF index with every cell
    scanned; otherwise the approximate search widened by ``1 / share``.
    """
    import faiss
    import numpy as np

    lib: Any = faiss  # its type stubs lack the search parameters' selector
    bits = np.packbits(allowed, bitorder="little")
    selector = lib.IDSelectorBitmap(len(allowed), lib.swig_ptr(bits))
    index = faiss.downcast_index(index)
    widen = 1.0 / max(share, 1e-9)
    params: Any
    if isinstance(index, faiss.IndexHNSW) and exact:
        index = faiss.downcast_index(index.storage)
        params = lib.SearchParameters(sel=selector)
    elif isinstance(index, faiss.IndexHNSW):
        params = lib.SearchParametersHNSW(sel=selector)
        params.efSearch = int(min(max(fetch, index.hnsw.efSearch * widen), 1 << 15))
    elif isinstance(index, faiss.IndexIVF):
        params = lib.SearchParametersIVF(sel=selector)
        probe = index.nlist if exact else math.ceil(index.nprobe * widen)
        params.nprobe = int(min(index.nlist, max(index.nprobe, probe)))
    elif isinstance(index, faiss.IndexRefine):  # ivfpq: the selector goes to its IVF-PQ base, which finds candidates
        base = faiss.extract_index_ivf(index)
        inner = lib.SearchParametersIVF(sel=selector)
        probe = base.nlist if exact else math.ceil(base.nprobe * widen)
        inner.nprobe = int(min(base.nlist, max(base.nprobe, probe)))
        params = lib.IndexRefineSearchParameters(sel=selector, base_index_params=inner)
        params.k_factor = index.k_factor
        params.kept_alive_inner = inner
    else:
        params = lib.SearchParameters(sel=selector)
    params.kept_alive = (bits, selector)  # the selector reads these bytes: keep them as long as the parameters
    return index, params


def search_allowed(store: VectorStore, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[list[Hit]]:
    """``store.search`` over the rows of the ``allowed`` entries only.

    At most :data:`FILTER_EXACT_ROWS` allowed rows are scored exactly, one
    by one from the stored vectors (FAISS's by-index inner products; an
    IVF index, which has no such view, scans every cell skipping the other
    rows), which costs less than an unfiltered search. More rows: the
    index's own search skips the other rows with a FAISS ID selector, a
    flat index exactly, an approximate one with its candidate list (HNSW
    ``efSearch``) or scanned cells (IVF ``nprobe``) widened by the inverse
    of the share kept; a question that still finds fewer than ``k``
    entries falls back to the exact scan, so k entries come back whenever
    k pass the filter.
    """
    import numpy as np

    k = min(k, int(allowed[: store.entry_count].sum()))
    if k <= 0:
        return [[] for _ in range(len(queries))]
    rows_mask = allowed[store.row_entry]
    rows = int(rows_mask.sum())
    matrix = vector_view(store)
    if rows <= FILTER_EXACT_ROWS and matrix is not None:
        return _by_rows(store, queries, k, np.flatnonzero(rows_mask), matrix)
    exact = store.index_type is IndexType.FLAT or rows <= FILTER_EXACT_ROWS
    share = rows / max(len(store), 1)
    results = _rounds(store, queries, k, rows_mask, rows, share, exact)
    short = [q for q, hits in enumerate(results) if len(hits) < k]
    if short and not exact:
        again = (
            _by_rows(store, queries[short], k, np.flatnonzero(rows_mask), matrix)
            if matrix is not None
            else _rounds(store, queries[short], k, rows_mask, rows, share, True)
        )
        for q, hits in zip(short, again, strict=True):
            results[q] = hits
    return results


def _rounds(
    store: VectorStore, queries: np.ndarray, k: int, allowed: np.ndarray, rows: int, share: float, exact: bool
) -> list[list[Hit]]:
    """Selector searches in growing rounds until each query has ``k`` entries or every allowed row is seen."""
    fetch = min(rows, k * store.max_rows_per_entry)
    while True:
        index, params = selector_search(store.index, allowed, share, fetch, exact)
        scores, found = search_index(index, queries, fetch, params)
        results = [store.entry_hits(s, r, k) for s, r in zip(scores, found, strict=True)]
        if fetch >= rows or all(len(hits) >= k for hits in results):
            return results
        fetch = min(rows, fetch * 4)


def _by_rows(store: VectorStore, queries: np.ndarray, k: int, rows: np.ndarray, matrix: np.ndarray) -> list[list[Hit]]:
    """Every one of ``rows`` scored exactly from the stored vectors, best first per query."""
    import faiss
    import numpy as np

    ids = np.ascontiguousarray(rows, dtype=np.int64)
    scores = np.empty(len(ids), dtype=np.float32)
    out: list[list[Hit]] = []
    for query in queries:
        with one_thread():  # its OpenMP loop is over queries: one query on many threads only waits for them
            faiss.fvec_inner_products_by_idx(  # type: ignore[attr-defined]
                faiss.swig_ptr(scores), faiss.swig_ptr(query), faiss.swig_ptr(matrix), faiss.swig_ptr(ids),
                store.dimension, 1, len(ids),
            )  # fmt: skip
        fetch = min(len(ids), k * store.max_rows_per_entry)
        while True:
            top = np.argpartition(-scores, fetch - 1)[:fetch] if fetch < len(ids) else np.arange(len(ids))
            top = top[np.lexsort((ids[top], -scores[top]))]
            hits = store.entry_hits(scores[top], ids[top], k)
            if len(hits) >= k or fetch >= len(ids):
                break
            fetch = min(len(ids), fetch * 4)
        out.append(hits)
    return out


def vector_view(store: VectorStore) -> np.ndarray | None:
    """The stored vectors as one float32 array without a copy (flat and HNSW indexes); None for IVF.

    It reads the FAISS index's memory: valid while the store's index lives (keep a reference to it).
    """
    import faiss
    import numpy as np

    index = faiss.downcast_index(store.index)
    if isinstance(index, faiss.IndexHNSW):
        index = faiss.downcast_index(index.storage)
    if not isinstance(index, faiss.IndexFlat) or len(store) == 0:
        return None
    data = faiss.rev_swig_ptr(index.get_xb(), len(store) * store.dimension)
    return np.asarray(data).reshape(len(store), store.dimension)
