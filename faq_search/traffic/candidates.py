"""Which logged questions the gaps report reads, and how much each asking counts.

Why not just "below the threshold": the threshold decides what the bot
*shows*; it says little about what the FAQ *lacks*. A question whose entry
is missing often finds a near neighbour that the confidence model answers
with, say, 0.8: above a 90%-precision threshold, so it is answered, and
wrong. So the candidates are the askings whose answer is *in doubt*: below
the review level ``review_score`` (default 0.9, at least the threshold: an
answer less likely to be right than the precision an operator asks of the
bot, ``calibrate --target-precision``'s default), with no match, or marked
unhelpful by a customer. Above the review level an answer is taken as right.

What an asking counts (``weight``):

- :attr:`GapWeight.ASKINGS` (default): 1 per candidate asking.
- :attr:`GapWeight.EXPECTED`: unserved askings in expectation. Below the
  threshold the bot handed the customer over: 1; answered with confidence
  ``p``: ``1 - p``; a vote settles it (unhelpful: 1, helpful and none
  unhelpful: 0). Sound where the confidences are calibrated, and that is
  where it falls short: ``calibrate`` fits them on questions the FAQ
  *answers*, so for a question whose entry is missing ``1 - p`` is biased
  low, exactly for the questions a gaps report is for. Measured on
  benchmarks/bench_gaps.py it found fewer missing entries than counting 1
  (docs/gaps.md); kept as an option.

What it is not: a correction of the confidence model. A question about a
missing entry that the model answers above the review level stays unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faq_search.traffic.log import Feedback, QuestionRecord
from faq_search.traffic.settings import DEFAULT_MIN_SCORE, GapWeight


@dataclass(frozen=True)
class GapQuestion:
    """One distinct gap question: how often it was asked, why it is a gap, and what it costs."""

    text: str
    asked: int
    unanswered: int  # askings below the threshold (or with no match)
    unhelpful: int  # negative feedback rows
    top_id: str | None  # the best match when it was last asked
    top_score: float | None
    need: float = 0.0  # what its askings count: GapWeight.ASKINGS 1 each, EXPECTED unserved askings in expectation


def gap_questions(
    records: Sequence[QuestionRecord],
    feedback: Sequence[Feedback],
    min_score: float | None = None,
    *,
    review_score: float | None = None,
    weight: GapWeight = GapWeight.ASKINGS,
) -> list[GapQuestion]:
    """The distinct gap candidates among ``records``, by first asking (repeats, case and spacing aside, merge).

    The threshold is ``min_score`` (when None: the one the record was
    answered with, else :data:`DEFAULT_MIN_SCORE`). A record is a candidate
    when its top confidence is below ``max(threshold, review_score)``, it
    has no match, or it was marked unhelpful; ``weight`` sets its ``need``
    (see the module docstring).
    """
    weight = GapWeight(weight)
    votes: dict[str, list[int]] = {}  # question id -> [helpful, unhelpful]
    for vote in feedback:
        votes.setdefault(vote.question_id, [0, 0])[0 if vote.helpful else 1] += 1
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        threshold = min_score if min_score is not None else record.min_score
        threshold = DEFAULT_MIN_SCORE if threshold is None else threshold
        review = threshold if review_score is None else max(threshold, review_score)
        score = record.top_score
        low = score is None or score < threshold
        helpful, bad = votes.get(record.id, (0, 0))
        if not bad and score is not None and score >= review:
            continue
        need = asking_need(score, low, helpful, bad) if weight is GapWeight.EXPECTED else 1.0
        if need <= 0.0:
            continue
        key = " ".join(record.question.split()).casefold()
        gap = found.setdefault(key, {"text": record.question, "asked": 0, "unanswered": 0, "unhelpful": 0, "need": 0.0})
        gap["asked"] += 1
        gap["unanswered"] += int(low)
        gap["unhelpful"] += bad
        gap["need"] += need
        gap["top_id"] = record.matches[0].id if record.matches else None
        gap["top_score"] = score
    return [GapQuestion(**gap) for gap in found.values()]


def asking_need(score: float | None, low: bool, helpful: int, unhelpful: int) -> float:
    """Expected unserved askings of one asking: 1 unanswered or voted unhelpful, 0 voted helpful, else 1 - p."""
    if low or unhelpful:
        return 1.0
    if helpful or score is None:
        return 0.0 if helpful else 1.0
    return min(1.0, max(0.0, 1.0 - score))
