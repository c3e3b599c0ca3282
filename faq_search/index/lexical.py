"""Lexical (BM25) scoring over the whole FAQ: ``Match.lexical``, and the former fusion benchmarks compare with.

Each FAQ entry is one BM25 document: its questions and its answer. BM25 comes
from ``bm25s`` (sparse-matrix BM25, Lucene variant) with Snowball stemming and
Lucene's English stop words. A bundle stores the built index (bm25s's own
files: ``.npy`` arrays and JSON, read without pickle) under ``lexical/``, so
a cold ``ask`` does not tokenize and stem the whole FAQ again (0.6 s at 10,000
entries); it is rebuilt from the entries when those files are absent.

What ``ask`` ranks and scores with is not here: it uses BM25 among each
question's dense candidates (:mod:`.pool_lexical`, :mod:`.confidence`), whose
statistics do not change as the FAQ grows. :func:`fuse` is the former
FAQ-wide z-score fusion, ``cos + w * sigma_cos * z(bm25)``, kept because the
benchmarks (benchmarks/confidence.py) measure the confidence against it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.errors import InputError


@dataclass(frozen=True)
class HybridSettings:
    """Whether BM25 evidence is used (``weight`` > 0; 0 = dense only) and how the FAQ-wide index is built.

    The weight is an on/off switch: the fusion weight itself lives in the confidence model.
    """

    weight: float = 0.5
    k1: float = 1.5
    b: float = 0.75
    language: str = "english"  # Snowball stemmer and stop words; "none" for neither

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 10.0:
            raise InputError(f"hybrid weight {self.weight} is out of range; use 0 (off) to 10")
        if self.k1 < 0 or not 0.0 <= self.b <= 1.0:
            raise InputError(f"BM25 parameters k1={self.k1}, b={self.b} are out of range; use k1 >= 0 and 0 <= b <= 1")

    @property
    def enabled(self) -> bool:
        return self.weight > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HybridSettings:
        if not data:
            return cls(weight=0.0)
        return cls(**{k: data[k] for k in ("weight", "k1", "b", "language") if k in data})


LEXICAL_DIR = "lexical"
"""Where a bundle keeps its BM25 index."""


class LexicalIndex:
    """BM25 scores of every document for a batch of queries."""

    _bm25: Any  # a bm25s.BM25, or None when no document has a single term (all stop words, emoji or punctuation)

    def __init__(self, documents: Sequence[str], settings: HybridSettings | None = None) -> None:
        import bm25s

        self._setup(settings or HybridSettings(), len(documents))
        tokens = bm25s.tokenize(list(documents), stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False)
        if tokens.vocab:
            self._bm25 = bm25s.BM25(k1=self.settings.k1, b=self.settings.b, method="lucene")
            self._bm25.index(tokens, show_progress=False)

    def _setup(self, settings: HybridSettings, size: int) -> None:
        self.settings = settings
        self.size = size
        self._stemmer = _stemmer(settings.language)
        self._stopwords: str | list[str] = "english" if settings.language == "english" else []
        self._bm25 = None

    def to_files(self) -> dict[str, bytes]:
        """The built index as bm25s writes it (``.npy`` arrays without pickle, JSON), by file name."""
        if self._bm25 is None:
            return {}
        with tempfile.TemporaryDirectory(prefix="faq-search-bm25-") as scratch:
            self._bm25.save(scratch, allow_pickle=False)
            return {path.name: path.read_bytes() for path in sorted(Path(scratch).iterdir()) if path.is_file()}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], size: int, settings: HybridSettings) -> LexicalIndex | None:
        """The index :meth:`to_files` wrote for ``size`` documents; None when the files do not fit it."""
        import bm25s

        index = cls.__new__(cls)
        index._setup(settings, size)
        if not files:
            return None
        with tempfile.TemporaryDirectory(prefix="faq-search-bm25-") as scratch:
            for name, data in files.items():
                if "/" in name or name.startswith("."):
                    return None
                (Path(scratch) / name).write_bytes(data)
            try:
                index._bm25 = bm25s.BM25.load(scratch, mmap=False, allow_pickle=False)
            except Exception:  # bm25s raises what numpy and json raise on a file that is not its own
                return None
        bm25 = index._bm25
        if (
            getattr(bm25, "method", None) != "lucene"
            or (bm25.k1, bm25.b) != (settings.k1, settings.b)
            or int(bm25.scores.get("num_docs", -1)) != size
        ):
            return None
        return index

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """float32 ``[len(queries), documents]``; zero where a query shares no term."""
        import bm25s

        tokenized = bm25s.tokenize(
            list(queries), stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False, return_ids=False
        )
        out = np.zeros((len(queries), self.size), dtype=np.float32)
        if self._bm25 is None:
            return out
        for row, tokens in enumerate(tokenized):
            if tokens:
                out[row] = self._bm25.get_scores(list(tokens))
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)  # degenerate corpora (k1=0, empty documents)


def _stemmer(language: str) -> Any:
    if language == "none":
        return None
    import Stemmer

    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        raise InputError(
            f"no stemmer for language {language!r}; use one of {', '.join(Stemmer.algorithms())} or none"
        ) from None


def entry_document(questions: Sequence[str], answer: str) -> str:
    """The text BM25 indexes for one entry."""
    return "\n".join([*questions, answer])


def fuse(dense: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    """Row-wise ``dense + weight * std(dense) * zscore(lexical)``: the former fusion (see the module docstring)."""
    if weight <= 0:
        return dense.astype(np.float32, copy=True)
    lex_mean = lexical.mean(axis=1, keepdims=True)
    lex_std = lexical.std(axis=1, keepdims=True)
    z_lex = np.divide(lexical - lex_mean, lex_std, out=np.zeros_like(lexical), where=lex_std > 0)
    return (dense + weight * dense.std(axis=1, keepdims=True) * z_lex).astype(np.float32)
