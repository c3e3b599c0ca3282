"""The gaps report: what customers ask that the FAQ does not answer, grouped by topic and ranked by need.

The gap questions are the logged askings whose answer is in doubt
(:mod:`faq_search.traffic.candidates`): below the threshold, answered below
the review level (default 0.9), with no match, or marked unhelpful; each
counts 1 (or, ``weight=GapWeight.EXPECTED``, its unserved askings in
expectation), which sums to a topic's *need*. Repeats of the same question
(case and spacing aside) count once per asking. The distinct gap questions
are embedded (:mod:`faq_search.traffic.topics`: by default the bundle's
model at its last layer) and clustered (:mod:`faq_search.traffic.cluster`).
Topics are ranked by need times *novelty* (how far the topic's centre is
from every question and every answer the FAQ has): questions that were only answered with
low confidence gather next to the entry that answers them and rank below a
topic of the same need that the FAQ lacks; ``ranking=Ranking.VOLUME`` ranks
by need alone. Each topic is reported with its need, volume, novelty, its
most central questions, and the existing entry closest to it (the entry the
index returns for its most central question, with that confidence): an FAQ
author either writes a new entry or rewords that one.

What it is not: a classifier of intent. Topics are only as good as the
encoder's notion of similar questions; read the representatives.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.errors import InputError
from faq_search.traffic.candidates import GapQuestion, gap_questions
from faq_search.traffic.cluster import agglomerate, kmeans, relabel_by_weight
from faq_search.traffic.log import Feedback, QuestionLog, QuestionRecord, existing_log
from faq_search.traffic.settings import (
    DEFAULT_REVIEW_SCORE,
    DEFAULT_SIMILARITY,
    Clustering,
    GapWeight,
    Ranking,
    TopicEncoder,
)
from faq_search.traffic.topics import TopicSpace, topic_space

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex

REPRESENTATIVES = 3


@dataclass(frozen=True)
class GapsOptions:
    """Which logged questions are gaps and how they become ranked topics: the one list of gaps options.

    :func:`find_gaps`, :func:`gaps_report`, ``faq-search gaps`` and ``GET /gaps``
    all take this record (the library calls also take its fields as keywords).
    """

    min_score: float | None = None
    """The threshold (None: the one each question was answered with, else :data:`DEFAULT_MIN_SCORE`)."""
    review_score: float | None = DEFAULT_REVIEW_SCORE
    """Answered questions below this confidence are gap candidates too (None: only those below the threshold)."""
    weight: GapWeight = GapWeight.ASKINGS
    """What an asking counts: 1, or unserved askings in expectation (:mod:`faq_search.traffic.candidates`)."""
    similarity: float = DEFAULT_SIMILARITY
    """Agglomerative clustering: the mean cosine at which two groups of questions are one topic."""
    method: Clustering = Clustering.AGGLOMERATIVE
    clusters: int | None = None
    """k-means: how many topics (None: one per 5 distinct questions)."""
    top: int | None = None
    """How many topics to report (None: all; 0: count the gaps, cluster nothing)."""
    ranking: Ranking = Ranking.NOVELTY
    encoder: TopicEncoder = TopicEncoder.SENTENCE
    """What embeds the questions when no topic space is given."""

    def revised(self, **changes: Any) -> GapsOptions:
        """These options with some fields changed (TypeError naming an unknown one)."""
        return dataclasses.replace(self, **changes) if changes else self


@dataclass(frozen=True)
class GapCluster:
    """A topic of gap questions, for an FAQ author."""

    rank: int
    volume: int  # askings of its questions
    distinct: int  # distinct questions
    unanswered: int
    unhelpful: int
    representatives: tuple[str, ...]
    closest_id: str | None
    closest_question: str | None
    closest_score: float | None  # the confidence the index gives that entry for the most central question
    novelty: float = 1.0  # its centre's distance from the FAQ's questions and answers (TopicSpace.novelty)
    questions: tuple[str, ...] = field(default=(), repr=False)  # every distinct question, most central first
    need: float = 0.0  # unserved askings in expectation (GapWeight.ASKINGS: the volume)

    def to_dict(self) -> dict[str, Any]:
        """Its fields, tuples as lists and the three ``closest_*`` as one ``closest`` object."""
        body: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.startswith("closest_"):
                body.setdefault("closest", {})[item.name.removeprefix("closest_")] = value
            else:
                body[item.name] = list(value) if isinstance(value, tuple) else value
        return body


@dataclass(frozen=True)
class GapsReport:
    """How many questions were read, how many were gaps, and their topics by need."""

    logged: int
    gap_askings: int
    gap_questions: int
    min_score: float | None  # None: each question's server threshold (DEFAULT_MIN_SCORE where it had none)
    similarity: float
    method: str
    clusters: tuple[GapCluster, ...]
    ranking: str = Ranking.NOVELTY.value
    encoder: str = TopicEncoder.SENTENCE.value
    review_score: float | None = None
    weight: str = GapWeight.ASKINGS.value
    gap_need: float = 0.0  # unserved askings in expectation, over every gap question

    def to_dict(self) -> dict[str, Any]:
        """Its fields, with the topics (:meth:`GapCluster.to_dict`) last."""
        body = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "clusters"}
        return {**body, "clusters": [c.to_dict() for c in self.clusters]}


def parse_since(text: str) -> float:
    """``2026-11-01`` or ``2026-11-01T08:00`` (UTC unless it names a zone) -> Unix seconds."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r} is not a date; write it as 2026-11-01 or 2026-11-01T08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def find_gaps(
    log: QuestionLog | str | Path,
    index: FaqIndex,
    options: GapsOptions | None = None,
    *,
    since: float | None = None,
    space: TopicSpace | None = None,
    limit: int | None = None,
    index_name: str | None = None,
    progress: bool = False,
    **changes: Any,
) -> GapsReport:
    """``faq-search gaps``: the gap questions of a log, clustered and ranked (see the module docstring).

    ``options`` (or its fields as keywords) choose what counts and how topics
    form. ``space``: a :class:`TopicSpace` already built for ``index`` (the
    server keeps one per index generation), else one is built with
    ``options.encoder``. ``limit`` reads only the newest questions;
    ``index_name`` only those logged for that index. ``progress``: a bar on a
    terminal while a sentence encoder loaded here embeds the FAQ.
    """
    options = (options or GapsOptions()).revised(**changes)
    if not 0.0 < options.similarity <= 1.0:
        raise InputError(f"--similarity {options.similarity} must be in (0, 1]")
    opened = log if isinstance(log, QuestionLog) else QuestionLog(existing_log(log))
    try:
        records = opened.questions(since, limit=limit, index=index_name)
        feedback = opened.feedback()
    finally:
        if opened is not log:
            opened.close()
    if space is None and records and options.top != 0:
        space = topic_space(index, options.encoder, progress=progress)
    return gaps_report(records, feedback, index, options, space=space)


def gaps_report(
    records: Sequence[QuestionRecord],
    feedback: Sequence[Feedback],
    index: FaqIndex,
    options: GapsOptions | None = None,
    *,
    space: TopicSpace | None,
    **changes: Any,
) -> GapsReport:
    """The report on records already read: gap questions, embedded in ``space``, clustered, ranked."""
    options = (options or GapsOptions()).revised(**changes)
    method, ranking, weight = Clustering(options.method), Ranking(options.ranking), GapWeight(options.weight)
    gaps = gap_questions(records, feedback, options.min_score, review_score=options.review_score, weight=weight)
    report = GapsReport(
        len(records), sum(g.asked for g in gaps), len(gaps), options.min_score, options.similarity, method.value, (),
        ranking.value, (space.kind if space is not None else TopicEncoder(options.encoder)).value,
        options.review_score, weight.value, round(sum(g.need for g in gaps), 4),
    )  # fmt: skip
    if not gaps or space is None or options.top == 0:
        return report
    vectors = space.embed([g.text for g in gaps])
    weights = [g.asked for g in gaps]  # topics form around how questions are asked, whatever they weigh
    if method is Clustering.KMEANS:
        labels = relabel_by_weight(kmeans(vectors, options.clusters or max(1, math.ceil(len(gaps) / 5))), weights)
    else:
        labels = agglomerate(vectors, weights, options.similarity)
    found = [
        _cluster([gaps[i] for i in np.flatnonzero(labels == number)], vectors[labels == number], space)
        for number in range(int(labels.max()) + 1)
    ]
    if ranking is Ranking.NOVELTY:
        found.sort(key=lambda c: -c.need * c.novelty)  # stable: equal keys keep the heavier first
    else:
        found.sort(key=lambda c: -c.need)
    found = [dataclasses.replace(c, rank=rank) for rank, c in enumerate(found[: options.top], start=1)]
    closest = index.ask_batch([c.representatives[0] for c in found], k=1, min_score=-math.inf)
    found = [
        _with_closest(cluster, matches[0] if matches else None) for cluster, matches in zip(found, closest, strict=True)
    ]
    return dataclasses.replace(report, clusters=tuple(found))


def _cluster(members: list[GapQuestion], vectors: np.ndarray, space: TopicSpace) -> GapCluster:
    """A cluster's record (rank 0: not ranked yet) with its members ordered by closeness to its centroid."""
    weights = np.array([m.asked for m in members], dtype=np.float32)
    centroid = (vectors * weights[:, None]).sum(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    order = np.argsort(-(vectors @ centroid), kind="stable")
    ordered = [members[i].text for i in order]
    return GapCluster(
        rank=0,
        need=round(sum(m.need for m in members), 4),
        volume=sum(m.asked for m in members),
        distinct=len(members),
        unanswered=sum(m.unanswered for m in members),
        unhelpful=sum(m.unhelpful for m in members),
        representatives=tuple(ordered[:REPRESENTATIVES]),
        closest_id=None,
        closest_question=None,
        closest_score=None,
        novelty=round(float(space.novelty(centroid[None, :])[0]), 4),
        questions=tuple(ordered),
    )


def _with_closest(cluster: GapCluster, match: Any) -> GapCluster:
    if match is None:
        return cluster
    return dataclasses.replace(
        cluster,
        closest_id=match.entry.id,
        closest_question=match.entry.question,
        closest_score=round(float(match.score), 4),
    )


def write_csv(report: GapsReport, path: str | Path) -> Path:
    """One row per topic for FAQ authors: rank, volume, representatives, the closest entry and its score, need."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["rank", "volume", "distinct", "unanswered", "unhelpful", "novelty", "representatives", "closest_id",
             "closest_question", "closest_score", "questions", "need"]
        )  # fmt: skip
        for c in report.clusters:
            writer.writerow(
                [c.rank, c.volume, c.distinct, c.unanswered, c.unhelpful, c.novelty, " | ".join(c.representatives),
                 c.closest_id or "", c.closest_question or "", "" if c.closest_score is None else c.closest_score,
                 " | ".join(c.questions), c.need]
            )  # fmt: skip
    return out
