"""Shared texts and hand-made results for the export tests (no model)."""

from __future__ import annotations

import re

import numpy as np

from faq_search.encoding.settings import Pooling
from faq_search.export.embeddings import Embeddings, Level, SentenceEmbedding, TokenEmbedding, WordEmbedding, WordMerge

WORD_RE = re.compile(r"\w+|[^\w\s]")
LONG_TEXT = (
    "Returns are free within thirty days of delivery. Pack the item in its original box, print the label "
    "from your account page and drop the parcel at any post office. Refunds reach your card within five business "
    "days after we receive the parcel; exchanges ship as soon as the returned item is checked. Items that were "
    "worn, washed or damaged cannot be returned, and gift cards are not refundable."
)
SPLIT_WORDS = "Tokenization of unbelievably long words, don't you think? Café naïve."


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def fabricated(level: Level) -> Embeddings:
    """Small hand-made results (no model) for the writers."""
    rng = np.random.default_rng(0)
    records: tuple[SentenceEmbedding, ...] | tuple[TokenEmbedding, ...] | tuple[WordEmbedding, ...]
    if level is Level.SENTENCE:
        records = tuple(
            SentenceEmbedding(text=t, vector=rng.standard_normal(4).astype(np.float32), tokens=("a",), truncated=False)
            for t in ("one", "two")
        )
    elif level is Level.TOKEN:
        records = (
            TokenEmbedding(
                text="hi there",
                tokens=("[CLS]", "hi", "there", "[SEP]"),
                offsets=((0, 0), (0, 2), (3, 8), (0, 0)),
                word_index=(None, 0, 1, None),
                vectors=rng.standard_normal((4, 4)).astype(np.float32),
                windows=1,
                dropped_tokens=0,
                truncated_at=None,
            ),
            TokenEmbedding(
                text="x",
                tokens=(),
                offsets=(),
                word_index=(),
                vectors=np.zeros((0, 4), np.float32),
                windows=1,
                dropped_tokens=3,
                truncated_at=0,
            ),
        )
    else:
        records = (
            WordEmbedding(
                text="unbelievable, really",
                words=("unbelievable", ",", "really"),
                offsets=((0, 12), (12, 13), (14, 20)),
                pieces=(("un", "##believable"), (",",), ("really",)),
                vectors=rng.standard_normal((3, 4)).astype(np.float32),
                merge=WordMerge.MEAN,
                windows=1,
                dropped_words=(),
                truncated_at=None,
            ),
        )
    return Embeddings(
        level=level,
        model_name="fake",
        layer="-2",
        pooling=Pooling.MEAN if level is Level.SENTENCE else None,
        merge=WordMerge.MEAN if level is Level.WORD else None,
        dimension=4,
        normalized=level is Level.SENTENCE,
        max_seq_len=256,
        records=records,
    )
