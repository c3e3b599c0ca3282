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


@dataclass(frozen=True)
class Posting:
    """One term's posting list: the documents holding it, ascending, their BM25 part, and its largest."""

    term: int
    docs: np.ndarray
    scores: np.ndarray  # float32
    top: float


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

        The postings are summed per document in one ``bincount`` (float64, over the documents up to
        the highest one matched: a C loop over the postings and a memset, no Python per document);
        every document within a rounding margin of the ``count``-th sum is then scored exactly
        (:meth:`at`), so the float32 scores and their order are bm25s's own.
        """
        if count <= 0 or not self.postings:
            return np.zeros(0, dtype=np.int64)
        docs = np.concatenate([p.docs for p in self.postings])
        if not len(docs):
            return np.zeros(0, dtype=np.int64)
        sums = np.bincount(docs, weights=np.concatenate([p.scores for p in self.postings]).astype(np.float64))
        sums = np.nan_to_num(sums, nan=0.0, posinf=0.0, neginf=0.0)
        if self.allowed is not None:
            sums[~self.allowed[: len(sums)]] = 0
        candidates = np.flatnonzero(sums > 0)
        if len(candidates) > count:
            values = sums[candidates]
            kth = float(np.partition(values, len(values) - count)[len(values) - count])
            candidates = candidates[values >= kth - 1e-5 * abs(kth)]  # float32 sums differ by far less
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
