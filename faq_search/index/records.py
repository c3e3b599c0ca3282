"""The records an index hands out: matches, answers, build reports and entry changes.

Plain frozen dataclasses with no behaviour beyond their JSON shape, so the CLI,
the HTTP service and bots all read one shape. :class:`Ranked` is the internal
record the ranking kernels return before it becomes a :class:`Match`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faq_search.corpus import FaqEntry


@dataclass(frozen=True)
class Ranked:
    """One ranked entry before it is dressed as a :class:`Match`: positions in the index, not records."""

    entry: int  # the entry's position in the index
    score: float  # the confidence (see faq_search.index.confidence)
    cosine: float
    lexical: float | None  # raw BM25 score; None without fusion
    row: int  # the store row that matched best (says which field matched)


@dataclass(frozen=True)
class Match:
    """One ranked answer.

    ``score`` is the confidence, in [0, 1]: the estimated probability that this
    entry answers the question (:mod:`faq_search.index.confidence`), and what
    ``min_score`` applies to; it never increases down the ranking. ``cosine``
    is the dense evidence (the best-matching field's cosine) and ``lexical`` the
    FAQ-wide raw BM25 score (None without fusion). ``field`` says which text
    matched best: ``question`` or ``answer``.
    """

    entry: FaqEntry
    score: float
    rank: int
    field: str
    cosine: float
    lexical: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by ``ask --json`` and the HTTP API."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "cosine": round(self.cosine, 6),
            "lexical": None if self.lexical is None else round(self.lexical, 6),
            "field": self.field,
            "id": self.entry.id,
            "ids": list(self.entry.ids),
            "question": self.entry.question,
            "answer": self.entry.answer,
            "metadata": dict(self.entry.metadata),
        }


@dataclass(frozen=True)
class Answer:
    """A question's answer as a bot sees it: the matches kept at a threshold, or none ("hand over").

    ``ask --json`` and every HTTP endpoint that answers questions return
    :meth:`to_dict`; ``answered`` is False when no match reached ``min_score``.
    """

    question: str
    matches: tuple[Match, ...]
    min_score: float | None

    @classmethod
    def of(cls, question: str, matches: Sequence[Match], k: int, min_score: float | None) -> Answer:
        """The first ``k`` of ``matches`` that reach ``min_score`` (all of them when it is None)."""
        kept = tuple(m for m in matches[:k] if min_score is None or m.score >= min_score)
        return cls(question, kept, min_score)

    @property
    def answered(self) -> bool:
        return bool(self.matches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answered": self.answered,
            "min_score": self.min_score,
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class Changes:
    """How an FAQ differs from the one an index held before, by entry id."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # same id, other text or metadata
    removed: tuple[str, ...] = ()
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class BuildReport:
    """What :meth:`FaqIndex.build` (or an update) did, for the CLI's summary line.

    Of the ``unique_texts``, ``encoded`` ran through the encoder, ``reused``
    took their vector from the previous index and ``resumed`` from the cache
    of an interrupted run. ``changes`` compares with the previous index;
    ``reuse_note`` says why its vectors could not be reused, if they could not.
    """

    entries: int
    vectors: int
    unique_texts: int
    seconds: float
    fields: tuple[str, ...] = field(default_factory=tuple)
    encoded: int = 0
    reused: int = 0
    resumed: int = 0
    changes: Changes | None = None
    reuse_note: str | None = None


def compare_entries(old: Sequence[FaqEntry], new: Sequence[FaqEntry]) -> Changes:
    """Added, changed and removed ids (and how many are unchanged) from ``old`` to ``new``."""
    before = {e.id: e for e in old}
    after = {e.id for e in new}
    added = tuple(e.id for e in new if e.id not in before)
    changed = tuple(e.id for e in new if e.id in before and before[e.id] != e)
    removed = tuple(e.id for e in old if e.id not in after)
    return Changes(added, changed, removed, unchanged=len(new) - len(added) - len(changed))
