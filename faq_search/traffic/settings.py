"""The choices and defaults of the gaps report, in a module light enough for ``faq-search --help``."""

from __future__ import annotations

from enum import Enum

DEFAULT_MIN_SCORE = 0.5
"""A logged question is a gap below this confidence when the server applied no threshold (scores are probabilities)."""
DEFAULT_SIMILARITY = 0.5
"""Mean cosine (the topic encoder's, measured from the FAQ's centre) at which two groups of gap questions
count as one topic; chosen on benchmarks/bench_gaps.py (see docs/gaps.md)."""


class Clustering(str, Enum):
    """How gap questions are grouped: merge by a similarity threshold, or FAISS k-means with a fixed count."""

    AGGLOMERATIVE = "agglomerative"
    KMEANS = "kmeans"


class TopicEncoder(str, Enum):
    """What embeds gap questions: the bundle's model at its last layer (a sentence encoder), or the index's own."""

    SENTENCE = "sentence"
    INDEX = "index"


class Ranking(str, Enum):
    """How topics are ordered: by volume times novelty (distance from the FAQ's questions and answers) or by volume."""

    NOVELTY = "novelty"
    VOLUME = "volume"


class GapWeight(str, Enum):
    """What one asking of a gap candidate counts: 1, or unserved askings in expectation (see traffic/candidates.py)."""

    ASKINGS = "askings"
    EXPECTED = "expected"


DEFAULT_REVIEW_SCORE: float | None = 0.9
"""Answered questions below this confidence are gap candidates too: an answer less likely to be right than the
precision an operator asks of the bot (``calibrate --target-precision``, default 0.9) is in doubt
(traffic/candidates.py; measured in docs/gaps.md)."""
