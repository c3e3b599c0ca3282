"""Grouping question vectors into topics, for the gaps report.

Agglomerative clustering on cosine with average linkage: every question
starts alone, and the two groups whose members are most alike on average
(weighted by how often each was asked) merge, until no two are at least
``similarity`` alike. Average linkage, not centroid linkage: a centroid of
a spread-out group is closer to everything than its members are, so
centroid merges snowball into one large topic. The
number of topics is not chosen in advance (a gaps report cannot know how
many topics its FAQ lacks); the similarity threshold is what a user tunes.
Above :data:`DIRECT_LIMIT` questions, FAISS spherical k-means first
over-clusters them into :data:`DIRECT_LIMIT` groups, which then merge the
same way, so the cost stays near O(DIRECT_LIMIT^2) per merge whatever the
log's size. ``kmeans`` (FAISS k-means with a fixed ``k``) is kept as the
measured alternative (benchmarks/bench_gaps.py).

``agglomerate([[1, 0], [0.99, 0.14], [0, 1]], weights=[1, 1, 1], similarity=0.9)`` -> ``[0, 0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIRECT_LIMIT = 1500


def agglomerate(vectors: np.ndarray, weights: Sequence[float], similarity: float, seed: int = 0) -> np.ndarray:
    """A topic number per vector (0 = the heaviest topic), merging while groups are >= ``similarity`` alike.

    Two groups are as alike as the weighted mean cosine over every pair of
    their members (average linkage), which is ``sum_a . sum_b / (w_a w_b)``
    for unit vectors: a merge updates one row from the groups' vector sums.
    """
    vectors = _unit(np.asarray(vectors, dtype=np.float32))
    weight = np.asarray(weights, dtype=np.float64)
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.arange(len(vectors))
    if len(vectors) > DIRECT_LIMIT:
        start = kmeans(vectors, DIRECT_LIMIT, seed=seed)
    groups = [np.flatnonzero(start == g) for g in np.unique(start)]
    sums = np.stack([(vectors[g] * weight[g, None]).sum(axis=0) for g in groups]).astype(np.float64)
    totals = np.array([weight[g].sum() for g in groups])
    alive = np.ones(len(groups), dtype=bool)
    sims = (sums @ sums.T) / np.outer(totals, totals)
    np.fill_diagonal(sims, -np.inf)
    while alive.sum() > 1:
        a, b = divmod(int(np.argmax(sims)), len(groups))
        if sims[a, b] < similarity:
            break
        groups[a] = np.concatenate([groups[a], groups[b]])
        sums[a] += sums[b]
        totals[a] += totals[b]
        alive[b] = False
        row = (sums @ sums[a]) / (totals * totals[a])
        row[~alive] = -np.inf
        row[a] = -np.inf
        sims[a, :] = sims[:, a] = row
        sims[b, :] = sims[:, b] = -np.inf
    return _labels_by_weight([groups[i] for i in np.flatnonzero(alive)], weight, len(vectors))


def kmeans(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """FAISS spherical k-means: a cluster number per vector, ``min(k, n)`` clusters (some may end up empty)."""
    import faiss

    vectors = np.ascontiguousarray(_unit(np.asarray(vectors, dtype=np.float32)))
    k = max(1, min(k, len(vectors)))
    if k == 1:
        return np.zeros(len(vectors), dtype=np.int64)
    model = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=seed, spherical=True, min_points_per_centroid=1)
    model.train(vectors)
    _, assigned = model.index.search(vectors, 1)
    return assigned[:, 0].astype(np.int64)


def relabel_by_weight(labels: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The same partition numbered by total weight, heaviest first (0, 1, ...)."""
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    return _labels_by_weight(groups, np.asarray(weights, dtype=np.float64), len(labels))


def _labels_by_weight(groups: list[np.ndarray], weight: np.ndarray, n: int) -> np.ndarray:
    order = sorted(range(len(groups)), key=lambda g: (-weight[groups[g]].sum(), int(groups[g].min())))
    labels = np.empty(n, dtype=np.int64)
    for number, g in enumerate(order):
        labels[groups[g]] = number
    return labels


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
