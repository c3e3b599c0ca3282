"""calibrate's core: the refit model and its nested threshold hold up on questions they never saw."""

from __future__ import annotations

import numpy as np
import pytest

from faq_search.index import confidence
from faq_search.quality.calibration import calibrate, lowest_threshold

TRUTH = np.array([9.0, 14.0, 3.0])


def synthetic_questions(
    n: int, seed: int, low: float = 0.5, high: float = 1.1
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int]]:
    """Questions whose matches are right with the probability a known logistic gives; a group per five."""
    rng = np.random.default_rng(seed)
    questions = []
    for _ in range(n):
        fused = np.sort(rng.uniform(low, high, 10))[::-1]
        cosine = fused - rng.uniform(0.0, 0.15, 10)
        rows = np.column_stack([fused, confidence.margins(fused), cosine])
        right = rng.random(10) < 1 / (1 + np.exp(-(rows @ TRUTH - 11.5)))
        questions.append((rows, right))
    return questions, [i // 5 for i in range(n)]


def test_calibrate_reaches_the_target_precision_on_held_out_questions() -> None:
    questions, groups = synthetic_questions(3_000, seed=7)
    result = calibrate(questions, groups, 0.9)
    assert result.precision >= 0.88
    assert 0.05 < result.coverage < 0.95
    assert result.ece < 0.05
    assert result.model.is_monotone()
    fresh, _ = synthetic_questions(3_000, seed=17)  # questions no fit saw: the stored threshold holds there too
    conf = result.model.predict(np.array([q[0][0] for q in fresh]))
    right = np.array([q[1][0] for q in fresh])
    assert right[conf >= result.threshold].mean() == pytest.approx(0.9, abs=0.03)


def test_the_stored_threshold_reaches_the_target_on_fresh_questions_after_a_small_calibration() -> None:
    """Calibrated on 300 questions at a time, the threshold holds on questions no fit saw, on average."""
    fresh, _ = synthetic_questions(5_000, seed=999)
    top = np.array([q[0][0] for q in fresh])
    right = np.array([q[1][0] for q in fresh])
    reached, reported = [], []
    for seed in range(8):
        questions, groups = synthetic_questions(300, seed=100 + seed)
        result = calibrate(questions, groups, 0.9)
        reached.append(right[result.model.predict(top) >= result.threshold].mean())
        reported.append(result.precision)
    assert np.mean(reached) >= 0.895
    assert np.mean(reported) <= np.mean(reached) + 0.01  # the cross-validated estimate is not optimistic


def test_calibrate_with_negatives_answers_fewer_of_them() -> None:
    questions, groups = synthetic_questions(1_500, seed=8)
    negatives = [q[0] for q in synthetic_questions(500, 9, 0.4, 0.9)[0]]  # weaker matches
    without = calibrate(questions, groups, 0.9)
    with_negatives = calibrate(questions, groups, 0.9, negatives=negatives)
    assert with_negatives.coverage < without.coverage  # answering fewer negatives costs some coverage
    assert with_negatives.precision == pytest.approx(0.9, abs=0.04)


def test_few_answer_groups_still_calibrate() -> None:
    questions, _ = synthetic_questions(200, seed=3)
    result = calibrate(questions, [i % 2 for i in range(200)], 0.8)  # two groups: two folds, no inner split
    assert 0.0 < result.threshold < 1.0
    assert len(result.held_out) == 200


def test_lowest_threshold_is_the_lowest_confidence_reaching_the_target() -> None:
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6])
    right = np.array([True, True, False, True, False])
    assert lowest_threshold(conf, right, 0.75) == 0.7
    assert lowest_threshold(conf, right, 1.0) == 0.9
    assert lowest_threshold(conf, np.zeros(5, bool), 0.5) == float("inf")
