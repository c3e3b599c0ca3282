"""The query engine: an FAQ index that answers questions with ranked entries.

:class:`FaqIndex` ties the pieces together: it embeds the FAQ's fields with an
encoder, keeps the vectors in a :class:`~faq_search.store.VectorStore`, writes
and reads bundles, and answers ``ask(question)`` with ``list[Match]``. The
same object serves the CLI, the HTTP server and in-process bots; ``ask`` is
safe to call from several threads at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.bundle import ENTRIES, ROWS, VECTORS, Manifest, now_iso, read_bundle, write_bundle
from faq_search.chunking import split_windows
from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoder import BertEncoder, Encoder
from faq_search.errors import BundleError, InputError, SettingsMismatchError
from faq_search.lexical import HybridSettings, LexicalIndex, entry_document, fuse
from faq_search.settings import EncoderIdentity, EncoderSettings, Fields, choice
from faq_search.store import VectorStore

QUESTION = "question"
ANSWER = "answer"

WINDOW_TOKENS = 128
"""Texts longer than this many word pieces (or the encoder's window) are embedded as overlapping windows.

Measured on the shared sets, windows of 64, 128 and 256 word pieces rank within 0.01 MRR@10 of each
other; 128 keeps one passage's worth of text per vector, so a fact deep in a long answer stays visible.
"""

_Ranked = tuple[int, float, float, float | None, int]  # entry, score, cosine, lexical, best row


@dataclass(frozen=True)
class Match:
    """One ranked answer.

    ``score`` ranks the matches and is what ``min_score`` applies to: the cosine
    of the best-matching field, plus the BM25 evidence when hybrid fusion is on
    (see :mod:`faq_search.lexical`). ``cosine`` is the dense part alone and
    ``lexical`` the raw BM25 score (None without fusion). ``field`` says which
    text matched best: ``question`` or ``answer``.
    """

    entry: FaqEntry
    score: float
    rank: int
    field: str
    cosine: float
    lexical: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by ``ask --json`` and the HTTP API."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "cosine": round(self.cosine, 6),
            "lexical": None if self.lexical is None else round(self.lexical, 6),
            "field": self.field,
            "id": self.entry.id,
            "question": self.entry.question,
            "answer": self.entry.answer,
            "metadata": dict(self.entry.metadata),
        }


@dataclass(frozen=True)
class BuildReport:
    """What :meth:`FaqIndex.build` did, for the CLI's summary line."""

    entries: int
    vectors: int
    unique_texts: int
    seconds: float
    fields: tuple[str, ...] = field(default_factory=tuple)


class FaqIndex:
    """An FAQ with its vectors, ready to answer questions."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        store: VectorStore,
        manifest: Manifest,
        encoder: Encoder | None = None,
        *,
        model_path: str | None = None,
        threads: int | None = None,
    ) -> None:
        self.entries = list(entries)
        self.store = store
        self.manifest = manifest
        self.report: BuildReport | None = None
        self._encoder = encoder
        self._model_path = model_path
        self._threads = threads
        self._lock = threading.Lock()
        self.hybrid = HybridSettings.from_dict(manifest.hybrid)
        self._lexical: LexicalIndex | None = None
        self._dense_layout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if encoder is not None:
            self._check_encoder(encoder)

    # -- building -----------------------------------------------------------

    @classmethod
    def build(
        cls,
        source: str | Path | Sequence[FaqEntry],
        *,
        settings: EncoderSettings | None = None,
        encoder: Encoder | None = None,
        fields: Fields | str = Fields.QUESTION_ANSWER,
        hybrid: HybridSettings | None = None,
        index_type: str = "flat",
        batch_size: int = 64,
        threads: int | None = None,
        progress: bool = False,
    ) -> FaqIndex:
        """Embed an FAQ (a file path, read with default columns, or entries) into a new index.

        Pass ``encoder`` to reuse a loaded model (or a test fake); otherwise a
        :class:`BertEncoder` is loaded with ``settings``. ``hybrid`` defaults to
        BM25 fusion with weight 0.5; ``HybridSettings(weight=0)`` is dense only.
        """
        started = time.perf_counter()
        if isinstance(source, (str, Path)):
            entries = read_faq(source)
            source_name: str | None = Path(source).name
        else:
            entries = list(source)
            source_name = None
        if not entries:
            raise InputError("the FAQ has no entries; add at least one answer")
        fields = choice(Fields, fields, "fields")
        hybrid = HybridSettings() if hybrid is None else hybrid
        if encoder is None:
            encoder = BertEncoder(settings, batch_size=batch_size, threads=threads, progress=progress)

        texts, row_entry, row_field = embedding_rows(entries, fields, window_splitter(encoder))
        unique = list(dict.fromkeys(texts))  # identical texts (a question shared by answers) embed once
        vectors = encoder.encode(unique)
        where = {text: i for i, text in enumerate(unique)}
        store = VectorStore.build(vectors[[where[t] for t in texts]], row_entry, row_field, index_type)

        manifest = Manifest(
            encoder=encoder.identity.to_dict(),
            settings=_settings_of(encoder, settings).to_dict(),
            precision=str(getattr(getattr(encoder, "precision", None), "value", "n/a")),
            entry_count=len(entries),
            vector_count=len(store),
            fields=tuple(f for f in (QUESTION, ANSWER) if f in set(row_field)),
            index_type=index_type,
            hybrid=hybrid.to_dict() if hybrid.enabled else None,
            source=source_name,
            created=now_iso(),
        )
        index = cls(entries, store, manifest, encoder, threads=threads)
        index.report = BuildReport(
            entries=len(entries),
            vectors=len(store),
            unique_texts=len(unique),
            seconds=time.perf_counter() - started,
            fields=manifest.fields,
        )
        return index

    # -- persistence --------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the index as a bundle directory at ``path`` (atomically replacing one there)."""
        entries = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in self.entries)
        rows = json.dumps({"entry": self.store.row_entry.tolist(), "field": self.store.row_field})
        self.manifest = write_bundle(
            path,
            self.manifest,
            {VECTORS: self.store.to_bytes(), ROWS: rows.encode("utf-8"), ENTRIES: entries.encode("utf-8")},
        )
        return Path(path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        model_path: str | None = None,
        threads: int | None = None,
    ) -> FaqIndex:
        """Open a bundle. The query encoder is loaded on first ``ask`` with the bundle's settings.

        ``model_path`` points at the same model in another place (the weights
        must be identical); ``encoder`` supplies a loaded one, checked against
        the bundle.
        """
        manifest, files = read_bundle(path)
        try:
            entries = [FaqEntry.from_dict(json.loads(line)) for line in files[ENTRIES].decode("utf-8").splitlines()]
            rows = json.loads(files[ROWS].decode("utf-8"))
            store = VectorStore(VectorStore.index_from_bytes(files[VECTORS]), np.asarray(rows["entry"]), rows["field"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{path}: the index files are inconsistent ({exc}); rebuild the index") from None
        if len(entries) != manifest.entry_count or len(store) != manifest.vector_count:
            raise BundleError(f"{path}: entry or vector counts differ from the manifest; rebuild the index")
        return cls(entries, store, manifest, encoder, model_path=model_path, threads=threads)

    # -- querying -----------------------------------------------------------

    @property
    def identity(self) -> EncoderIdentity:
        return EncoderIdentity.from_dict(self.manifest.encoder)

    @property
    def settings(self) -> EncoderSettings:
        return EncoderSettings.from_dict(self.manifest.settings)

    @property
    def encoder(self) -> Encoder:
        """The query encoder: the bundle's settings, loaded once, checked against the bundle."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    settings = self.settings
                    if self._model_path is not None:
                        settings = EncoderSettings.from_dict({**settings.to_dict(), "model": self._model_path})
                    encoder = BertEncoder(settings, threads=self._threads)
                    self._check_encoder(encoder)
                    self._encoder = encoder
        return self._encoder

    def _check_encoder(self, encoder: Encoder) -> None:
        differences = self.identity.differences(encoder.identity)
        if differences:
            raise SettingsMismatchError(
                "the query encoder differs from the one this index was built with ("
                + "; ".join(differences)
                + "); query with the index's own settings or rebuild the index"
            )

    def ask(self, question: str, k: int = 5, min_score: float | None = None) -> list[Match]:
        """The ``k`` best answers to ``question``, best first, each answer at most once.

        Matches scoring below ``min_score`` (default: the bundle's calibrated
        threshold, if any) are left out; an empty list means no confident answer.
        """
        return self.ask_batch([question], k=k, min_score=min_score)[0]

    def ask_batch(self, questions: Sequence[str], k: int = 5, min_score: float | None = None) -> list[list[Match]]:
        """:meth:`ask` for several questions with one encoder call."""
        if isinstance(questions, str):
            raise InputError("ask_batch takes a list of questions; use ask() for one")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        for question in questions:
            if not isinstance(question, str) or not question.strip():
                raise InputError("the question is empty; type a question")
        if not questions:
            return []
        threshold = self.manifest.min_score if min_score is None else min_score
        vectors = self.encoder.encode([q.strip() for q in questions])
        ranked: list[list[_Ranked]]
        if self.hybrid.enabled:
            ranked = self._hybrid_search(vectors, questions, k)
        else:
            ranked = [
                [(hit.entry, hit.score, hit.score, None, hit.row) for hit in hits]
                for hits in self.store.search(vectors, k)
            ]
        results = []
        for hits in ranked:
            matches = [
                Match(
                    entry=self.entries[entry],
                    score=score,
                    rank=rank,
                    field=self.store.row_field[row],
                    cosine=cosine,
                    lexical=lexical,
                )
                for rank, (entry, score, cosine, lexical, row) in enumerate(hits, start=1)
            ]
            results.append([m for m in matches if threshold is None or m.score >= threshold])
        return results

    def set_min_score(self, min_score: float | None) -> None:
        """Store a confidence threshold in the index (persisted by :meth:`save`)."""
        self.manifest = dataclasses.replace(self.manifest, min_score=min_score)

    @property
    def lexical(self) -> LexicalIndex:
        """BM25 over each entry's embedded fields, built on first use."""
        if self._lexical is None:
            with self._lock:
                if self._lexical is None:
                    with_questions = QUESTION in self.manifest.fields
                    documents = [entry_document(e.questions if with_questions else (), e.answer) for e in self.entries]
                    self._lexical = LexicalIndex(documents, self.hybrid)
        return self._lexical

    def dense_entry_scores(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine of every entry (max over its rows) and every row, for a flat index.

        Returns ``(entry_scores [q, entries], row_scores [q, rows])``.
        """
        if self._dense_layout is None:
            with self._lock:
                if self._dense_layout is None:
                    matrix = self.store.index.reconstruct_n(0, len(self.store))
                    order = np.argsort(self.store.row_entry, kind="stable")
                    starts = np.searchsorted(self.store.row_entry[order], np.arange(len(self.entries)))
                    self._dense_layout = (np.ascontiguousarray(matrix[order]), order, starts)
        matrix, order, starts = self._dense_layout
        with _blas_threads(1 if len(vectors) < 16 else None):
            by_entry = vectors @ matrix.T  # rows grouped by entry
        row_scores = np.empty_like(by_entry)
        row_scores[:, order] = by_entry
        return np.maximum.reduceat(by_entry, starts, axis=1), row_scores

    def _hybrid_search(self, vectors: np.ndarray, questions: Sequence[str], k: int) -> list[list[_Ranked]]:
        """Fused ranking: exact over all entries for a flat index, over a dense candidate pool otherwise."""
        lexical = self.lexical.scores(questions)
        out: list[list[_Ranked]] = []
        if self.manifest.index_type == "flat":
            dense, row_scores = self.dense_entry_scores(vectors)
            fused = fuse(dense, lexical, self.hybrid.weight)
            _, order, starts = self._dense_layout  # type: ignore[misc]
            ends = np.append(starts[1:], len(order))
            for q in range(len(questions)):
                top = _top_k(fused[q], k)
                hits: list[_Ranked] = []
                for entry in top.tolist():
                    rows = order[starts[entry] : ends[entry]]
                    row = int(rows[np.argmax(row_scores[q, rows])])
                    hits.append((entry, float(fused[q, entry]), float(dense[q, entry]), float(lexical[q, entry]), row))
                out.append(hits)
            return out
        pools = self.store.search(vectors, max(k, 100))
        for q, pool in enumerate(pools):
            entries = np.array([hit.entry for hit in pool], dtype=np.int64)
            dense_pool = np.array([[hit.score for hit in pool]], dtype=np.float32)
            fused = fuse(dense_pool, lexical[q : q + 1, entries], self.hybrid.weight)[0]
            top = _top_k(fused, k)
            out.append(
                [
                    (pool[i].entry, float(fused[i]), pool[i].score, float(lexical[q, pool[i].entry]), pool[i].row)
                    for i in top
                ]
            )
        return out

    def __len__(self) -> int:
        return len(self.entries)


def _settings_of(encoder: Encoder, settings: EncoderSettings | None) -> EncoderSettings:
    found = getattr(encoder, "settings", None)
    if isinstance(found, EncoderSettings):
        return found
    return settings or EncoderSettings()


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _blas_threads(limit: int | None) -> contextlib.AbstractContextManager[Any]:
    """Few-query products run on one BLAS thread: threading them costs more than it saves."""
    if limit is None:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=limit, user_api="blas")


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index."""
    k = min(k, len(scores))
    kth = np.partition(-scores, k - 1)[k - 1]
    candidates = np.flatnonzero(-scores <= kth)  # every entry tied with the k-th is a candidate
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def window_splitter(encoder: Encoder) -> Callable[[str], list[str]] | None:
    """A long-text splitter for encoders that expose a tokenizer and a window; None for others."""
    tokenizer = getattr(encoder, "tokenizer", None)
    settings = getattr(encoder, "settings", None)
    if tokenizer is None or not isinstance(settings, EncoderSettings):
        return None
    lock = getattr(encoder, "_lock", None) or threading.Lock()

    def split(text: str) -> list[str]:
        with lock:
            return split_windows(tokenizer, text, min(settings.max_seq_len, WINDOW_TOKENS))

    return split


def embedding_rows(
    entries: Sequence[FaqEntry], fields: Fields, splitter: Callable[[str], list[str]] | None = None
) -> tuple[list[str], list[int], list[str]]:
    """The texts to embed and, per text, its entry position and field.

    Each question (when fields include questions) and the answer is a row;
    a text longer than the encoder's window becomes several rows (windows).
    """
    texts: list[str] = []
    row_entry: list[int] = []
    row_field: list[str] = []
    for position, entry in enumerate(entries):
        parts = [(QUESTION, q) for q in entry.questions] if fields is Fields.QUESTION_ANSWER else []
        for name, text in [*parts, (ANSWER, entry.answer)]:
            for window in splitter(text) if splitter else [text]:
                texts.append(window)
                row_entry.append(position)
                row_field.append(name)
    return texts, row_entry, row_field
