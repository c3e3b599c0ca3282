"""The choices and defaults of the gaps report, in a module light enough for ``faq-search --help``."""

from __future__ import annotations

from enum import Enum

DEFAULT_MIN_SCORE = 0.5
"""A logged question is a gap below this confidence when the server applied no threshold (scores are probabilities)."""
DEFAULT_SIMILARITY = 0.5
"""Mean cosine (the bundle's encoder, measured from the FAQ's centre) at which two groups of gap questions
count as one topic; chosen on benchmarks/bench_gaps.py (see docs/gaps.md)."""


class Clustering(str, Enum):
    """How gap questions are grouped: merge by a similarity threshold, or FAISS k-means with a fixed count."""

    AGGLOMERATIVE = "agglomerative"
    KMEANS = "kmeans"
