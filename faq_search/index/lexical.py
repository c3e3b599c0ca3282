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

import io
import itertools
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.bundle.files import Content
from faq_search.errors import BundleError, InputError
from faq_search.index.lexical_matches import LexicalBatch, LexicalMatches, Posting


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

_ARRAYS = ("data", "indices", "indptr")
"""bm25s's sparse score matrix (CSC: a column of per-document scores per term), one ``.npy`` file each."""

TERM_COUNTS = "term_counts.npy"
"""Each score's term frequency, aligned with bm25s's ``data`` (the same CSC indices and indptr), unsigned ints."""
DOCUMENT_LENGTHS = "document_lengths.npy"
"""Each document's token count (stop words dropped), one per entry: with :data:`TERM_COUNTS` what the pool BM25
(:mod:`.pool_lexical`) needs, so it never tokenizes a candidate. Bundles written before them lack both files."""


class LexicalIndex:
    """BM25 scores of every document for a batch of queries."""

    _bm25: Any  # a bm25s.BM25, or None when no document has a single term (all stop words, emoji or punctuation)
    _counts: np.ndarray | None  # TERM_COUNTS, or None (a bundle written before them)
    _lengths: np.ndarray | None  # DOCUMENT_LENGTHS, or None

    def __init__(self, documents: Sequence[str], settings: HybridSettings | None = None) -> None:
        import bm25s

        self._setup(settings or HybridSettings(), len(documents))
        tokens = bm25s.tokenize(list(documents), stopwords=self._stopwords, stemmer=self._stemmer, show_progress=False)
        if tokens.vocab:
            self._bm25 = bm25s.BM25(k1=self.settings.k1, b=self.settings.b, method="lucene")
            self._bm25.index(tokens, show_progress=False)
            self._counts, self._lengths = _term_counts(tokens.ids, self._bm25.scores)

    def _setup(self, settings: HybridSettings, size: int) -> None:
        self.settings = settings
        self.size = size
        self._stemmer = _stemmer(settings.language)
        self._stopwords: str | list[str] = "english" if settings.language == "english" else []
        self._stopword_set = stopword_set(settings.language)
        self._bm25 = None
        self._posting_cache: dict[int, Posting] = {}
        self._counts = None
        self._lengths = None

    def to_files(self) -> dict[str, bytes]:
        """The built index as bm25s writes it (``.npy`` arrays without pickle, JSON), by file name."""
        if self._bm25 is None:
            return {}
        with tempfile.TemporaryDirectory(prefix="faq-search-bm25-") as scratch:
            self._bm25.save(scratch, allow_pickle=False)
            files = {path.name: path.read_bytes() for path in sorted(Path(scratch).iterdir()) if path.is_file()}
        if self._counts is not None and self._lengths is not None:
            files[TERM_COUNTS] = _npy_bytes(self._counts)
            files[DOCUMENT_LENGTHS] = _npy_bytes(self._lengths)
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, Content], size: int, settings: HybridSettings) -> LexicalIndex | None:
        """The index :meth:`to_files` wrote for ``size`` documents; None when the files do not fit it.

        The arrays are views over the (verified, usually memory-mapped) file contents, as
        ``bm25s.BM25.load(..., mmap=True)`` would map them: nothing is copied or written again,
        so a million-entry index costs no load time and its pages are read as questions need them.
        """
        import bm25s

        from faq_search.index.columnar import npy_view

        index = cls.__new__(cls)
        index._setup(settings, size)
        names = {"params.index.json", "vocab.index.json", *(f"{key}.csc.index.npy" for key in _ARRAYS)}
        if not files or not names <= set(files):
            return None
        try:
            params = json.loads(bytes(files["params.index.json"]))
            vocab = json.loads(bytes(files["vocab.index.json"]).decode("utf-8"))
            arrays = {key: npy_view(files[f"{key}.csc.index.npy"], key) for key in _ARRAYS}
            num_docs = int(params.pop("num_docs", -1))
            params.pop("version", None)
            bm25 = bm25s.BM25(**params)
        except Exception:  # not bm25s's files (a BundleError from npy_view, JSON or parameter errors)
            return None
        if (
            getattr(bm25, "method", None) != "lucene"
            or (bm25.k1, bm25.b) != (settings.k1, settings.b)
            or num_docs != size
            or not isinstance(vocab, dict)
            or arrays["indptr"].ndim != 1
        ):
            return None
        bm25.vocab_dict = vocab
        bm25.scores = {**arrays, "num_docs": num_docs}
        bm25.nonoccurrence_array = None  # "lucene" scores no absent term
        index._bm25 = bm25
        index._counts, index._lengths = _stored_counts(files, len(arrays["data"]), size)
        return index

    @property
    def has_counts(self) -> bool:
        """Whether each document's term frequencies and length are stored (bundles from before them: no)."""
        return self._counts is not None and self._lengths is not None

    def document_lengths(self, entries: np.ndarray) -> np.ndarray:
        """Token counts (stop words dropped) of ``entries``' documents: ``len(analyse([document])[0])``."""
        if self._lengths is None:
            raise ValueError("this BM25 index stores no document lengths (see has_counts)")
        return self._lengths[entries]

    def term_frequencies(self, term: str, entries: np.ndarray) -> np.ndarray:
        """How often the (stemmed) ``term`` occurs in each of ``entries``' documents; 0 outside the vocabulary.

        Read from the term's posting list (a binary search per entry), not from the documents.
        """
        if self._counts is None:
            raise ValueError("this BM25 index stores no term frequencies (see has_counts)")
        out = np.zeros(len(entries), dtype=self._counts.dtype)
        bm25 = self._bm25
        term_id = -1 if bm25 is None else bm25.vocab_dict.get(term, -1)
        if not 0 <= term_id < len(bm25.scores["indptr"]) - 1:
            return out
        posting = self._posting(term_id)
        if not len(posting.docs) or posting.counts is None:
            return out
        at = np.minimum(np.searchsorted(posting.docs, entries), len(posting.docs) - 1)
        found = posting.docs[at] == entries
        out[found] = posting.counts[at[found]]
        return out

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """float32 ``[len(queries), documents]``; zero where a query shares no term (:meth:`matches`, dense)."""
        return (
            np.stack([row.dense() for row in self.matches(queries)])
            if queries
            else np.zeros((0, self.size), np.float32)
        )

    def matches(self, queries: Sequence[str]) -> LexicalBatch:
        """Each query's BM25, read from its terms' posting lists only (what ``ask`` uses).

        The same numbers as :meth:`scores` (bm25s's precomputed per-term scores, added term by
        term in float32 in the query's token order, as bm25s does), computed for the entries
        asked about (:meth:`LexicalMatches.at`) and the query's best entries
        (:meth:`LexicalMatches.best`), with no pass over every document: bm25s's own
        ``get_scores`` and ``retrieve`` fill and scan an array of the whole FAQ per query.
        """
        tokenized = analyse(queries, self._stopword_set, self._stemmer)
        return LexicalBatch([LexicalMatches(self._postings(tokens), self.size) for tokens in tokenized])

    def _postings(self, tokens: list[str]) -> list[Posting]:
        bm25 = self._bm25
        if bm25 is None:
            return []
        terms = len(bm25.scores["indptr"]) - 1  # bm25s's vocabulary may hold a term without a column ("")
        ids = (bm25.vocab_dict.get(t, -1) for t in tokens)
        return [self._posting(term) for term in ids if 0 <= term < terms]

    def _posting(self, term: int) -> Posting:
        """A term's documents (ascending) and per-document scores, views into bm25s's arrays, made once per term."""
        found = self._posting_cache.get(term)
        if found is None:
            indptr, indices, data = (self._bm25.scores[key] for key in ("indptr", "indices", "data"))
            start, end = int(indptr[term]), int(indptr[term + 1])
            docs, scores = indices[start:end], data[start:end]
            counts = None if self._counts is None else self._counts[start:end]
            if len(docs) > 1 and not bool(np.all(docs[1:] > docs[:-1])):  # bm25s writes them sorted; be sure
                order = np.argsort(docs, kind="stable")
                docs, scores = docs[order], scores[order]
                counts = None if counts is None else counts[order]
            found = Posting(term, docs, scores, float(scores.max(initial=0.0)), counts)
            self._posting_cache[term] = found
        return found


def _term_counts(
    ids: Sequence[Sequence[int]], scores: Mapping[str, Any]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:data:`TERM_COUNTS` and :data:`DOCUMENT_LENGTHS` of bm25s's token ids, or (None, None) if they do not align.

    The (term, document) pairs sorted by term then document are a CSC matrix's order; the counts
    are kept only when their documents and column bounds equal bm25s's ``indices`` and ``indptr``
    exactly, so a count always sits at the position of its score.
    """
    lengths = np.fromiter((len(doc) for doc in ids), dtype=np.int64, count=len(ids))
    terms = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    docs = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
    pairs, counts = np.unique((terms << 32) | docs, return_counts=True)
    indices, indptr = scores["indices"], scores["indptr"]
    columns = np.bincount(pairs >> 32, minlength=len(indptr) - 1)
    if (
        len(pairs) != len(indices)
        or len(columns) != len(indptr) - 1
        or not np.array_equal(pairs & 0xFFFFFFFF, indices)
        or not np.array_equal(np.cumsum(columns), np.asarray(indptr)[1:])
    ):
        return None, None
    return counts.astype(_unsigned(counts)), lengths.astype(_unsigned(lengths))


def _unsigned(values: np.ndarray) -> type[np.unsignedinteger[Any]]:
    """The smallest unsigned integer type holding every one of ``values`` (counts: 0 upwards)."""
    top = int(values.max(initial=0))
    return next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)


def _stored_counts(files: Mapping[str, Content], scores: int, size: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The stored :data:`TERM_COUNTS` and :data:`DOCUMENT_LENGTHS` when both are there and fit; else (None, None)."""
    from faq_search.index.columnar import npy_view

    if TERM_COUNTS not in files or DOCUMENT_LENGTHS not in files:
        return None, None
    try:
        counts, lengths = npy_view(files[TERM_COUNTS], TERM_COUNTS), npy_view(files[DOCUMENT_LENGTHS], DOCUMENT_LENGTHS)
    except BundleError:
        return None, None
    if counts.shape != (scores,) or lengths.shape != (size,) or counts.dtype.kind != "u" or lengths.dtype.kind != "u":
        return None, None
    return counts, lengths


def _npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s's (and scikit-learn's) token pattern


def stopword_set(language: str) -> frozenset[str]:
    """The stop words the index drops: Lucene's English ones (bm25s's list) for English, none otherwise."""
    if language != "english":
        return frozenset()
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def analyse(texts: Sequence[str], stopwords: frozenset[str], stemmer: Any) -> list[list[str]]:
    """Tokens per text exactly as ``bm25s.tokenize(..., return_ids=False)`` makes them, at a fraction of its cost.

    Lower case, bm25s's token pattern, stop words dropped, each distinct word stemmed once
    (``stemWords``). bm25s's own function rebuilds its stop-word set for every text (about 2 ms
    per call here), which a question and its hundred candidates paid on every ``ask``.
    """
    split = [[t for t in _TOKEN.findall(text.lower()) if t not in stopwords] for text in texts]
    if stemmer is None:
        return split
    unique = list(dict.fromkeys(t for tokens in split for t in tokens))
    stems = dict(zip(unique, stemmer.stemWords(unique), strict=True))
    return [[stems[t] for t in tokens] for tokens in split]


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
