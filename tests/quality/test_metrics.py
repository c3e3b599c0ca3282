"""The one implementation of MRR@10, Recall@k and nDCG@10, in its list and matrix forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faq_search.quality.metrics import mean_and_error, reciprocal_ranks, relevance_matrix, score_ranking


def test_score_ranking() -> None:
    metrics = score_ranking(["a", "b", "c"], frozenset({"b", "z"}))
    assert metrics["mrr_at_10"] == 0.5
    assert metrics["recall_at_1"] == 0.0
    assert metrics["recall_at_5"] == 0.5
    assert metrics["ndcg_at_10"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_reciprocal_ranks_matches_score_ranking() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random((20, 30))
    relevant = rng.random((20, 30)) > 0.9
    got = reciprocal_ranks(scores, relevant)
    for row in range(20):
        ranking = [str(i) for i in np.argsort(-scores[row], kind="stable")]
        wanted = frozenset(str(i) for i in np.flatnonzero(relevant[row]))
        expected = score_ranking(ranking, wanted)["mrr_at_10"] if wanted else 0.0
        assert got[row] == pytest.approx(expected)


def _oracle(ranked: list[str], relevant: frozenset[str]) -> dict[str, float]:
    """The metrics written out by their textbook definitions, one ranked list at a time."""
    top = ranked[:10]
    dcg = sum(1.0 / math.log2(i + 2) for i, entry_id in enumerate(top) if entry_id in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return {
        "mrr_at_10": next((1.0 / (i + 1) for i, entry_id in enumerate(top) if entry_id in relevant), 0.0),
        "recall_at_1": len(set(top[:1]) & relevant) / len(relevant),
        "recall_at_5": len(set(top[:5]) & relevant) / len(relevant),
        "recall_at_10": len(set(top) & relevant) / len(relevant),
        "ndcg_at_10": dcg / ideal,
    }


@pytest.mark.parametrize("seed", range(5))
def test_score_ranking_equals_the_textbook_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        ranked = [str(i) for i in rng.permutation(int(rng.integers(0, 25)))]
        relevant = frozenset(str(i) for i in rng.choice(30, size=int(rng.integers(1, 14)), replace=False))
        got = score_ranking(ranked, relevant)
        assert got == pytest.approx(_oracle(ranked, relevant))


def test_the_guard_and_tune_score_like_evaluate() -> None:
    """The held-out scorer and tune rank a score matrix; evaluate scores id lists: the same MRR for both."""
    rng = np.random.default_rng(9)
    scores = rng.random((12, 15))
    relevant = relevance_matrix([rng.choice(15, size=2, replace=False) for _ in range(12)], 15)
    mean, error = mean_and_error(reciprocal_ranks(scores, relevant))
    per_query = [
        score_ranking([str(i) for i in np.argsort(-row, kind="stable")], frozenset(str(i) for i in np.flatnonzero(r)))
        for row, r in zip(scores, relevant, strict=True)
    ]
    values = np.asarray([m["mrr_at_10"] for m in per_query])
    assert mean == pytest.approx(values.mean())
    assert error == pytest.approx(values.std(ddof=1) / np.sqrt(len(values)))
