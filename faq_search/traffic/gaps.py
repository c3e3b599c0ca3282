"""The gaps report: what customers ask that the FAQ does not answer, grouped by topic and ranked by volume.

A logged question is a gap when its best match's confidence was below the
threshold (the one the server applied, or ``min_score``: confidences are
probabilities, so 0.5 by default), when it got no match at all, or when a
customer marked its answer unhelpful. Repeats of the same question (case and
spacing aside) count once per asking. The distinct gap questions are
embedded (:mod:`faq_search.traffic.topics`: by default the bundle's model
at its last layer) and clustered (:mod:`faq_search.traffic.cluster`). Topics
are ranked by volume times *novelty* (how far the topic's centre is from
every question the FAQ has): questions that were only answered with low
confidence gather next to the entry that answers them and rank below a
topic of the same volume that the FAQ lacks; ``rank=Ranking.VOLUME`` ranks
by volume alone. Each topic is reported with its volume, novelty, its most
central questions, and the existing entry closest to it (the entry the index
returns for its most central question, with that confidence): an FAQ author
either writes a new entry or rewords that one.

What it is not: a classifier of intent. Topics are only as good as the
encoder's notion of similar questions; read the representatives.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.errors import InputError
from faq_search.traffic.cluster import agglomerate, kmeans, relabel_by_weight
from faq_search.traffic.log import Feedback, QuestionLog, QuestionRecord, existing_log
from faq_search.traffic.settings import DEFAULT_MIN_SCORE, DEFAULT_SIMILARITY, Clustering, Ranking, TopicEncoder
from faq_search.traffic.topics import TopicSpace, topic_space

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex

REPRESENTATIVES = 3


@dataclass(frozen=True)
class GapQuestion:
    """One distinct gap question: how often it was asked, and why it is a gap."""

    text: str
    asked: int
    unanswered: int  # askings below the threshold (or with no match)
    unhelpful: int  # negative feedback rows
    top_id: str | None  # the best match when it was last asked
    top_score: float | None


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
    novelty: float = 1.0  # 1 - cosine of the topic's centre to the closest FAQ question
    questions: tuple[str, ...] = field(default=(), repr=False)  # every distinct question, most central first

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "volume": self.volume,
            "distinct": self.distinct,
            "unanswered": self.unanswered,
            "unhelpful": self.unhelpful,
            "representatives": list(self.representatives),
            "closest": {"id": self.closest_id, "question": self.closest_question, "score": self.closest_score},
            "novelty": self.novelty,
            "questions": list(self.questions),
        }


@dataclass(frozen=True)
class GapsReport:
    """How many questions were read, how many were gaps, and their topics by volume."""

    logged: int
    gap_askings: int
    gap_questions: int
    min_score: float | None  # None: each question's server threshold (DEFAULT_MIN_SCORE where it had none)
    similarity: float
    method: str
    clusters: tuple[GapCluster, ...]
    ranking: str = Ranking.NOVELTY.value
    encoder: str = TopicEncoder.SENTENCE.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "logged": self.logged,
            "gap_askings": self.gap_askings,
            "gap_questions": self.gap_questions,
            "min_score": self.min_score,
            "similarity": self.similarity,
            "method": self.method,
            "ranking": self.ranking,
            "encoder": self.encoder,
            "clusters": [c.to_dict() for c in self.clusters],
        }


def parse_since(text: str) -> float:
    """``2026-11-01`` or ``2026-11-01T08:00`` (UTC unless it names a zone) -> Unix seconds."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r} is not a date; write it as 2026-11-01 or 2026-11-01T08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def gap_questions(
    records: Sequence[QuestionRecord], feedback: Sequence[Feedback], min_score: float | None = None
) -> list[GapQuestion]:
    """The distinct gap questions among ``records``, by first asking.

    A record is a gap when its top confidence is below ``min_score`` (when
    None: the threshold the record was answered with, else
    :data:`DEFAULT_MIN_SCORE`) or it has no match; feedback marked unhelpful
    makes its question a gap whatever its score.
    """
    unhelpful: dict[str, int] = {}
    for vote in feedback:
        if not vote.helpful:
            unhelpful[vote.question_id] = unhelpful.get(vote.question_id, 0) + 1
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        threshold = min_score if min_score is not None else record.min_score
        threshold = DEFAULT_MIN_SCORE if threshold is None else threshold
        low = record.top_score is None or record.top_score < threshold
        bad = unhelpful.get(record.id, 0)
        if not low and not bad:
            continue
        key = " ".join(record.question.split()).casefold()
        gap = found.setdefault(key, {"text": record.question, "asked": 0, "unanswered": 0, "unhelpful": 0})
        gap["asked"] += 1
        gap["unanswered"] += int(low)
        gap["unhelpful"] += bad
        gap["top_id"] = record.matches[0].id if record.matches else None
        gap["top_score"] = record.top_score
    return [GapQuestion(**gap) for gap in found.values()]


def find_gaps(
    log: QuestionLog | str | Path,
    index: FaqIndex,
    *,
    since: float | None = None,
    min_score: float | None = None,
    similarity: float = DEFAULT_SIMILARITY,
    method: Clustering = Clustering.AGGLOMERATIVE,
    clusters: int | None = None,
    top: int | None = None,
    ranking: Ranking = Ranking.NOVELTY,
    encoder: TopicEncoder = TopicEncoder.SENTENCE,
    space: TopicSpace | None = None,
    limit: int | None = None,
    index_name: str | None = None,
) -> GapsReport:
    """``faq-search gaps``: the gap questions of a log, clustered and ranked (see the module docstring).

    ``method=Clustering.KMEANS`` uses FAISS k-means with ``clusters`` topics (default:
    one per 5 distinct questions) instead of a similarity threshold. ``space``: a
    :class:`TopicSpace` already built for ``index`` (the server keeps one per
    index generation), else one is built with ``encoder``. ``limit`` reads only
    the newest questions; ``index_name`` only those logged for that index.
    ``top=0`` counts the gaps without clustering them (nothing is encoded).
    """
    if not 0.0 < similarity <= 1.0:
        raise InputError(f"--similarity {similarity} must be in (0, 1]")
    opened = log if isinstance(log, QuestionLog) else QuestionLog(existing_log(log))
    try:
        records = opened.questions(since, limit=limit, index=index_name)
        feedback = opened.feedback()
    finally:
        if opened is not log:
            opened.close()
    return gaps_report(
        records, feedback, index, min_score=min_score, similarity=similarity, method=method, clusters=clusters,
        top=top, ranking=ranking, space=space or (topic_space(index, encoder) if records and top != 0 else None),
    )  # fmt: skip


def gaps_report(
    records: Sequence[QuestionRecord],
    feedback: Sequence[Feedback],
    index: FaqIndex,
    *,
    space: TopicSpace | None,
    min_score: float | None = None,
    similarity: float = DEFAULT_SIMILARITY,
    method: Clustering = Clustering.AGGLOMERATIVE,
    clusters: int | None = None,
    top: int | None = None,
    ranking: Ranking = Ranking.NOVELTY,
) -> GapsReport:
    """The report on records already read: gap questions, embedded in ``space``, clustered, ranked."""
    method, ranking = Clustering(method), Ranking(ranking)
    gaps = gap_questions(records, feedback, min_score)
    report = GapsReport(
        len(records), sum(g.asked for g in gaps), len(gaps), min_score, similarity, method.value, (), ranking.value,
        (space.kind if space is not None else TopicEncoder.SENTENCE).value,
    )  # fmt: skip
    if not gaps or space is None:
        return report
    vectors = space.embed([g.text for g in gaps])
    weights = [g.asked for g in gaps]
    if method is Clustering.KMEANS:
        labels = relabel_by_weight(kmeans(vectors, clusters or max(1, math.ceil(len(gaps) / 5))), weights)
    else:
        labels = agglomerate(vectors, weights, similarity)
    found = [
        _cluster([gaps[i] for i in np.flatnonzero(labels == number)], vectors[labels == number], space)
        for number in range(int(labels.max()) + 1)
    ]
    if ranking is Ranking.NOVELTY:
        found.sort(key=lambda c: -c.volume * c.novelty)  # stable: equal keys keep the heavier first
    found = [dataclasses.replace(c, rank=rank) for rank, c in enumerate(found[:top], start=1)]
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
        volume=int(weights.sum()),
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
    """One row per topic for FAQ authors: rank, volume, representatives, the closest entry and its score."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["rank", "volume", "distinct", "unanswered", "unhelpful", "novelty", "representatives", "closest_id",
             "closest_question", "closest_score", "questions"]
        )  # fmt: skip
        for c in report.clusters:
            writer.writerow(
                [c.rank, c.volume, c.distinct, c.unanswered, c.unhelpful, c.novelty, " | ".join(c.representatives),
                 c.closest_id or "", c.closest_question or "", "" if c.closest_score is None else c.closest_score,
                 " | ".join(c.questions)]
            )  # fmt: skip
    return out
