"""Scoring: exact dense scores, the best row per entry, candidate pools, and the confident ranking.

One module for how an index ranks: :func:`confident_search`, what ``ask``
serves. With BM25 evidence, each question's candidate :class:`Pool` (the
dense top-``POOL``: exact for a flat index, the store's own for HNSW/IVF,
joined by the best BM25 entries it lacks: :data:`LEXICAL_POOL`) is
ranked by cosine plus the share of BM25 among the candidates; dense only, by
cosine. Either way the confidence model (:mod:`.confidence`) scores it.
An entry may own several rows (questions, answer,
windows of a long answer); its dense score is always the best of them
(:func:`best_row_scores`), so an entry is ranked once.

What it is not: the place that decides *what* is embedded (:mod:`.rows`) or
how the confidence model is fitted (:mod:`.confidence`, ``faq-search calibrate``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faq_search.index.confidence import DENSE_POOL, POOL, ConfidenceModel, candidate_pool, features
from faq_search.index.lexical_matches import LexicalMatches, LexicalScores, best_lexical, only_allowed
from faq_search.index.pool_lexical import PoolLexicon
from faq_search.index.records import Ranked
from faq_search.index.store import VectorStore

Groups = np.ndarray | Callable[[np.ndarray], np.ndarray]
"""Sibling groups: one id per FAQ entry, or a function giving the ids of a pool's entries (equal ids: siblings)."""

LEXICAL_POOL = 10
"""Each question's ``LEXICAL_POOL`` best FAQ-wide BM25 entries join its dense pool (with fusion).

A dense pool holds only what is near in vector space (and an ANN search only what it looks at), so an
entry that only BM25 finds (an exact product code, a rare name) would never be a candidate; the union
lets such a strong lexical match in. Flat and approximate stores take the same union, so they still
agree whenever they find the same candidates.
"""


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


@dataclass(frozen=True)
class Pool:
    """One question's candidates, best cosine first: entry positions, cosines, pool BM25, best store rows.

    ``lexical`` is the BM25 among the candidates themselves (:mod:`.pool_lexical`), all zero without
    fusion. ``rows`` is filled for an approximate store; a flat one finds the best row on demand
    (:meth:`row`), as only the few matches handed out need it.
    """

    entries: np.ndarray  # int64
    cosine: np.ndarray  # float64
    lexical: np.ndarray  # float64
    rows: np.ndarray | None = None
    row_scores: np.ndarray | None = None  # a flat index: this question's scores of every row, layout order
    layout: DenseLayout | None = None

    def row(self, position: int) -> int:
        """The store row that matched best for the candidate at ``position``."""
        if self.rows is not None:
            return int(self.rows[position])
        if self.layout is None or self.row_scores is None:
            raise ValueError("a pool holds either its rows or a flat layout")  # never raised: pools() sets one
        return self.layout.best_row(self.row_scores, int(self.entries[position]))


def pools(
    vectors: np.ndarray,
    questions: Sequence[str],
    size: int,
    layout: DenseLayout | None,
    store: VectorStore,
    lexicon: PoolLexicon | None,
    lexical: LexicalScores | None = None,
    allowed: np.ndarray | None = None,
) -> list[Pool]:
    """Each question's ``size`` best entries by cosine, with the BM25 among them (``lexicon`` None: zeros).

    With a ``layout`` (a flat index) the pool is exact; otherwise it is the
    store's own (approximate) search. With ``lexical`` (the FAQ-wide BM25
    ``[q, entries]``) the :data:`LEXICAL_POOL` best lexical entries the dense
    pool lacks join it, with their cosines (computed by the store directly for
    an approximate one). Either way, for the same candidates the numbers are
    the same, so a confidence does not depend on the index type.
    ``allowed`` (a boolean mask over entries, from a filter) keeps the pool to
    those entries: it is chosen among them, before any ranking (``lexical``
    must be zero outside them).
    """
    out: list[Pool] = []
    if layout is not None:
        dense, row_scores = layout.scores(vectors)
        if allowed is not None:
            dense = np.where(allowed, dense, -np.inf)
            size = min(size, int(allowed.sum()))
        for q in range(len(vectors)):
            entries = candidate_pool(dense[q], size)
            if lexical is not None:
                entries = _joined(entries, lexical[q], dense[q])
            cosine = dense[q, entries].astype(np.float64)
            out.append(Pool(entries, cosine, _pool_bm25(lexicon, questions[q], entries), None, row_scores[q], layout))
        return out
    for q, hits in enumerate(store.search(vectors, size, allowed)):
        entries = np.array([hit.entry for hit in hits], dtype=np.int64)
        cosine = np.array([hit.score for hit in hits], dtype=np.float64)
        rows = np.array([hit.row for hit in hits], dtype=np.int64)
        if lexical is not None:
            entries, cosine, rows = _with_lexical(store, vectors[q], lexical[q], entries, cosine, rows)
        out.append(Pool(entries, cosine, _pool_bm25(lexicon, questions[q], entries), rows))
    return out


def _lexical_extra(bm25: np.ndarray | LexicalMatches, entries: np.ndarray) -> np.ndarray:
    """The best :data:`LEXICAL_POOL` entries by BM25 (score above 0) that ``entries`` lacks, in entry order."""
    return np.setdiff1d(best_lexical(bm25, LEXICAL_POOL), entries).astype(np.int64)


def _joined(entries: np.ndarray, bm25: np.ndarray | LexicalMatches, dense: np.ndarray) -> np.ndarray:
    """A flat pool joined by its missing best BM25 entries, best cosine first again (ties: dense ones first)."""
    extra = _lexical_extra(bm25, entries)
    if not len(extra):
        return entries
    joined = np.concatenate([entries, extra])
    return joined[np.argsort(-dense[joined], kind="stable")]


def _with_lexical(
    store: VectorStore,
    vector: np.ndarray,
    bm25: np.ndarray | LexicalMatches,
    entries: np.ndarray,
    cosine: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An approximate pool joined by the best BM25 entries it lacks, best cosine first again (ties: dense first)."""
    extra = _lexical_extra(bm25, entries)
    if not len(extra):
        return entries, cosine, rows
    extra_cosine, extra_rows = store.entry_scores(vector, extra.tolist())
    entries = np.concatenate([entries, extra.astype(np.int64)])
    cosine = np.concatenate([cosine, extra_cosine])
    rows = np.concatenate([rows, extra_rows])
    order = np.argsort(-cosine, kind="stable")
    return entries[order], cosine[order], rows[order]


def _pool_bm25(lexicon: PoolLexicon | None, question: str, entries: np.ndarray) -> np.ndarray:
    if lexicon is None or not len(entries):
        return np.zeros(len(entries))
    return lexicon.scores(question, entries.tolist(), POOL)


def confident_search(
    vectors: np.ndarray,
    questions: Sequence[str],
    k: int,
    *,
    model: ConfidenceModel,
    layout: DenseLayout | None,
    store: VectorStore,
    lexicon: PoolLexicon | None,
    lexical: LexicalScores | None,
    groups: Groups | None = None,
    allowed: np.ndarray | None = None,
) -> list[list[Ranked]]:
    """The ``k`` best entries per question with their confidence (:mod:`.confidence`) as the score.

    With fusion (``lexicon`` given) the candidates are each question's dense
    top-``max(k, POOL)`` joined by the best BM25 entries it missed
    (:data:`LEXICAL_POOL`), and rank by cosine plus the pool BM25's share;
    ``lexical`` [q, entries] is the FAQ-wide BM25 reported in ``Match.lexical``.
    Dense only (``lexicon`` None): the ranking is the cosine's, the candidates
    only the ``max(k, DENSE_POOL)`` the margin needs, and the model sees no lexical
    evidence (see :func:`faq_search.index.confidence.features`). ``groups``:
    the entries' :func:`~faq_search.index.confidence.question_groups` (siblings
    do not count against each other in the margin), see :data:`Groups`.
    ``allowed`` (an entry mask from a filter) restricts the candidates, so the
    ranking, the pool BM25 and the confidence are those of the filtered FAQ.
    """
    size = max(k, POOL if lexicon is not None else DENSE_POOL)
    out: list[list[Ranked]] = []
    union = lexical if lexicon is not None else None  # let strong BM25-only matches in
    if union is not None and allowed is not None:
        union = only_allowed(union, allowed)  # ... among the filtered entries only
    for q, pool in enumerate(pools(vectors, questions, size, layout, store, lexicon, union, allowed)):
        positions, confidences = model.rank(pool.cosine, pool.lexical, k, _of(groups, pool.entries))
        reported = None if lexical is None else _reported(lexical, q, pool.entries[positions])
        out.append(
            [
                Ranked(
                    int(pool.entries[i]),
                    conf,
                    float(pool.cosine[i]),
                    None if reported is None else float(reported[j]),
                    pool.row(i),
                )
                for j, (i, conf) in enumerate(zip(positions.tolist(), confidences.tolist(), strict=True))
            ]
        )
    return out


def _reported(lexical: LexicalScores, query: int, entries: np.ndarray) -> np.ndarray:
    """``lexical[query, e]`` of each of ``entries`` (``Match.lexical``), read from the postings once for all."""
    row = lexical[query]
    if isinstance(row, LexicalMatches):
        return row.at(entries)
    return np.asarray(row)[entries]


def ranked_features(pool: Pool, fusion_weight: float, groups: Groups | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(entries, features)`` of one pool in ranking order: what ``calibrate`` fits the model on."""
    rows = features(pool.cosine, pool.lexical, fusion_weight, _of(groups, pool.entries))
    order = np.lexsort((np.arange(len(rows)), -rows[:, 0]))
    return pool.entries[order], rows[order]


def _of(groups: Groups | None, entries: np.ndarray) -> np.ndarray | None:
    if groups is None:
        return None
    return groups(entries) if callable(groups) else groups[entries]


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
