"""Scoring: exact dense scores, the best row per entry, top-k, and fusion with BM25.

One module for every way an index ranks: :func:`dense_search` (the store's own
search, exact or approximate) and :func:`hybrid_search` (dense cosines fused
with BM25: exact over every entry for a flat index, over a dense candidate
pool for an approximate one). An entry may own several rows (questions,
answer, windows of a long answer); its dense score is always the best of
them (:func:`best_row_scores`), so an entry is ranked once.

What it is not: the place that decides *what* is embedded (:mod:`.rows`) or
how scores are calibrated into a threshold (``faq_search.quality``).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from faq_search.index.lexical import fuse
from faq_search.index.records import Ranked
from faq_search.index.store import VectorStore

ANN_POOL = 100
"""Dense candidates fused with BM25 per question on an approximate index (at least ``k``)."""


def entry_starts(sorted_row_entry: np.ndarray, entry_count: int) -> np.ndarray:
    """Where each entry's rows begin in a row list sorted by entry: ``[0, 0, 1, 2, 2] , 3 -> [0, 2, 3]``."""
    return np.searchsorted(sorted_row_entry, np.arange(entry_count))


def best_row_scores(row_scores: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per entry, the best of its rows' scores: ``[[0.2, 0.9, 0.4]], starts [0, 2] -> [[0.9, 0.4]]``.

    ``row_scores`` is ``[queries, rows]`` with the rows grouped by entry and
    ``starts`` where each entry's group begins (:func:`entry_starts`). Every
    entry must own at least one row (an FAQ entry's answer always is one).
    """
    return np.maximum.reduceat(row_scores, starts, axis=1)


@dataclass(frozen=True)
class DenseLayout:
    """A flat store's vectors grouped by entry, for exact scoring of every entry at once.

    Entry ``e``'s rows are ``matrix[starts[e]:ends[e]]``, which are store rows
    ``order[starts[e]:ends[e]]``.
    """

    matrix: np.ndarray  # [rows, dimension] float32, C-contiguous, rows grouped by entry
    order: np.ndarray  # store row of each matrix row
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, store: VectorStore, entry_count: int) -> DenseLayout:
        matrix = store.index.reconstruct_n(0, len(store))
        order = np.argsort(store.row_entry, kind="stable")
        starts = entry_starts(store.row_entry[order], entry_count)
        ends = np.append(starts[1:], len(order))
        return cls(np.ascontiguousarray(matrix[order]), order, starts, ends)

    def scores(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosines: ``(entry_scores [q, entries], row_scores [q, rows in layout order])``."""
        row_scores = exact_scores(vectors, self.matrix)
        return best_row_scores(row_scores, self.starts), row_scores

    def best_row(self, row_scores: np.ndarray, entry: int) -> int:
        """The store row of ``entry`` that scored best in one question's ``row_scores``."""
        start = int(self.starts[entry])
        return int(self.order[start + int(np.argmax(row_scores[start : self.ends[entry]]))])


def dense_search(store: VectorStore, vectors: np.ndarray, k: int) -> list[list[Ranked]]:
    """The store's own search (exact or approximate), cosine only."""
    return [
        [Ranked(hit.entry, hit.score, hit.score, None, hit.row) for hit in hits] for hits in store.search(vectors, k)
    ]


def hybrid_search(
    vectors: np.ndarray, lexical: np.ndarray, weight: float, k: int, layout: DenseLayout | None, store: VectorStore
) -> list[list[Ranked]]:
    """Dense cosines fused with BM25 scores (``lexical`` [q, entries]).

    With a ``layout`` (a flat index) every entry is scored exactly; without
    one, a pool of the store's :data:`ANN_POOL` best entries per question is.
    """
    if layout is None:
        return _fused_pools(vectors, lexical, weight, k, store)
    dense, row_scores = layout.scores(vectors)
    fused = fuse(dense, lexical, weight)
    out: list[list[Ranked]] = []
    for q in range(len(vectors)):
        out.append(
            [
                Ranked(
                    entry,
                    float(fused[q, entry]),
                    float(dense[q, entry]),
                    float(lexical[q, entry]),
                    layout.best_row(row_scores[q], entry),
                )
                for entry in top_k(fused[q], k).tolist()
            ]
        )
    return out


def _fused_pools(
    vectors: np.ndarray, lexical: np.ndarray, weight: float, k: int, store: VectorStore
) -> list[list[Ranked]]:
    out: list[list[Ranked]] = []
    for q, pool in enumerate(store.search(vectors, max(k, ANN_POOL))):
        entries = np.array([hit.entry for hit in pool], dtype=np.int64)
        dense_pool = np.array([[hit.score for hit in pool]], dtype=np.float32)
        fused = fuse(dense_pool, lexical[q : q + 1, entries], weight)[0]
        out.append(
            [
                Ranked(pool[i].entry, float(fused[i]), pool[i].score, float(lexical[q, pool[i].entry]), pool[i].row)
                for i in top_k(fused, k)
            ]
        )
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index: ``[1, 3, 3, 2], 2 -> [1, 2]``."""
    k = min(k, len(scores))
    kth = np.partition(-scores, k - 1)[k - 1]
    candidates = np.flatnonzero(-scores <= kth)  # every entry tied with the k-th is a candidate
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def exact_scores(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``vectors @ matrix.T`` (float32), the fastest way measured here for the batch size.

    A few queries: FAISS's own inner-product kernel, one query at a time on
    the calling thread (1.2 ms for 24,645 rows, against 2.7 ms for numpy on
    one BLAS thread). Larger batches: torch's product, on the encoder's own
    thread pool. A threaded numpy product would start OpenBLAS's pool, whose
    threads keep spinning after the product and take the CPUs from the
    encoder's threads (measured: a 32-question batch then encodes at half speed).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if len(vectors) < 16:
        out = np.empty((len(vectors), len(matrix)), dtype=np.float32)
        for row in range(len(vectors)):
            inner_products(out[row], vectors[row], matrix)
        return out
    if "torch" not in sys.modules:
        with _blas_threads(1):
            return vectors @ matrix.T
    import torch

    return (torch.from_numpy(np.ascontiguousarray(vectors)) @ torch.from_numpy(matrix).T).numpy()


def inner_products(out: np.ndarray, vector: np.ndarray, matrix: np.ndarray) -> None:
    """``out[:] = matrix @ vector`` with FAISS's kernel (releases the GIL); all float32 and C-contiguous."""
    import faiss

    faiss.fvec_inner_products_ny(  # type: ignore[attr-defined]
        faiss.swig_ptr(out), faiss.swig_ptr(vector), faiss.swig_ptr(matrix), matrix.shape[1], matrix.shape[0]
    )


def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _blas_threads(limit: int | None) -> contextlib.AbstractContextManager[Any]:
    """Few-query products run on one BLAS thread: threading them costs more than it saves."""
    if limit is None:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=limit, user_api="blas")
