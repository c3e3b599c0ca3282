"""Match confidence: the probability that an entry answers a question, from evidence that ignores the FAQ's size.

Why: the old fused score, ``cos + w * std(cos) * z(bm25)`` with the z-score
over *all* entries, grows about as the square root of the FAQ's size for the
same weak match (0.76 at 48 entries, 5.5 at 10,000), so no threshold kept its
meaning when the FAQ grew, and flat and ANN indexes (which fuse over a
candidate pool) disagreed. Here every number comes from one question's own
candidates:

- **candidates**: the :data:`POOL` entries with the highest cosine. A flat
  index computes them exactly, HNSW/IVF approximately; for the same candidates
  all three give the same scores.
- **lexical evidence**: BM25 computed among the candidates themselves
  (:mod:`faq_search.index.pool_lexical`: document frequencies from the pool,
  not the FAQ), divided by the best among them (:func:`lexical_share`, in
  [0, 1], scale-free).
- **features** per candidate (:func:`features`): the ranking score
  :func:`fuse` = ``cosine + FUSION_WEIGHT * lexical_share``, and the
  ``margin``: this candidate's ranking score minus the best *other*
  candidate's (positive only for the top one: how clearly it wins).
- **model** (:class:`ConfidenceModel`): logistic regression on those
  features, fitted by Newton's method with a small L2 penalty; its output is
  the confidence. Shipped coefficients (``confidence_default.json``) are
  fitted on public FAQ sets; ``calibrate`` refits them on a user's labelled
  questions and stores :meth:`ConfidenceModel.to_dict` in the bundle.

What it is not: a reranker. Ranking is by :func:`fuse`; the confidence is
non-decreasing in the ranking score when the fitted weights of ``fused`` and
``margin`` are positive (they are: see :meth:`ConfidenceModel.is_monotone`),
so it never reorders the list it annotates.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from faq_search.errors import InputError

POOL = 100
"""Candidates per question: the dense top-100, the pool HNSW/IVF already fuse over."""

FUSION_WEIGHT = 0.15
"""Weight of the per-question lexical share in :func:`fuse` (chosen by benchmarks/confidence.py)."""

FEATURES = ("fused", "margin")
"""What the model reads, in this order; a stored model names its features and is checked against them."""

DEFAULT_FILE = "confidence_default.json"
MODEL_VERSION = 1


def candidate_pool(cosine: np.ndarray, size: int = POOL) -> np.ndarray:
    """Positions of the ``size`` highest cosines, best first (ties: lower position first).

    ``candidate_pool(np.array([0.1, 0.9, 0.5]), 2) -> array([1, 2])``
    """
    size = min(size, len(cosine))
    if size <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(-cosine, size - 1)[size - 1]
    chosen = np.flatnonzero(-cosine <= kth)
    return chosen[np.lexsort((chosen, -cosine[chosen]))][:size].astype(np.int64)


def lexical_share(lexical: np.ndarray) -> np.ndarray:
    """Raw BM25 of each candidate over the best among them, in [0, 1]; all zero when none shares a term.

    ``lexical_share(np.array([0.0, 6.0, 3.0])) -> array([0. , 1. , 0.5])``
    """
    lexical = np.maximum(np.asarray(lexical, dtype=np.float64), 0.0)
    best = lexical.max(initial=0.0)
    return lexical / best if best > 0 else np.zeros_like(lexical)


def fuse(cosine: np.ndarray, lexical: np.ndarray, weight: float = FUSION_WEIGHT) -> np.ndarray:
    """The ranking score of one question's candidates: ``cosine + weight * lexical_share``.

    Both terms are bounded and per question, so a score means the same in a
    48-entry FAQ and a 20,000-entry one. ``weight`` 0 is dense only.
    ``fuse(np.array([0.5, 0.6]), np.array([8.0, 0.0]), 0.1) -> array([0.6, 0.6])``
    """
    cosine = np.asarray(cosine, dtype=np.float64)
    if weight <= 0:
        return cosine.copy()
    return cosine + weight * lexical_share(lexical)


def margins(scores: np.ndarray) -> np.ndarray:
    """Each score minus the best *other* score: the winner's lead, or how far behind the winner the rest are.

    ``margins(np.array([0.9, 0.7, 0.4])) -> array([0.2, -0.2, -0.5])``
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return np.zeros_like(scores)
    order = np.argsort(-scores, kind="stable")
    best, second = scores[order[0]], scores[order[1]]
    out = scores - best
    out[order[0]] = best - second
    return out


def features(cosine: np.ndarray, lexical: np.ndarray, weight: float = FUSION_WEIGHT) -> np.ndarray:
    """``[candidates, len(FEATURES)]`` for one question's candidate pool (cosines and raw BM25, same order).

    ``features(np.array([0.8, 0.6]), np.array([0.0, 5.0]), 0.1) -> [[0.8, 0.1], [0.7, -0.1]]``
    """
    fused = fuse(cosine, lexical, weight)
    return np.column_stack([fused, margins(fused)])


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression from :data:`FEATURES` to the probability that a match is right.

    ``fit`` standardises nothing: the features are already on small, fixed
    scales (cosines, shares, score differences), so the stored coefficients
    read directly (``margin`` weighs most). The L2 penalty keeps a fit on a
    few hundred labelled questions from chasing noise.
    """

    weights: tuple[float, ...]
    bias: float
    names: tuple[str, ...] = FEATURES
    fusion_weight: float = FUSION_WEIGHT
    fitted_on: str = ""

    @classmethod
    def fit(
        cls,
        rows: np.ndarray,
        labels: np.ndarray,
        *,
        l2: float = 1.0,
        fusion_weight: float = FUSION_WEIGHT,
        fitted_on: str = "",
    ) -> ConfidenceModel:
        """Newton/IRLS on the mean log loss plus ``l2 / len(rows) * |w|^2 / 2`` (the bias is not penalised)."""
        x = np.asarray(rows, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(y) or x.shape[1] != len(FEATURES):
            raise InputError(f"fit takes [rows, {len(FEATURES)}] features and one label per row")
        if len(y) == 0 or y.min() == y.max():
            raise InputError("fitting a confidence model needs both right and wrong matches; label more questions")
        design = np.column_stack([x, np.ones(len(x))])
        penalty = np.full(design.shape[1], l2 / len(x))
        penalty[-1] = 0.0
        theta = np.zeros(design.shape[1])
        for _ in range(100):
            p = _sigmoid(design @ theta)
            gradient = design.T @ (p - y) / len(x) + penalty * theta
            hessian = (design * (p * (1 - p))[:, None]).T @ design / len(x) + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            theta -= step
            if np.abs(step).max() < 1e-10:
                break
        return cls(tuple(float(v) for v in theta[:-1]), float(theta[-1]), FEATURES, fusion_weight, fitted_on)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities in (0, 1), one per row of :func:`features`."""
        x = np.asarray(rows, dtype=np.float64)
        return _sigmoid(x @ np.asarray(self.weights) + self.bias)

    def score(self, cosine: np.ndarray, lexical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ranking scores, confidences)`` of one question's candidates, in their given order."""
        rows = features(cosine, lexical, self.fusion_weight)
        return rows[:, 0], self.predict(rows)

    def rank(self, cosine: np.ndarray, lexical: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, confidences)`` of the ``k`` best of one question's candidates, best first.

        Ties keep the candidates' given order (a pool comes best cosine first).
        ``rank(np.array([0.7, 0.9]), np.array([0.0, 0.0]), 1) -> (array([1]), array([p]))``
        """
        ranking, confidence = self.score(cosine, lexical)
        k = min(k, len(ranking))
        order = np.lexsort((np.arange(len(ranking)), -ranking))[:k]
        return order, confidence[order]

    def is_monotone(self) -> bool:
        """Whether confidence never decreases with the ranking score (non-negative weights), so it keeps the order."""
        return all(w >= 0 for w in self.weights)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form a bundle's manifest stores."""
        return {
            "version": MODEL_VERSION,
            "kind": "logistic",
            "features": list(self.names),
            "weights": list(self.weights),
            "bias": self.bias,
            "fusion_weight": self.fusion_weight,
            "pool": POOL,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfidenceModel:
        """The model :meth:`to_dict` wrote; a model for other features is refused with the fix."""
        try:
            names = tuple(str(n) for n in data["features"])
            weights = tuple(float(w) for w in data["weights"])
            bias = float(data["bias"])
            fusion_weight = float(data.get("fusion_weight", FUSION_WEIGHT))
            version = int(data.get("version", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"the stored confidence model is unreadable ({exc}); run faq-search calibrate again"
            ) from None
        if (
            version != MODEL_VERSION
            or data.get("kind") != "logistic"
            or names != FEATURES
            or len(weights) != len(names)
        ):
            raise InputError("the stored confidence model is for another version; run faq-search calibrate again")
        if not all(math.isfinite(v) for v in (*weights, bias, fusion_weight)):
            raise InputError("the stored confidence model has non-finite coefficients; run faq-search calibrate again")
        return cls(weights, bias, names, fusion_weight, str(data.get("fitted_on", "")))


@functools.cache
def default_model() -> ConfidenceModel:
    """The shipped model, fitted on public FAQ sets (see ``fitted_on``)."""
    text = resources.files("faq_search.index").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    return ConfidenceModel.from_dict(json.loads(text))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # overflow-free logistic


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, bins: int = 10
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by how many fall in each.

    ``expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) -> 0.0``
    """
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0 or len(conf) != len(right):
        raise InputError("expected calibration error needs one correctness flag per confidence, and at least one")
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(right[inside].mean() - conf[inside].mean())
    return float(total / len(conf))


FIT_DEPTH = 2
"""Matches per question a fit learns from: the winner and its closest rival (measured in benchmarks/confidence.py:
top-1 only or top-5 calibrate the shipped model's top-1 confidence worse on one shared set or the other)."""


@dataclass(frozen=True)
class Calibration:
    """A model refitted on labelled questions, the threshold that reaches the target precision, and how it held up.

    ``precision``, ``coverage`` and ``ece`` are measured on held-out folds: each fold's questions were scored
    by a model and a threshold fitted without them (negatives answered count as wrong, as in ``calibrate``).
    """

    model: ConfidenceModel
    threshold: float
    precision: float
    coverage: float
    ece: float
    held_out: tuple[float, ...] = ()  # each labelled question's out-of-fold top-1 confidence (reliability plot)
    held_out_right: tuple[bool, ...] = ()  # whether its top-1 match is right


def lowest_threshold(confidence: np.ndarray, right: np.ndarray, target: float) -> float:
    """The lowest confidence whose answered set (everything at or above it) is right ``target`` of the time.

    ``lowest_threshold(np.array([0.9, 0.8, 0.3]), np.array([True, True, False]), 0.9) -> 0.8``; inf if none.
    """
    order = np.argsort(-confidence, kind="stable")
    precision = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    reached = np.flatnonzero(precision >= target)
    return float(confidence[order][reached[-1]]) if len(reached) else math.inf


def calibrate(
    questions: Sequence[tuple[np.ndarray, np.ndarray]],
    groups: Sequence[int],
    target: float,
    *,
    negatives: Sequence[np.ndarray] = (),
    folds: int = 5,
    fitted_on: str = "",
) -> Calibration:
    """Refit the model on a user's labelled questions, cross-validated by ``groups``.

    ``questions``: per labelled question, its candidates' :func:`features` in ranking order and whether each
    is right; ``groups``: one key per question, equal for questions that share their answer (so a fold never
    grades a question by a fit that saw its twin); ``negatives``: features of questions the FAQ cannot answer.
    The returned model is fitted on everything; its threshold is chosen on out-of-fold confidences.
    """
    keys = np.unique(np.asarray(groups), return_inverse=True)[1]
    folds = max(2, min(folds, int(keys.max()) + 1 if len(keys) else 0))
    fold_of = np.random.default_rng(0).permutation(int(keys.max()) + 1) % folds
    fold = fold_of[keys]
    negative_fold = np.arange(len(negatives)) % folds
    top = np.array([q[0][0] for q in questions])
    right = np.array([bool(q[1][0]) for q in questions])
    negative_top = np.array([n[0] for n in negatives]).reshape(len(negatives), len(FEATURES))
    held_conf = np.zeros(len(questions))
    held_negative = np.zeros(len(negatives))
    answered = np.zeros(len(questions), dtype=bool)
    answered_negative = np.zeros(len(negatives), dtype=bool)
    for f in range(folds):
        inside, negative_inside = fold != f, negative_fold != f
        model = _fit_on([q for q, keep in zip(questions, inside, strict=True) if keep], negative_top[negative_inside])
        threshold = lowest_threshold(
            np.concatenate([model.predict(top[inside]), model.predict(negative_top[negative_inside])]),
            np.concatenate([right[inside], np.zeros(int(negative_inside.sum()), dtype=bool)]),
            target,
        )
        held_conf[~inside] = model.predict(top[~inside])
        held_negative[~negative_inside] = model.predict(negative_top[~negative_inside])
        answered[~inside] = held_conf[~inside] >= threshold
        answered_negative[~negative_inside] = held_negative[~negative_inside] >= threshold
    total = int(answered.sum() + answered_negative.sum())
    final = dataclasses.replace(_fit_on(questions, negative_top), fitted_on=fitted_on)
    return Calibration(
        model=final,
        threshold=lowest_threshold(
            np.concatenate([held_conf, held_negative]),
            np.concatenate([right, np.zeros(len(negatives), dtype=bool)]),
            target,
        ),
        precision=float((answered & right).sum() / total) if total else 1.0,
        coverage=float(answered.mean()),
        ece=expected_calibration_error(held_conf, right),
        held_out=tuple(held_conf.tolist()),
        held_out_right=tuple(right.tolist()),
    )


def _fit_on(questions: Sequence[tuple[np.ndarray, np.ndarray]], negative_top: np.ndarray) -> ConfidenceModel:
    rows = [q[0][:FIT_DEPTH] for q in questions] + [negative_top]
    labels = [q[1][:FIT_DEPTH] for q in questions] + [np.zeros(len(negative_top), dtype=bool)]
    return ConfidenceModel.fit(np.vstack(rows), np.concatenate(labels))
