"""Ranking metrics: MRR@10, Recall@1/5/10 and nDCG@10, written once.

Everything starts from a ``hits`` matrix ``[queries, depth]``: whether the
entry ranked at each position is relevant. :func:`reciprocal_ranks` builds it
from a score matrix (tune, the adaptation guard), :func:`score_ranking` from
one ranked list of ids (evaluate); both then use the same functions below.

Rankings hold distinct entries (one answer never appears twice), so a relevant
entry counts once. Recall@k is normalised by the number of relevant entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEPTH = 10


def relevance_matrix(relevant: Sequence[Iterable[int]], entries: int) -> np.ndarray:
    """``[queries, entries]`` booleans from each query's relevant entry positions: ``[{1}, {0, 2}], 3 ->
    [[F, T, F], [T, F, T]]``."""
    matrix = np.zeros((len(relevant), entries), dtype=bool)
    for row, positions in enumerate(relevant):
        matrix[row, list(positions)] = True
    return matrix


def ranked_hits(scores: np.ndarray, relevant: np.ndarray, depth: int = DEPTH) -> np.ndarray:
    """Hits of the top ``depth`` entries per query, best score first; ties keep entry order.

    ``scores`` and ``relevant`` are ``[queries, entries]``. Example: scores
    ``[[0.1, 0.9, 0.5]]`` with ``relevant`` ``[[True, False, False]]`` ->
    ``[[False, False, True]]``.
    """
    depth = min(depth, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    return np.take_along_axis(np.asarray(relevant, dtype=bool), top, axis=1)


def reciprocal_from_hits(hits: np.ndarray) -> np.ndarray:
    """Per query, 1/rank of the first hit (else 0): ``[[False, True, True]] -> [0.5]``."""
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)


def reciprocal_ranks(scores: np.ndarray, relevant: np.ndarray, depth: int = DEPTH) -> np.ndarray:
    """Per query, 1/rank of the first relevant entry within ``depth`` (else 0). Ties keep entry order."""
    return reciprocal_from_hits(ranked_hits(scores, relevant, depth))


def hit_metrics(hits: np.ndarray, relevant_counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query MRR@10, Recall@1/5/10 and nDCG@10 from ``hits [queries, depth]``.

    ``relevant_counts`` is how many entries are relevant to each query (the
    recall denominator and the ideal DCG); a query with none scores 0.
    """
    hits = np.asarray(hits, dtype=bool)[:, :DEPTH]
    counts = np.asarray(relevant_counts, dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(DEPTH) + 2.0)
    dcg = hits.astype(np.float64) @ discounts[: hits.shape[1]]
    ideal_prefix = np.concatenate([[0.0], np.cumsum(discounts)])
    ideal = ideal_prefix[np.minimum(counts, DEPTH).astype(int)]
    denominator = np.maximum(counts, 1.0)
    return {
        "mrr_at_10": reciprocal_from_hits(hits),
        "recall_at_1": hits[:, :1].sum(axis=1) / denominator,
        "recall_at_5": hits[:, :5].sum(axis=1) / denominator,
        "recall_at_10": hits.sum(axis=1) / denominator,
        "ndcg_at_10": np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0),
    }


def score_ranking(ranked_ids: Sequence[str], relevant: frozenset[str]) -> dict[str, float]:
    """Per-query metrics for one ranked list of entry ids."""
    hits = np.zeros((1, DEPTH), dtype=bool)
    hits[0, : min(len(ranked_ids), DEPTH)] = [entry_id in relevant for entry_id in ranked_ids[:DEPTH]]
    return {name: float(values[0]) for name, values in hit_metrics(hits, np.asarray([len(relevant)])).items()}


def mean_and_error(values: np.ndarray) -> tuple[float, float]:
    """The mean of per-query scores and its standard error (0 for fewer than two queries)."""
    error = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), error
