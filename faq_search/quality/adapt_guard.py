"""The adaptation guard: is the adapted encoder better at what ``ask`` serves?

The guard scores the served ranking, not a stand-in for it: it builds a
:class:`~faq_search.index.faq_index.FaqIndex` with the candidate encoder and
the same fields and fusion the command will index with, over the FAQ with the
held-out questions removed from their entries (so a held-out question cannot
find itself), asks the held-out questions through ``ask_batch`` and scores each
ranking with :func:`~faq_search.quality.metrics.score_ranking` (MRR@10). When
the ranking score changes (e.g. a calibrated confidence), the guard measures
the new one by itself.

The decision is paired: per held-out question, ``after - before``; the adapted
encoder is kept only when the mean of those differences is larger than their
standard error. With fewer than about 30 questions that is a weak test; the
slices below are chosen to be larger (see :func:`held_out_folds`).

What it is not: a significance test with a fixed error rate. One standard
error is a conservative bar against noise, chosen because a wrongly kept
encoder costs the user quality they cannot see, while a wrongly refused one
only costs training time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from faq_search.corpus import FaqEntry
from faq_search.encoding.settings import Fields
from faq_search.index.lexical import HybridSettings
from faq_search.quality.metrics import mean_and_error, score_ranking
from faq_search.quality.queries import LabelledQuery

if TYPE_CHECKING:
    from faq_search.encoding.protocol import Encoder


MAX_SINGLE_SHARE = 0.25  # one held-out slice may take at most this share of the questions away from training


class Pair(Protocol):
    """A training pair as the guard reads it: the question text and its entry's position."""

    @property
    def question(self) -> str: ...

    @property
    def entry(self) -> int: ...


@dataclass(frozen=True)
class GuardResult:
    """Held-out MRR@10 before and after, and the paired gain, each with its standard error."""

    questions: int
    folds: int
    before: float
    before_error: float
    after: float
    after_error: float
    gain: float
    gain_error: float

    @property
    def improved(self) -> bool:
        """The gain is positive and larger than its standard error."""
        return self.gain > 0.0 and self.gain > self.gain_error


def held_out_folds(
    questions: Sequence[str], share: float, minimum: int, folds: int, rng: np.random.Generator
) -> list[list[str]]:
    """The held-out slices: one slice when the FAQ can spare it, else ``folds`` folds over every question.

    One slice holds ``share`` of the questions, at least ``minimum``, when
    that is at most a quarter of them: the kept encoder is the one trained
    without it (one training). With fewer questions the slice would be too
    small to tell a gain from noise, or would take too much of the training
    data, so the questions are split into ``folds`` folds and every question is
    held out once (the pooled slice is the whole FAQ). Examples with share 0.1,
    minimum 50, 2 folds: 700 questions -> one slice of 70; 300 -> one slice of
    50; 150 -> two folds of 75; 48 -> two folds of 24.
    """
    order = [str(q) for q in rng.permutation(np.asarray(questions, dtype=object))]
    single = max(minimum, round(len(order) * share))
    if single <= len(order) * MAX_SINGLE_SHARE:
        return [order[:single]]
    return [list(part) for part in np.array_split(np.asarray(order, dtype=object), min(folds, len(order)))]


def held_out_queries(entries: Sequence[FaqEntry], pairs: Sequence[Pair], held: Sequence[str]) -> list[LabelledQuery]:
    """Each held-out question with the ids of every entry it asks for (in the FAQ or as a labelled query)."""
    wanted = set(held)
    relevant: dict[str, set[str]] = {}
    for pair in pairs:
        if pair.question in wanted:
            relevant.setdefault(pair.question, set()).add(entries[pair.entry].id)
    return [LabelledQuery(query=q, relevant=frozenset(relevant[q])) for q in held if q in relevant]


def without_questions(entries: Sequence[FaqEntry], held: Sequence[str]) -> list[FaqEntry]:
    """The FAQ with the held-out questions taken out of every entry (answers stay)."""
    wanted = set(held)
    return [
        replace(entry, questions=tuple(q for q in entry.questions if q not in wanted))
        if wanted.intersection(entry.questions)
        else entry
        for entry in entries
    ]


def served_reciprocal_ranks(
    encoder: Encoder,
    entries: Sequence[FaqEntry],
    queries: Sequence[LabelledQuery],
    fields: Fields | str,
    hybrid: HybridSettings | None,
    batch_size: int = 64,
) -> np.ndarray:
    """Per query, MRR@10 of what ``ask`` serves from an index of ``entries`` built with ``encoder``."""
    from faq_search.index.faq_index import FaqIndex

    index = FaqIndex.build(list(entries), encoder=encoder, fields=fields, hybrid=hybrid)
    ranks = np.zeros(len(queries), dtype=np.float64)
    for start in range(0, len(queries), batch_size):
        chunk = queries[start : start + batch_size]
        results = index.ask_batch([q.query for q in chunk], k=10, min_score=-math.inf)
        for offset, (query, matches) in enumerate(zip(chunk, results, strict=True)):
            ranks[start + offset] = score_ranking([m.entry.id for m in matches], query.relevant)["mrr_at_10"]
    return ranks


def guard_result(before: np.ndarray, after: np.ndarray, folds: int) -> GuardResult:
    """Both scores and the paired gain from per-question reciprocal ranks (pooled over the folds)."""
    before_mean, before_error = mean_and_error(before)
    after_mean, after_error = mean_and_error(after)
    gain, gain_error = mean_and_error(after - before)
    return GuardResult(
        questions=len(before),
        folds=folds,
        before=before_mean,
        before_error=before_error,
        after=after_mean,
        after_error=after_error,
        gain=gain,
        gain_error=gain_error,
    )
