"""Retrieval quality on labelled queries, and the confidence threshold it implies.

:func:`collect_evidence` asks an index every labelled query (and every
negative question) without a threshold and keeps the metrics (from
:mod:`faq_search.quality.metrics`) and the top-1 evidence; threshold rows,
calibration and plots are computed from that evidence alone.
:func:`evaluate_index` and :func:`calibrate_index` are the file-level entry
points behind ``faq-search eval`` and ``faq-search calibrate``.

Labelled query files are read by :mod:`faq_search.quality.queries`; its
readers are re-exported here for existing callers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faq_search.errors import InputError
from faq_search.quality.metrics import score_ranking
from faq_search.quality.queries import LabelledQuery, QueryFiles, read_queries, read_questions

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex

__all__ = [
    "Evaluation",
    "LabelledQuery",
    "Metrics",
    "ThresholdRow",
    "calibrate",
    "calibrate_index",
    "collect_evidence",
    "display_thresholds",
    "evaluate",
    "evaluate_index",
    "plot_thresholds",
    "read_queries",
    "read_questions",
    "run",
    "score_ranking",
    "threshold_rows",
]


@dataclass(frozen=True)
class Metrics:
    """Mean metrics over a query set (Recall@k is normalised by the number of relevant entries)."""

    queries: int
    mrr_at_10: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    ndcg_at_10: float


@dataclass(frozen=True)
class ThresholdRow:
    """What a confidence threshold does: of the answered queries, how many are right, and how many are answered.

    ``precision`` counts a labelled query as right when its top answer is
    relevant, and every answered negative (a question the FAQ cannot answer)
    as wrong. ``coverage`` is the share of labelled queries answered;
    ``false_answer_rate`` the share of negatives answered.
    """

    threshold: float
    precision: float
    coverage: float
    false_answer_rate: float | None


@dataclass(frozen=True)
class Evaluation:
    """Metrics plus the raw top-1 evidence a threshold analysis needs."""

    metrics: Metrics
    top_scores: tuple[float, ...]  # per labelled query
    top_correct: tuple[bool, ...]  # per labelled query
    negative_scores: tuple[float, ...]  # per negative question


def collect_evidence(
    index: FaqIndex, queries: Sequence[LabelledQuery], negatives: Sequence[str] = (), batch_size: int = 64
) -> Evaluation:
    """Ask every labelled query and every negative question (no threshold) and collect the evidence."""
    if not queries:
        raise InputError("no labelled queries to evaluate")
    totals: dict[str, float] = {}
    top_scores: list[float] = []
    top_correct: list[bool] = []
    for start in range(0, len(queries), batch_size):
        chunk = queries[start : start + batch_size]
        results = index.ask_batch([q.query for q in chunk], k=10, min_score=-math.inf)
        for query, matches in zip(chunk, results, strict=True):
            for name, value in score_ranking([m.entry.id for m in matches], query.relevant).items():
                totals[name] = totals.get(name, 0.0) + value
            top_scores.append(matches[0].score if matches else -math.inf)
            top_correct.append(bool(matches) and matches[0].entry.id in query.relevant)
    negative_scores: list[float] = []
    for start in range(0, len(negatives), batch_size):
        for matches in index.ask_batch(list(negatives[start : start + batch_size]), k=1, min_score=-math.inf):
            negative_scores.append(matches[0].score if matches else -math.inf)
    n = len(queries)
    metrics = Metrics(queries=n, **{name: value / n for name, value in totals.items()})
    return Evaluation(metrics, tuple(top_scores), tuple(top_correct), tuple(negative_scores))


def evaluate(index: FaqIndex, queries: Sequence[LabelledQuery], batch_size: int = 64) -> Metrics:
    """Ask every query (in batches) and average the metrics."""
    return collect_evidence(index, queries, batch_size=batch_size).metrics


def threshold_rows(evaluation: Evaluation, thresholds: Sequence[float] | None = None) -> list[ThresholdRow]:
    """Precision, coverage and false-answer rate at each threshold (default: every observed top score)."""
    scores = np.asarray(evaluation.top_scores, dtype=np.float64)
    correct = np.asarray(evaluation.top_correct, dtype=bool)
    negatives = np.asarray(evaluation.negative_scores, dtype=np.float64)
    if thresholds is None:
        thresholds = sorted(set(scores.tolist()) | set(negatives.tolist()))
    rows = []
    for t in thresholds:
        answered = scores >= t
        wrong_negatives = int((negatives >= t).sum())
        answered_total = int(answered.sum()) + wrong_negatives
        rows.append(
            ThresholdRow(
                threshold=float(t),
                precision=float((answered & correct).sum() / answered_total) if answered_total else 1.0,
                coverage=float(answered.mean()) if len(scores) else 0.0,
                false_answer_rate=float(wrong_negatives / len(negatives)) if len(negatives) else None,
            )
        )
    return rows


def display_thresholds(evaluation: Evaluation, count: int = 11) -> list[float]:
    """A readable grid of thresholds spanning the observed top scores."""
    scores = np.asarray([s for s in evaluation.top_scores + evaluation.negative_scores if math.isfinite(s)])
    if not len(scores):
        return []
    return [round(float(q), 3) for q in np.quantile(scores, np.linspace(0.0, 0.95, count))]


def calibrate(evaluation: Evaluation, target_precision: float) -> ThresholdRow:
    """The lowest threshold whose precision reaches ``target_precision`` (the most coverage at that precision)."""
    if not 0.0 < target_precision <= 1.0:
        raise InputError(f"target precision {target_precision} must be in (0, 1]")
    for row in threshold_rows(evaluation):
        if row.precision >= target_precision and row.coverage > 0:
            return row
    best = max(threshold_rows(evaluation), key=lambda r: r.precision)
    raise InputError(
        f"no threshold reaches precision {target_precision:.2f} (best {best.precision:.3f} at "
        f"{best.threshold:.3f}); lower --target-precision or improve the index (see faq-search tune)"
    )


def plot_thresholds(evaluation: Evaluation, path: str | Path) -> Path:
    """Write a PNG of precision, coverage and false-answer rate against the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = threshold_rows(evaluation)
    finite = [r for r in rows if math.isfinite(r.threshold)]
    if not finite:
        raise InputError("nothing to plot: no query got a score")
    xs = [r.threshold for r in finite]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    axes.plot(xs, [r.precision for r in finite], label="precision (top answer right)")
    axes.plot(xs, [r.coverage for r in finite], label="coverage (labelled queries answered)")
    if finite[0].false_answer_rate is not None:
        axes.plot(xs, [r.false_answer_rate or 0.0 for r in finite], label="false-answer rate (negatives answered)")
    axes.set_xlabel("min_score threshold")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    axes.set_title(
        f"faq-search: {evaluation.metrics.queries} labelled queries, MRR@10 {evaluation.metrics.mrr_at_10:.3f}"
    )
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out


def evaluate_index(
    index_dir: Path, files: QueryFiles, *, plot: Path | None = None
) -> tuple[Evaluation, list[ThresholdRow]]:
    """``faq-search eval``: the index's evidence on the query files and a readable grid of threshold rows.

    With ``plot``, a PNG of precision, coverage and false answers by threshold is written there too.
    """
    from faq_search.index.faq_index import FaqIndex

    index = FaqIndex.load(index_dir)
    labelled, negatives = files.read(known_ids=[entry.id for entry in index.entries])
    evaluation = collect_evidence(index, labelled, negatives)
    rows = threshold_rows(evaluation, display_thresholds(evaluation))
    if plot:
        plot_thresholds(evaluation, plot)
    return evaluation, rows


def calibrate_index(index_dir: Path, files: QueryFiles, target_precision: float) -> tuple[Evaluation, ThresholdRow]:
    """``faq-search calibrate``: choose the threshold for ``target_precision`` and store it in the bundle.

    Returns the evidence it was chosen from and the chosen row.
    """
    from faq_search.index.faq_index import FaqIndex

    index = FaqIndex.load(index_dir)
    labelled, negatives = files.read(known_ids=[entry.id for entry in index.entries])
    evaluation = collect_evidence(index, labelled, negatives)
    row = calibrate(evaluation, target_precision)
    index.set_min_score(round(row.threshold, 6))
    index.save(index_dir)
    return evaluation, row


run = collect_evidence  # the former name, still imported by benchmarks/quality.py
