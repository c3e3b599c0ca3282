"""One question's FAQ-wide BM25 as its terms' posting lists: scores of given entries, and the best entries.

What ``ask`` reads from the FAQ-wide BM25 index (:mod:`.lexical`): the
question's best entries (they join its dense candidates, :mod:`.ranking`)
and ``Match.lexical`` of the few matches it returns. bm25s's own
``get_scores`` and ``retrieve`` fill and scan an array of every document per
query (at a million entries, most of a question's time); here the cost is
the question's postings. The numbers are bm25s's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

SEEDS = 64
"""Documents of the strongest posting list scored first: a lower bound on the best scores (see ``best``)."""


@dataclass(frozen=True)
class Posting:
    """One term's posting list: the documents holding it, ascending, their BM25 part, and its largest.

    ``counts``: the term's frequency in each document, where the index stores them (else None).
    """

    term: int
    docs: np.ndarray
    scores: np.ndarray  # float32
    top: float
    counts: np.ndarray | None = None


class LexicalMatches:
    """One query's FAQ-wide BM25, as its terms' posting lists: every document outside them scores 0.

    ``matches[e]`` and :meth:`at` read documents' scores, :meth:`best` the query's best documents;
    neither allocates or scans per document of the FAQ in Python.
    """

    def __init__(self, postings: Sequence[Posting], size: int, allowed: np.ndarray | None = None) -> None:
        self.postings = list(postings)  # one per query token in the index's vocabulary, repeats kept, query order
        self.size = size
        self.allowed = allowed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, entry: int) -> float:
        return float(self.at(np.array([entry]))[0])

    def at(self, entries: np.ndarray) -> np.ndarray:
        """float32 scores of ``entries``, summed term by term in query order (bm25s's float32 sums exactly)."""
        entries = np.asarray(entries, dtype=np.int64)
        out = np.zeros(len(entries), dtype=np.float32)
        for posting in self.postings:
            if not len(posting.docs):
                continue
            at = np.minimum(np.searchsorted(posting.docs, entries), len(posting.docs) - 1)
            out += np.where(posting.docs[at] == entries, posting.scores[at], np.float32(0))
        if self.allowed is not None:
            out[~self.allowed[entries]] = 0
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    def best(self, count: int) -> np.ndarray:
        """The entries of the ``count`` best scores above 0, best first (ties: the lower entry).

        Exact, with no pass over every document of the FAQ: a lower bound on the ``count``-th best
        score (theta, :meth:`_theta`) lets only the lists that can still matter be read
        (:meth:`_bounded_best`, MaxScore) or, when those are long, every posting be summed but only
        the documents reaching theta be scored (:meth:`_summed_best`). Candidates are scored with
        :meth:`at`, so the float32 scores and their order are bm25s's own.
        """
        if count <= 0 or not self.postings:
            return np.zeros(0, dtype=np.int64)
        ordered = sorted(self.postings, key=lambda p: -p.top)  # stable: query order among equal tops
        tops = np.array([p.top for p in ordered], dtype=np.float64)
        if not np.all(np.isfinite(tops)):
            return self._summed_best(count, 0.0)
        theta = self._theta(ordered[0], count)
        found = self._bounded_best(ordered, tops, theta, count) if theta > 0 else None
        return self._summed_best(count, theta) if found is None else found

    def _theta(self, strongest: Posting, count: int) -> float:
        """The ``count``-th best exact score among the strongest list's best documents (0 if fewer score).

        A lower bound on the ``count``-th best score of all: these documents are some of them.
        """
        docs, scores = strongest.docs, strongest.scores
        seeds = max(4 * count, SEEDS)
        if len(docs) > seeds:
            docs = docs[np.sort(np.argpartition(scores, len(scores) - seeds)[len(scores) - seeds :])]
        exact = self.at(np.asarray(docs, dtype=np.int64))
        exact = exact[exact > 0]
        if len(exact) < count:
            return 0.0
        return float(np.partition(exact, len(exact) - count)[len(exact) - count])

    def _bounded_best(self, ordered: list[Posting], tops: np.ndarray, theta: float, count: int) -> np.ndarray | None:
        """:meth:`best` from the documents of the essential lists only; None when they are too many.

        MaxScore: the lists of the smallest largest scores (``Posting.top``) whose tops sum below
        theta (with a margin for float32 rounding) are not essential: a document found only in
        them scores below theta, so it can neither enter the best ``count`` nor tie with the last.
        Every document of the other lists is scored exactly; past a budget of documents (a search
        per list each) summing every posting costs less.
        """
        slack = 1.0 + 1e-6 * len(ordered)  # float32 sums of n terms stay within n * 2**-24 of the exact sum
        rising = np.cumsum(tops[::-1]) * slack
        essential = ordered[: len(ordered) - int(np.searchsorted(rising, theta, side="left"))]
        budget = max(SEEDS, sum(len(p.docs) for p in ordered) // (2 * len(ordered)))
        if not essential or sum(len(p.docs) for p in essential) > budget:
            return None
        candidates = np.unique(np.concatenate([np.asarray(p.docs, dtype=np.int64) for p in essential]))
        return _top(candidates, self.at(candidates), count)

    def _summed_best(self, count: int, theta: float) -> np.ndarray:
        """:meth:`best` by summing every posting per document (float64 ``bincount``; a C loop, no Python).

        The candidates are the documents whose sum reaches theta (less a rounding margin: float32
        sums differ from float64 ones by far less), or without theta those within that margin of the
        ``count``-th best sum; they are then scored exactly (:meth:`at`).
        """
        docs = np.concatenate([p.docs for p in self.postings])
        if not len(docs):
            return np.zeros(0, dtype=np.int64)
        sums = np.bincount(docs, weights=np.concatenate([p.scores for p in self.postings]).astype(np.float64))
        if self.allowed is not None:
            sums[~self.allowed[: len(sums)]] = 0
        margin = 1e-5 + 1e-7 * len(self.postings)
        candidates = np.flatnonzero(sums >= theta * (1 - margin)) if theta > 0 else np.flatnonzero(sums > 0)
        values = sums[candidates]
        finite = np.isfinite(values)  # (an infinite or NaN sum scores 0, as in :meth:`at`)
        candidates, values = candidates[finite], values[finite]
        if len(candidates) > max(count, SEEDS):
            kth = float(np.partition(values, len(values) - count)[len(values) - count])
            candidates = candidates[values >= kth - margin * abs(kth)]
        return _top(candidates, self.at(candidates), count)

    def only(self, allowed: np.ndarray) -> LexicalMatches:
        """The scores of the entries a filter keeps (``allowed``: a boolean mask over entries), 0 elsewhere."""
        mask = np.asarray(allowed, dtype=bool)
        return LexicalMatches(self.postings, self.size, mask if self.allowed is None else mask & self.allowed)

    def dense(self) -> np.ndarray:
        """Every document's score (float32), as ``bm25s.BM25.get_scores`` computes it."""
        out = np.zeros(self.size, dtype=np.float32)
        for posting in self.postings:
            out[posting.docs] += posting.scores  # a document appears once per posting list
        if self.allowed is not None:
            out[~self.allowed] = 0
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _top(entries: np.ndarray, scores: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` entries of the best scores above 0, best first, ties to the lower entry."""
    keep = scores > 0
    entries, scores = entries[keep], scores[keep]
    if len(entries) > count:  # everything tied with the count-th best stays a candidate
        kth = np.partition(scores, len(scores) - count)[len(scores) - count]
        keep = scores >= kth
        entries, scores = entries[keep], scores[keep]
    return entries[np.lexsort((entries, -scores))][:count]


class LexicalBatch(Sequence[LexicalMatches]):
    """A batch of :class:`LexicalMatches`, read like the dense ``[query, entry]`` array it stands for."""

    def __init__(self, rows: Sequence[LexicalMatches]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, key: int) -> LexicalMatches: ...
    @overload
    def __getitem__(self, key: slice) -> LexicalBatch: ...
    @overload
    def __getitem__(self, key: tuple[int, int]) -> float: ...
    def __getitem__(self, key: int | slice | tuple[int, int]) -> LexicalMatches | LexicalBatch | float:
        if isinstance(key, tuple):
            query, entry = key
            return self.rows[query][entry]
        if isinstance(key, slice):
            return LexicalBatch(self.rows[key])
        return self.rows[key]

    def only(self, allowed: np.ndarray) -> LexicalBatch:
        return LexicalBatch([row.only(allowed) for row in self.rows])


LexicalScores = np.ndarray | LexicalBatch
"""FAQ-wide BM25 of a batch of queries: dense ``[query, entry]`` or sparse (what ``ask`` passes)."""


def best_lexical(scores: np.ndarray | LexicalMatches, count: int) -> np.ndarray:
    """The entries of (up to) the ``count`` best BM25 scores above 0 of one query.

    Dense: ``argpartition`` over every entry (ties at the cut: any of them); sparse: among the
    matching entries only (ties: the lower entry).
    """
    if isinstance(scores, LexicalMatches):
        return scores.best(count)
    count = min(count, len(scores))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(-scores, count - 1)[:count]
    return best[scores[best] > 0]


def only_allowed(scores: LexicalScores, allowed: np.ndarray) -> LexicalScores:
    """``scores`` with every entry a filter drops at 0."""
    if isinstance(scores, LexicalBatch):
        return scores.only(allowed)
    return np.where(allowed, scores, 0.0)
