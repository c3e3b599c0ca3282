"""``calibrate``'s core: refit the confidence model on a user's labelled questions and pick its threshold.

Both the model and the threshold are graded on questions their fit never saw:
the questions are split into folds by answer group (questions sharing their
answers stay together); each fold is scored by a model fitted on the other
folds, with a threshold chosen on *out-of-fold* confidences of those other
folds (a nested cross-validation). A threshold chosen on the confidences a
model was fitted on sits at the edge of what the fit saw, and its held-out
precision fell short of the target (0.898 for 0.90 on stackfaq); chosen the
nested way, it is picked exactly as the final threshold is (on out-of-fold
confidences), so the held-out precision estimates what the stored one gives.

What it is not: the model itself (:mod:`faq_search.index.confidence`) or the
file-level command (:func:`faq_search.quality.evaluate.calibrate_index`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faq_search.index.confidence import ConfidenceModel, expected_calibration_error

CALIBRATE_DEPTH = 2
"""Matches per question a refit learns from: the winner and its closest rival. Measured on both shared sets
(benchmarks/confidence.py): top-1 only leaves covidfaq_jhu's held-out coverage at 90% precision near 0.35,
the top two about 0.43."""

CALIBRATE_L2 = 0.1
"""L2 penalty of a refit, pulling its weights towards the model it starts from (the bundle's current one), so a
refit on a few dozen questions stays near it and one on a thousand follows the data. Measured on both shared sets
(benchmarks/confidence.py, starting from the model fitted on the other set) and the sample FAQ's 60 questions:
0.1 reached the 0.90 target on both sets and 0.8 on the sample; 0.3-1 held the sets at 0.897-0.900 with
covidfaq_jhu's coverage under 0.40; no prior at all let the sample's refit stray (held-out 0.76 for 0.8)."""


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


@dataclass(frozen=True)
class _Folds:
    """The labelled questions and negatives, each with its fold."""

    questions: Sequence[tuple[np.ndarray, np.ndarray]]
    fold: np.ndarray
    top: np.ndarray  # [questions, features]: each question's winner
    right: np.ndarray
    negative_top: np.ndarray
    negative_fold: np.ndarray
    depth: int
    l2: float
    prior: ConfidenceModel | None

    def fit(self, keep: np.ndarray, negative_keep: np.ndarray) -> ConfidenceModel:
        chosen = [q for q, k in zip(self.questions, keep, strict=True) if k]
        rows = [q[0][: self.depth] for q in chosen] + [self.negative_top[negative_keep]]
        labels = [q[1][: self.depth] for q in chosen] + [np.zeros(int(negative_keep.sum()), dtype=bool)]
        return ConfidenceModel.fit(np.vstack(rows), np.concatenate(labels), l2=self.l2, prior=self.prior)

    def out_of_fold(self, folds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Confidences of the questions and negatives in ``folds``, each scored by a fit on the others there."""
        inside, negative_inside = np.isin(self.fold, folds), np.isin(self.negative_fold, folds)
        conf, negative_conf = np.zeros(len(self.fold)), np.zeros(len(self.negative_fold))
        for f in folds:
            model = self.fit(inside & (self.fold != f), negative_inside & (self.negative_fold != f))
            conf[self.fold == f] = model.predict(self.top[self.fold == f])
            negative_conf[self.negative_fold == f] = model.predict(self.negative_top[self.negative_fold == f])
        return conf[inside], self.right[inside], negative_conf[negative_inside], np.flatnonzero(inside)


def calibrate(
    questions: Sequence[tuple[np.ndarray, np.ndarray]],
    groups: Sequence[int],
    target: float,
    *,
    negatives: Sequence[np.ndarray] = (),
    folds: int = 5,
    depth: int = CALIBRATE_DEPTH,
    l2: float = CALIBRATE_L2,
    prior: ConfidenceModel | None = None,
    fitted_on: str = "",
) -> Calibration:
    """Refit the model on a user's labelled questions, cross-validated by ``groups``, threshold chosen nested.

    ``questions``: per labelled question, its candidates' :func:`~faq_search.index.confidence.features` in
    ranking order and whether each is right; ``groups``: one key per question, equal for questions that share
    their answer (so a fold never grades a question by a fit that saw its twin); ``negatives``: features of
    questions the FAQ cannot answer; ``prior``: the model every fit is pulled towards (:data:`CALIBRATE_L2`).
    The returned model is fitted on everything; its threshold is the lowest reaching ``target`` on the
    out-of-fold confidences. Fewer than three folds (few answer groups): each fold's
    threshold is chosen on its fit's own confidences instead.
    """
    keys = np.unique(np.asarray(groups), return_inverse=True)[1]
    top = np.array([q[0][0] for q in questions])
    folds = max(2, min(folds, int(keys.max()) + 1 if len(keys) else 0))
    fold_of = np.random.default_rng(0).permutation(int(keys.max()) + 1) % folds
    data = _Folds(
        questions,
        fold_of[keys],
        top,
        np.array([bool(q[1][0]) for q in questions]),
        np.array([n[0] for n in negatives]).reshape(len(negatives), top.shape[1]),
        np.arange(len(negatives)) % folds,
        depth,
        l2,
        prior,
    )
    held_conf, _, held_negative, _ = data.out_of_fold(list(range(folds)))
    answered = np.zeros(len(questions), dtype=bool)
    answered_negative = np.zeros(len(negatives), dtype=bool)
    for f in range(folds):
        others = [g for g in range(folds) if g != f]
        if len(others) >= 2:
            conf, right, negative_conf, _ = data.out_of_fold(others)
        else:
            model = data.fit(data.fold != f, data.negative_fold != f)
            conf, right = model.predict(data.top[data.fold != f]), data.right[data.fold != f]
            negative_conf = model.predict(data.negative_top[data.negative_fold != f])
        threshold = _threshold(conf, right, negative_conf, target)
        answered[data.fold == f] = held_conf[data.fold == f] >= threshold
        answered_negative[data.negative_fold == f] = held_negative[data.negative_fold == f] >= threshold
    total = int(answered.sum() + answered_negative.sum())
    final = dataclasses.replace(
        data.fit(np.ones(len(questions), bool), np.ones(len(negatives), bool)), fitted_on=fitted_on
    )
    return Calibration(
        model=final,
        threshold=_threshold(held_conf, data.right, held_negative, target),
        precision=float((answered & data.right).sum() / total) if total else 1.0,
        coverage=float(answered.mean()),
        ece=expected_calibration_error(held_conf, data.right),
        held_out=tuple(held_conf.tolist()),
        held_out_right=tuple(data.right.tolist()),
    )


def _threshold(conf: np.ndarray, right: np.ndarray, negative_conf: np.ndarray, target: float) -> float:
    """The lowest threshold reaching ``target`` when answered negatives count as wrong."""
    return lowest_threshold(
        np.concatenate([conf, negative_conf]), np.concatenate([right, np.zeros(len(negative_conf), bool)]), target
    )
