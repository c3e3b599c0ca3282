"""Retrieval quality on labelled queries, and the confidence model and threshold it implies.

:func:`collect_evidence` asks an index every labelled query (and every
negative question) without a threshold and keeps the metrics (from
:mod:`faq_search.quality.metrics`) and the top-1 evidence; threshold rows,
calibration and plots are computed from that evidence alone.
:func:`evaluate_index` and :func:`calibrate_index` are the file-level entry
points behind ``faq-search eval`` and ``faq-search calibrate``; the latter
refits the index's confidence model (:mod:`faq_search.index.confidence`) on
the labelled questions, cross-validated, and stores it with its threshold.

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
from faq_search.quality.queries import LabelledQuery, QueryFiles

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex

__all__ = [
    "CalibrationReport",
    "Evaluation",
    "Metrics",
    "ThresholdRow",
    "calibrate",
    "calibrate_index",
    "collect_evidence",
    "display_thresholds",
    "evaluate",
    "evaluate_index",
    "plot_thresholds",
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
            ranked = [next((i for i in m.entry.ids if i in query.relevant), m.entry.id) for m in matches]
            for name, value in score_ranking(ranked, query.relevant).items():
                totals[name] = totals.get(name, 0.0) + value
            top_scores.append(matches[0].score if matches else -math.inf)
            top_correct.append(bool(ranked) and ranked[0] in query.relevant)
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
    axes.set_xlabel("min_score threshold (confidence)")
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
    index_dir: Path, files: QueryFiles, *, plot: Path | None = None, runtime: str | None = None
) -> tuple[Evaluation, list[ThresholdRow]]:
    """``faq-search eval``: the index's evidence on the query files and a readable grid of threshold rows.

    With ``plot``, a PNG of precision, coverage and false answers by threshold is written there too.
    ``runtime``: where questions are encoded (torch, onnx, auto; see :mod:`faq_search.encoding.runtime`).
    """
    index, labelled, negatives = _load_with_queries(index_dir, files, runtime)
    evaluation = collect_evidence(index, labelled, negatives)
    rows = threshold_rows(evaluation, display_thresholds(evaluation))
    if plot:
        plot_thresholds(evaluation, plot)
    return evaluation, rows


@dataclass(frozen=True)
class CalibrationReport:
    """What ``faq-search calibrate`` stored and how it held up on questions its fit did not see.

    ``precision``, ``coverage`` and ``ece`` (expected calibration error of the
    top-1 confidence, 10 bins) are pooled over 5 held-out folds, folds split by
    answer so no question is graded by a fit that saw its twin; negatives the
    threshold lets through count as wrong answers. ``ece_before`` is the same
    error of the model the index had before (it never saw these questions).
    """

    threshold: float
    precision: float
    coverage: float
    ece: float
    ece_before: float
    queries: int
    negatives: int


def calibrate_index(
    index_dir: Path, files: QueryFiles, target_precision: float, *, plot: Path | None = None
) -> CalibrationReport:
    """``faq-search calibrate``: refit the confidence model on labelled questions and store it with its threshold.

    The model (:func:`faq_search.quality.calibration.calibrate`) and ``min_score``
    both go into the bundle, so ``ask`` scores with them from then on. With
    ``plot``, a reliability diagram of the held-out confidences is written there.
    """
    from faq_search.index.confidence import MODEL_VERSION, default_model, expected_calibration_error
    from faq_search.quality.calibration import calibrate as refit

    if not 0.0 < target_precision <= 1.0:
        raise InputError(f"target precision {target_precision} must be in (0, 1]")
    index, labelled, negatives = _load_with_queries(index_dir, files)
    found = index.candidate_features([q.query for q in labelled])
    questions = [
        (rows, np.array([bool(set(index.entries[e].ids) & query.relevant) for e in entries]))
        for query, (entries, rows) in zip(labelled, found, strict=True)
    ]
    groups: dict[frozenset[str], int] = {}
    keys = [groups.setdefault(query.relevant, len(groups)) for query in labelled]
    negative_rows = [rows for _, rows in index.candidate_features(list(negatives))]
    before = index.confidence_model.predict(np.array([rows[0] for rows, _ in questions]))
    current = index.confidence_model
    result = refit(
        questions,
        keys,
        target_precision,
        negatives=negative_rows,
        prior=current if current.version == MODEL_VERSION else default_model(),
        fitted_on=f"{len(labelled)} labelled questions",
    )
    if not math.isfinite(result.threshold):
        raise InputError(
            f"no threshold reaches precision {target_precision:.2f} on held-out questions; "
            "lower --target-precision or improve the index (see faq-search tune)"
        )
    index.revise(confidence=result.model, min_score=round(result.threshold, 6))
    index.save(index_dir)
    if plot:
        plot_reliability(result.held_out, result.held_out_right, plot, threshold=result.threshold)
    return CalibrationReport(
        threshold=round(result.threshold, 6),
        precision=result.precision,
        coverage=result.coverage,
        ece=result.ece,
        ece_before=expected_calibration_error(before, [right[0] for _, right in questions]),
        queries=len(labelled),
        negatives=len(negatives),
    )


def _load_with_queries(
    index_dir: Path, files: QueryFiles, runtime: str | None = None
) -> tuple[FaqIndex, list[LabelledQuery], list[str]]:
    from faq_search.index.faq_index import FaqIndex

    index = FaqIndex.load(index_dir, runtime=runtime)
    labelled, negatives = files.read(known_ids=[i for entry in index.entries for i in entry.ids])
    return index, list(labelled), list(negatives)


def plot_reliability(
    confidence: Sequence[float], correct: Sequence[bool], path: str | Path, *, threshold: float | None = None
) -> Path:
    """Write a reliability diagram: per confidence bin, the share right against the mean confidence.

    A calibrated model's points lie on the diagonal; the bars show how many questions fall in each bin.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if not len(conf):
        raise InputError("nothing to plot: no labelled question")
    which = np.minimum((conf * 10).astype(np.int64), 9)
    used = [b for b in range(10) if (which == b).any()]
    figure, axes = plt.subplots(figsize=(5.5, 5), dpi=120)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    axes.plot(
        [conf[which == b].mean() for b in used],
        [right[which == b].mean() for b in used],
        "o-",
        label="held-out questions",
    )
    axes.bar(
        [(b + 0.5) / 10 for b in used], [(which == b).mean() for b in used], width=0.09, alpha=0.25,
        label="share of questions",
    )  # fmt: skip
    if threshold is not None and math.isfinite(threshold):
        axes.axvline(threshold, color="black", linewidth=1, label=f"min_score {threshold:.3f}")
    axes.set_xlabel("confidence (top answer)")
    axes.set_ylabel("share right")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    axes.set_title(f"faq-search calibrate: {len(conf)} labelled questions, held-out folds")
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
