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
- **features** per candidate (:func:`features`, :data:`FEATURES`): the
  ranking score :func:`fuse` = ``cosine + FUSION_WEIGHT * lexical_share``; the
  ``margin``: this candidate's ranking score minus the best candidate's that
  is not a *sibling* of it (:func:`distinct_margins`: siblings are entries
  filed under the same question, :func:`question_groups`; against its own
  sibling a right answer has no lead at all); and the raw dense ``cosine``,
  which says how close the text is on its own (an out-of-scope question can
  win clearly among weak candidates, but its cosine stays low).
- **model** (:class:`ConfidenceModel`): logistic regression on those
  features, fitted by Newton's method with an L2 penalty, weights kept
  non-negative; its output is the confidence. The shipped coefficients
  (``confidence_default.json``) are fitted on public FAQ sets with the other
  set's questions as out-of-scope negatives (benchmarks/confidence.py);
  ``calibrate`` (:mod:`faq_search.quality.calibration`) refits them on a
  user's labelled questions and stores :meth:`ConfidenceModel.to_dict` in the
  bundle. A version-1 model (``fused``, ``margin`` against the runner-up)
  still loads and scores as it did.

What it is not: a reranker. Ranking is by :func:`fuse`; down the ranked list a
confidence never rises (:meth:`ConfidenceModel.rank` caps each at the one
above it: a candidate with a higher cosine but less lexical evidence could
otherwise out-score a better-ranked one), so it never reorders the list it
annotates.
"""

from __future__ import annotations

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


DENSE_POOL = 16
"""Candidates per question without BM25 evidence: enough to find the best candidate that is not a sibling."""

FEATURES = ("fused", "margin", "cosine")
"""What a version-2 model reads, in this order (:func:`features`)."""

FEATURES_V1 = ("fused", "margin")
"""What a version-1 model reads: the margin is against the runner-up, siblings or not."""

DEFAULT_FILE = "confidence_default.json"
MODEL_VERSION = 2

FIT_L2 = 0.7
"""L2 penalty of the shipped model's fit (on the summed log loss; the bias is free). Measured in
benchmarks/confidence.py on both shared sets: smaller penalties raise the margin's weight, which transfers
better between the sets but lets an out-of-scope question that wins among weak candidates look confident, and
moves confidences more as the FAQ grows; 0.7 keeps the false-answer rate and the size shift at version 1's."""


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


def distinct_margins(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each score minus the best score of a candidate outside its group (0 where every candidate is in it).

    With every group distinct this is :func:`margins`. The winner's siblings are measured against the best
    other group, everyone else against the winner:
    ``distinct_margins(np.array([0.9, 0.8, 0.6]), np.array([7, 7, 3])) -> array([0.3, 0.2, -0.3])``
    """
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    if len(scores) < 2:
        return np.zeros_like(scores)
    order = np.argsort(-scores, kind="stable")
    top = order[0]
    others = order[groups[order] != groups[top]]
    if not len(others):
        return np.zeros_like(scores)
    return scores - np.where(groups == groups[top], scores[others[0]], scores[top])


def question_groups(questions: Sequence[Sequence[str]]) -> np.ndarray:
    """One group id per entry: entries linked by a shared question (case and spacing ignored) share it.

    Entries without questions are their own group. The ids are entry positions (the group's first entry), so
    they mean nothing across FAQs. ``question_groups([["Q a"], ["q  A"], ["b"], []]) -> array([0, 0, 2, 3])``
    """
    parent = list(range(len(questions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for entry, asked in enumerate(questions):
        for question in asked:
            key = " ".join(question.casefold().split())
            if not key:
                continue
            a, b = root(entry), root(first.setdefault(key, entry))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(len(questions))], dtype=np.int64)


def features(
    cosine: np.ndarray, lexical: np.ndarray, weight: float = FUSION_WEIGHT, groups: np.ndarray | None = None
) -> np.ndarray:
    """``[candidates, len(FEATURES)]`` for one question's candidate pool (cosines, raw BM25, groups: same order).

    ``groups`` (the candidates' :func:`question_groups` ids) makes the margin :func:`distinct_margins`; None
    the plain :func:`margins` (what a version-1 model reads, and the same when no two entries share a question).
    ``features(np.array([0.8, 0.6]), np.array([0.0, 5.0]), 0.1) -> [[0.8, 0.1, 0.8], [0.7, -0.1, 0.6]]``
    """
    cosine = np.asarray(cosine, dtype=np.float64)
    fused = fuse(cosine, lexical, weight)
    margin = margins(fused) if groups is None else distinct_margins(fused, groups)
    return np.column_stack([fused, margin, cosine])


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic regression from :data:`FEATURES` to the probability that a match is right.

    ``fit`` standardises nothing: the features are already on small, fixed
    scales (cosines, shares, score differences), so the stored coefficients
    read directly. Two weights make a version-1 model (``fused`` and the
    runner-up ``margin``), three a version-2 one (:data:`FEATURES`).
    """

    weights: tuple[float, ...]
    bias: float
    fusion_weight: float = FUSION_WEIGHT
    fitted_on: str = ""

    @property
    def version(self) -> int:
        return 1 if len(self.weights) == len(FEATURES_V1) else MODEL_VERSION

    @property
    def names(self) -> tuple[str, ...]:
        return FEATURES_V1 if self.version == 1 else FEATURES

    @classmethod
    def fit(
        cls,
        rows: np.ndarray,
        labels: np.ndarray,
        *,
        l2: float = FIT_L2,
        sample_weight: np.ndarray | None = None,
        prior: ConfidenceModel | None = None,
        fusion_weight: float = FUSION_WEIGHT,
        fitted_on: str = "",
    ) -> ConfidenceModel:
        """Newton/IRLS on the (weighted) mean log loss plus ``l2 / total weight * |w - prior|^2 / 2`` (bias free).

        Weights are kept non-negative (more evidence never lowers a confidence): a feature whose weight comes
        out negative, as it can on a few noisy labelled questions, is left out and the rest refitted. With a
        ``prior`` model (of the same features) the penalty pulls towards its weights instead of zero, so a
        fit on a few dozen questions stays near it and one on thousands follows the data.
        ``rows`` has two columns (a version-1 model) or :data:`FEATURES`' three.
        """
        x = np.asarray(rows, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(y) or x.shape[1] not in (len(FEATURES_V1), len(FEATURES)):
            raise InputError(f"fit takes [rows, {len(FEATURES)}] features and one label per row")
        if len(y) == 0 or y.min() == y.max():
            raise InputError("fitting a confidence model needs both right and wrong matches; label more questions")
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        centre = np.zeros(x.shape[1])
        if prior is not None and len(prior.weights) == x.shape[1]:
            centre = np.asarray(prior.weights, dtype=np.float64)
        active = list(range(x.shape[1]))
        while True:
            theta = _newton(x[:, active], y, weight, l2, centre[active])
            if theta[:-1].min(initial=0.0) >= 0:
                break
            active.pop(int(np.argmin(theta[:-1])))
        weights = np.zeros(x.shape[1])
        weights[active] = theta[:-1]
        return cls(tuple(float(v) for v in weights), float(theta[-1]), fusion_weight, fitted_on)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities in (0, 1), one per row of :func:`features` (a version-1 model reads the first two)."""
        x = np.asarray(rows, dtype=np.float64)[:, : len(self.weights)]
        return _sigmoid(x @ np.asarray(self.weights) + self.bias)

    def features(self, cosine: np.ndarray, lexical: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """The :func:`features` this model reads (a version-1 model ignores ``groups``)."""
        return features(cosine, lexical, self.fusion_weight, groups if self.version >= 2 else None)

    def score(
        self, cosine: np.ndarray, lexical: np.ndarray, groups: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ranking scores, confidences)`` of one question's candidates, in their given order (not capped)."""
        rows = self.features(cosine, lexical, groups)
        return rows[:, 0], self.predict(rows)

    def rank(
        self, cosine: np.ndarray, lexical: np.ndarray, k: int, groups: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, confidences)`` of the ``k`` best of one question's candidates, best first.

        Ties keep the candidates' given order (a pool comes best cosine first). Each confidence is capped at
        the one above it, so a threshold cuts the list at one place.
        ``rank(np.array([0.7, 0.9]), np.array([0.0, 0.0]), 1) -> (array([1]), array([p]))``
        """
        ranking, confidence = self.score(cosine, lexical, groups)
        k = min(k, len(ranking))
        order = np.lexsort((np.arange(len(ranking)), -ranking))[:k]
        return order, np.minimum.accumulate(confidence[order])

    def is_monotone(self) -> bool:
        """Whether every weight is non-negative: more of any evidence never lowers a confidence."""
        return all(w >= 0 for w in self.weights)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form a bundle's manifest stores."""
        return {
            "version": self.version,
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
        """The model :meth:`to_dict` wrote (either version); a model for other features is refused with the fix."""
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
        expected = {1: FEATURES_V1, MODEL_VERSION: FEATURES}.get(version)
        if data.get("kind") != "logistic" or names != expected or len(weights) != len(names):
            raise InputError("the stored confidence model is for another version; run faq-search calibrate again")
        if not all(math.isfinite(v) for v in (*weights, bias, fusion_weight)):
            raise InputError("the stored confidence model has non-finite coefficients; run faq-search calibrate again")
        return cls(weights, bias, fusion_weight, str(data.get("fitted_on", "")))


def _newton(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float, centre: np.ndarray) -> np.ndarray:
    """Weights then bias of the weighted logistic fit penalised by ``l2 |w - centre|^2 / 2`` (Newton/IRLS)."""
    design = np.column_stack([x, np.ones(len(x))])
    total = float(weight.sum())
    penalty = np.full(design.shape[1], l2 / total)
    penalty[-1] = 0.0
    target = np.append(centre, 0.0)
    theta = np.zeros(design.shape[1])
    for _ in range(100):
        p = _sigmoid(design @ theta)
        gradient = design.T @ ((p - y) * weight) / total + penalty * (theta - target)
        hessian = (design * (p * (1 - p) * weight)[:, None]).T @ design / total + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


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
