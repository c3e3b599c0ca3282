"""BM25 within one question's candidate pool: lexical evidence that does not change as the FAQ grows.

Why not the FAQ's own BM25 (:mod:`faq_search.index.lexical`)? Its IDF is an
FAQ-wide statistic: add 20 times as many unrelated entries and every term's
IDF rises, rare and common ones unevenly, so the same question-entry pair's
lexical evidence, and any confidence built on it, moves (measured on the
shared sets: 19% and 30% of fixed pairs moved by more than 0.05). Here the
document frequencies and the mean length come from the candidates only (the
dense top-:data:`~faq_search.index.confidence.POOL`), and IDF counts as if
the pool were always full, so entries that never reach a question's pool
change nothing for it, and the flat and approximate indexes agree whenever
they find the same candidates.

What it is not: a search. It scores the hundred candidates dense retrieval
already chose; the FAQ-wide BM25 index still reports ``Match.lexical``.
Tokens are those of the FAQ-wide index (bm25s's tokenizer, Snowball stemmer,
Lucene's English stop words). A bundle's BM25 index stores each document's
term frequencies and length (:meth:`LexicalIndex.term_frequencies`), read
from the question's terms' posting lists; with an index from before them,
each candidate is tokenized once on first use and its tokens kept.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.index.columnar import LazySequence, take_entries
from faq_search.index.lexical import analyse, entry_document, stopword_set

if TYPE_CHECKING:
    from faq_search.corpus import FaqEntry
    from faq_search.index.lexical import LexicalIndex

K1 = 1.5
B = 0.3
"""Length normalisation, lower than Lucene's 0.75: the mean length of a pool moves with what enters it,
and measured on the shared sets 0.3 ranks as well as 0.75 (MRR@10 within 0.003) while moving fewer
confidences when the FAQ grows."""


TOKENS_KEPT = 200_000
"""Entries whose tokens are kept between questions; past it the cache starts again (about 200 MB)."""


class EntryDocuments(LazySequence[str]):
    """Each entry's BM25 document (its questions, where indexed, and its answer), made when read."""

    def __init__(self, entries: Sequence[FaqEntry], with_questions: bool) -> None:
        self.entries = entries
        self.with_questions = with_questions

    def __len__(self) -> int:
        return len(self.entries)

    def item(self, position: int) -> str:
        return self._document(self.entries[position])

    def take(self, positions: Sequence[int]) -> list[str]:
        """The documents at ``positions``, decoded together where the entries allow (a columnar table)."""
        return [self._document(e) for e in take_entries(self.entries, positions)]

    def _document(self, entry: FaqEntry) -> str:
        return entry_document(entry.questions if self.with_questions else (), entry.answer)


class PoolLexicon:
    """Stemmed tokens of each FAQ entry's BM25 document, tokenized on first use and kept.

    ``documents`` are the texts the FAQ-wide index holds, one per entry, in entry order; only the
    candidates' are read (:class:`EntryDocuments` makes them on demand, so a large FAQ is never decoded whole).
    ``counts``: the FAQ-wide index of these same documents and tokens, when it stores their term
    frequencies and lengths (:attr:`LexicalIndex.has_counts`): then no document is read or tokenized.
    """

    def __init__(self, documents: Sequence[str], language: str = "english", counts: LexicalIndex | None = None) -> None:
        self.documents = documents
        self.language = language
        self.counts = counts if counts is not None and counts.has_counts else None
        self.entries: object = None
        """What the owner built this from (FaqIndex keeps its entry list here to notice a change)."""
        self._tokens: dict[int, Counter[str]] = {}
        self._lock = threading.Lock()
        self._stemmer: Any = None
        self._stopwords = stopword_set(language)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Stemmed, stop-word-free tokens per text, as the FAQ-wide index makes them."""
        if self._stemmer is None and self.language != "none":
            import Stemmer

            self._stemmer = Stemmer.Stemmer(self.language)
        return analyse(texts, self._stopwords, self._stemmer)

    def query_terms(self, question: str) -> list[str]:
        """The question's distinct terms in first-seen order: BM25 sums them in this order, so its last
        bits are the same in every process (a set's order moves with ``PYTHONHASHSEED``)."""
        return list(dict.fromkeys(self.tokenize([question])[0]))

    def scores(self, question: str, entries: Sequence[int], pool: int) -> np.ndarray:
        """BM25 of ``question`` against each of ``entries`` with the pool's own statistics (float64).

        ``pool`` is the candidate count IDF assumes (at least ``len(entries)``): a term found in
        ``df`` candidates weighs ``log(1 + (pool - df + 0.5) / (df + 0.5))``.
        """
        if self.counts is not None:
            stored, positions = self.counts, np.asarray(entries, dtype=np.int64)
            terms = self.query_terms(question)
            frequencies = (stored.term_frequencies(term, positions) for term in terms)
            return _bm25(frequencies, stored.document_lengths(positions), len(positions), pool)
        known = {e: self._tokens.get(e) for e in entries}  # this call's own view: another may clear the cache
        missing = [e for e, counts in known.items() if counts is None]
        if missing:
            take = getattr(self.documents, "take", None)
            texts = take(missing) if take is not None else [self.documents[e] for e in missing]
            counted = [Counter(tokens) for tokens in self.tokenize(texts)]
            known.update(zip(missing, counted, strict=True))
            with self._lock:
                if len(self._tokens) + len(missing) > TOKENS_KEPT:  # a large FAQ: memory stays bounded
                    self._tokens.clear()
                for entry, counts in zip(missing, counted, strict=True):
                    self._tokens[entry] = counts
        documents = [known[e] or Counter() for e in entries]  # every one is known by now
        return pool_bm25(self.query_terms(question), documents, [d.total() for d in documents], pool)


def pool_bm25(terms: Iterable[str], documents: Sequence[Counter[str]], lengths: Sequence[int], pool: int) -> np.ndarray:
    """BM25 (k1 :data:`K1`, b :data:`B`) of a query's ``terms`` in each document, statistics from these documents.

    ``pool_bm25({"a"}, [Counter(a=1), Counter(b=1)], [1, 1], 2) -> array([0.693..., 0.])`` (idf log 2, tf part 1)
    """
    frequencies = (np.array([doc.get(term, 0) for doc in documents]) for term in terms)
    return _bm25(frequencies, lengths, len(documents), pool)


def _bm25(frequencies: Iterable[np.ndarray], lengths: Sequence[int] | np.ndarray, count: int, pool: int) -> np.ndarray:
    """:func:`pool_bm25` from each query term's frequencies in the ``count`` documents (one array per term)."""
    out = np.zeros(count)
    if not count:
        return out
    size = np.asarray(lengths, dtype=np.float64)
    mean = size.mean() or 1.0
    norm = K1 * (1 - B + B * size / mean)
    total = max(pool, count)
    for counts in frequencies:
        tf = counts.astype(np.float64)
        df = int((tf > 0).sum())
        if df:
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            out += idf * tf * (K1 + 1) / (tf + norm)
    return out
