"""The records of exported embeddings: one per text, and the :class:`Embeddings` that holds them.

Plain frozen dataclasses with their JSON shape (``to_dict``); no model, no
computation. Token and word vectors are the raw hidden states (not
normalised); sentence vectors are unit length. Writing a file
(:mod:`faq_search.export.writers`) and the readable summary
(:mod:`faq_search.export.render`) live in their own modules; the methods here
only hand over to them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faq_search.encoding.settings import Pooling
from faq_search.errors import InputError

if TYPE_CHECKING:
    import numpy as np


class Level(str, enum.Enum):
    """What one vector stands for."""

    SENTENCE = "sentence"  # one pooled, unit-length vector per text
    TOKEN = "token"  # one vector per word piece
    WORD = "word"  # one vector per whitespace/punctuation word, its pieces merged


class WordMerge(str, enum.Enum):
    """How the word pieces of one word become the word's vector."""

    FIRST = "first"  # the first piece (BERT's own choice for tagging)
    LAST = "last"  # the last piece
    MEAN = "mean"  # the average of the pieces


@dataclass(frozen=True, eq=False)
class SentenceEmbedding:
    """One text's sentence vector (unit length) and the word pieces the model saw."""

    text: str
    vector: np.ndarray  # float32 [dimension], unit length
    tokens: tuple[str, ...]  # the pieces pooled over, [CLS]/[SEP] included, after truncation
    truncated: bool  # the text was longer than max_seq_len and its end was not seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "truncated": self.truncated,
            "vector": self.vector.tolist(),
        }


@dataclass(frozen=True, eq=False)
class TokenEmbedding:
    """One vector per word piece of a text, in text order.

    ``offsets[i]`` is the character span ``text[start:end]`` of piece ``i``
    ((0, 0) for [CLS]/[SEP]); ``word_index[i]`` is the word the piece belongs
    to (None for [CLS]/[SEP]), the same numbering :class:`WordEmbedding` uses.
    """

    text: str
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    word_index: tuple[int | None, ...]
    vectors: np.ndarray  # float32 [len(tokens), width], not normalised
    windows: int  # how many model windows the text ran in (1 unless it is long)
    dropped_tokens: int  # pieces past the window that got no vector (only with windows=False)
    truncated_at: int | None  # character where the unembedded rest starts, or None

    @property
    def truncated(self) -> bool:
        return self.dropped_tokens > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "offsets": [list(span) for span in self.offsets],
            "word_index": list(self.word_index),
            "windows": self.windows,
            "dropped_tokens": self.dropped_tokens,
            "truncated_at": self.truncated_at,
            "vectors": self.vectors.tolist(),
        }


@dataclass(frozen=True, eq=False)
class WordEmbedding:
    """One vector per word of a text, in text order.

    ``text[start:end]`` for ``offsets[i]`` is exactly ``words[i]``;
    ``pieces[i]`` are the word pieces merged into ``vectors[i]``. Words past
    the window (only with ``windows=False``) are listed in ``dropped_words``.
    """

    text: str
    words: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    pieces: tuple[tuple[str, ...], ...]
    vectors: np.ndarray  # float32 [len(words), width], not normalised
    merge: WordMerge
    windows: int
    dropped_words: tuple[str, ...]
    truncated_at: int | None

    @property
    def truncated(self) -> bool:
        return bool(self.dropped_words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "words": list(self.words),
            "offsets": [list(span) for span in self.offsets],
            "pieces": [list(p) for p in self.pieces],
            "merge": self.merge.value,
            "windows": self.windows,
            "dropped_words": list(self.dropped_words),
            "truncated_at": self.truncated_at,
            "vectors": self.vectors.tolist(),
        }


Record = SentenceEmbedding | TokenEmbedding | WordEmbedding


@dataclass(frozen=True, eq=False)
class Embeddings:
    """The result of :func:`~faq_search.export.compute.embed`: records of one level plus how they were made."""

    level: Level
    model_name: str
    layer: str
    pooling: Pooling | None  # sentence level only
    merge: WordMerge | None  # word level only
    dimension: int
    normalized: bool  # True for sentence vectors only
    max_seq_len: int
    records: tuple[Record, ...]

    @property
    def vector_count(self) -> int:
        return sum(1 if isinstance(r, SentenceEmbedding) else len(r.vectors) for r in self.records)

    @property
    def truncated_count(self) -> int:
        return sum(r.truncated for r in self.records)

    def truncation_warning(self) -> str | None:
        """One line saying how many texts were cut and what to do, or None when none was."""
        cut = self.truncated_count
        if not cut:
            return None
        total = len(self.records)
        if self.level is Level.SENTENCE:
            return (
                f"{cut} of {total} texts are longer than the {self.max_seq_len}-piece window and were cut; "
                "raise --max-seq-len (up to the model's window, 512 for BERT), or use --level token/word, "
                "which run long texts in windows"
            )
        lost = sum(
            r.dropped_tokens if isinstance(r, TokenEmbedding) else len(r.dropped_words)
            for r in self.records
            if not isinstance(r, SentenceEmbedding)
        )
        unit = "word pieces" if self.level is Level.TOKEN else "words"
        return (
            f"{cut} of {total} texts were cut at the {self.max_seq_len}-piece window ({lost} {unit} not embedded); "
            "drop --truncate to embed long texts whole in windows"
        )

    def metadata(self) -> dict[str, Any]:
        """Everything but the records, JSON-ready."""
        return {
            "level": self.level.value,
            "model": self.model_name,
            "layer": self.layer,
            "pooling": self.pooling.value if self.pooling else None,
            "merge": self.merge.value if self.merge else None,
            "dimension": self.dimension,
            "normalized": self.normalized,
            "max_seq_len": self.max_seq_len,
            "texts": len(self.records),
            "vectors": self.vector_count,
            "truncated_texts": self.truncated_count,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.metadata(), "records": [r.to_dict() for r in self.records]}

    def matrix(self) -> np.ndarray:
        """Sentence level only: the vectors stacked as float32 ``[texts, dimension]``."""
        import numpy as np

        if self.level is not Level.SENTENCE:
            raise InputError(
                f"{self.level.value}-level texts have different numbers of vectors, so they do not stack "
                "into one [n, dim] array; use the records, or --level sentence"
            )
        return np.stack([r.vector for r in self.records if isinstance(r, SentenceEmbedding)])

    def save(self, path: str | Path) -> Path:
        """Write to ``.npy`` (sentence level), ``.jsonl`` or ``.parquet``, replacing the file atomically."""
        from faq_search.export.writers import save

        return save(self, path)

    def summary(self, *, show_tokens: bool = False, values: int = 4) -> str:
        """A readable account: what was embedded and, per text, the first values (and tokens when asked)."""
        from faq_search.export.render import summary

        return summary(self, show_tokens=show_tokens, values=values)
