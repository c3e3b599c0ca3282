"""The query engine: an FAQ index that answers questions with ranked entries.

:class:`FaqIndex` ties the pieces together: it embeds the FAQ's fields with an
encoder, keeps the vectors in a :class:`~faq_search.index.store.VectorStore`, writes
and reads bundles, and answers ``ask(question)`` with ``list[Match]``. The
same object serves the CLI, the HTTP server and in-process bots; ``ask`` is
safe to call from several threads at once.

Updates are incremental: a vector is a function of its text and the encoder
(identity and precision), so every row records a digest of its text, and a
rebuild (``upsert``, ``delete``, ``build(..., reuse=old)``) encodes only texts
no vector is known for. Texts are encoded in groups of equal token length, so
no text is ever padded and its vector does not depend on which other texts
were encoded with it: an updated index equals a full rebuild, in bf16 too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.bundle.files import DATA_FILES, ENTRIES, ROWS, VECTORS, Manifest, now_iso, read_bundle, write_bundle
from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.protocol import Encoder, TextWindows
from faq_search.encoding.settings import ADAPTED_MODEL, ENCODER_DIR, EncoderIdentity, EncoderSettings, Fields, choice
from faq_search.errors import BundleError, InputError, SettingsMismatchError
from faq_search.index.lexical import LEXICAL_DIR, HybridSettings, LexicalIndex, entry_document, fuse
from faq_search.index.store import VectorStore
from faq_search.progress import progress_bar

if TYPE_CHECKING:
    from faq_search.index.cache import EmbeddingCache

QUESTION = "question"
ANSWER = "answer"

WINDOW_TOKENS = 128
"""Texts longer than this many word pieces (or the encoder's window) are embedded as overlapping windows.

Measured on the shared sets, windows of 64, 128 and 256 word pieces rank within 0.01 MRR@10 of each
other; 128 keeps one passage's worth of text per vector, so a fact deep in a long answer stays visible.
"""

CACHE_CHUNK = 128
"""Texts encoded between two writes to a resume cache: the most work a kill can lose."""

_EXACT_STORAGE = ("IndexFlat", "IndexFlatIP", "IndexFlatL2", "IndexHNSWFlat", "IndexIVFFlat")
"""FAISS index classes that give back stored vectors exactly, so they can be reused."""

_Ranked = tuple[int, float, float, float | None, int]  # entry, score, cosine, lexical, best row


@dataclass(frozen=True)
class Match:
    """One ranked answer.

    ``score`` ranks the matches and is what ``min_score`` applies to: the cosine
    of the best-matching field, plus the BM25 evidence when hybrid fusion is on
    (see :mod:`faq_search.index.lexical`). ``cosine`` is the dense part alone and
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
class Answer:
    """A question's answer as a bot sees it: the matches kept at a threshold, or none ("hand over").

    ``ask --json`` and every HTTP endpoint that answers questions return
    :meth:`to_dict`; ``answered`` is False when no match reached ``min_score``.
    """

    question: str
    matches: tuple[Match, ...]
    min_score: float | None

    @classmethod
    def of(cls, question: str, matches: Sequence[Match], k: int, min_score: float | None) -> Answer:
        """The first ``k`` of ``matches`` that reach ``min_score`` (all of them when it is None)."""
        kept = tuple(m for m in matches[:k] if min_score is None or m.score >= min_score)
        return cls(question, kept, min_score)

    @property
    def answered(self) -> bool:
        return bool(self.matches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answered": self.answered,
            "min_score": self.min_score,
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class Changes:
    """How an FAQ differs from the one an index held before, by entry id."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # same id, other text or metadata
    removed: tuple[str, ...] = ()
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class BuildReport:
    """What :meth:`FaqIndex.build` (or an update) did, for the CLI's summary line.

    Of the ``unique_texts``, ``encoded`` ran through the encoder, ``reused``
    took their vector from the previous index and ``resumed`` from the cache
    of an interrupted run. ``changes`` compares with the previous index;
    ``reuse_note`` says why its vectors could not be reused, if they could not.
    """

    entries: int
    vectors: int
    unique_texts: int
    seconds: float
    fields: tuple[str, ...] = field(default_factory=tuple)
    encoded: int = 0
    reused: int = 0
    resumed: int = 0
    changes: Changes | None = None
    reuse_note: str | None = None


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
        row_digests: Sequence[str] | None = None,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        self.entries = list(entries)
        self.store = store
        self.manifest = manifest
        self.report: BuildReport | None = None
        self.row_digests = None if row_digests is None else list(row_digests)
        """Per store row, :func:`text_digest` of the text it embeds (None for bundles written before them)."""
        self.extra_files = dict(extra_files or {})
        """Bundle files besides the standard ones (``name -> bytes``), kept through load and save."""
        self._encoder = encoder
        self._model_path = model_path
        self._threads = threads
        self.path: Path | None = None
        """The bundle directory this index was loaded from, if any."""
        self._lock = threading.Lock()
        self.hybrid = HybridSettings.from_dict(manifest.hybrid)
        self._lexical: LexicalIndex | None = None
        self._lexical_files: dict[str, bytes] | None = None  # a loaded bundle's BM25 index, read on first use
        self._dense_layout: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
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
        reuse: FaqIndex | None = None,
        cache: EmbeddingCache | None = None,
    ) -> FaqIndex:
        """Embed an FAQ (a file path, read with default columns, or entries) into a new index.

        Pass ``encoder`` to reuse a loaded model (or a test fake); otherwise a
        :class:`BertEncoder` is loaded with ``settings``. ``hybrid`` defaults to
        BM25 fusion with weight 0.5; ``HybridSettings(weight=0)`` is dense only.

        ``reuse``: an earlier index of (part of) this FAQ; its vectors are used
        for every text it embedded with the same encoder, so only new texts are
        encoded, and the report counts the changes. ``cache``: where encoded
        vectors are written as they come, so a killed run can resume (see
        :mod:`faq_search.index.cache`). Either way the result equals a full build.
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
        check_entries(entries)
        fields = choice(Fields, fields, "fields")
        hybrid = HybridSettings() if hybrid is None else hybrid
        if encoder is None:
            encoder = BertEncoder(settings, batch_size=batch_size, threads=threads)
        precision = encoder.precision.value

        texts, row_entry, row_field = embedding_rows(entries, fields, encoder.windows)
        digests = [text_digest(t) for t in texts]
        where: dict[str, int] = {}
        unique: list[str] = []
        for text, digest in zip(texts, digests, strict=True):
            if digest not in where:  # identical texts (a question shared by answers) embed once
                where[digest] = len(unique)
                unique.append(text)
        known, reuse_note = _reusable_vectors(reuse, encoder, precision)
        vectors, counts = _embed_unique(encoder, unique, list(where), known, cache, progress)
        store = VectorStore.build(vectors[[where[d] for d in digests]], row_entry, row_field, index_type)

        manifest = Manifest(
            encoder=encoder.identity.to_dict(),
            settings=encoder.settings.to_dict(),
            precision=precision,
            entry_count=len(entries),
            vector_count=len(store),
            fields=tuple(f for f in (QUESTION, ANSWER) if f in set(row_field)),
            index_type=index_type,
            hybrid=hybrid.to_dict() if hybrid.enabled else None,
            source=source_name,
            created=now_iso(),
        )
        index = cls(entries, store, manifest, encoder, threads=threads, row_digests=digests)
        index.report = BuildReport(
            entries=len(entries),
            vectors=len(store),
            unique_texts=len(unique),
            seconds=time.perf_counter() - started,
            fields=manifest.fields,
            encoded=counts[0],
            reused=counts[1],
            resumed=counts[2],
            changes=None if reuse is None else compare_entries(reuse.entries, entries),
            reuse_note=reuse_note,
        )
        return index

    # -- updating -------------------------------------------------------------

    def upsert(self, entries: Iterable[FaqEntry]) -> BuildReport:
        """Add entries, or replace those whose id the index has; only new texts are encoded.

        A replaced entry keeps its place; new entries go at the end. The index
        then equals :meth:`build` of its new entry list (same ids, same scores);
        :meth:`save` persists it. Not to be run while other threads ``ask`` this
        object: build the new bundle, save it, and let readers reload it.
        """
        if isinstance(entries, FaqEntry):
            entries = [entries]
        incoming = list(entries)
        if not all(isinstance(e, FaqEntry) for e in incoming):
            raise InputError("upsert takes FaqEntry records; read a file with read_faq() to get them")
        ids = [e.id for e in incoming]
        if len(set(ids)) != len(ids):
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"upsert got id {repeated!r} more than once; pass each entry once")
        check_entries(incoming)
        positions = self._positions()
        updated = list(self.entries)
        for entry in incoming:
            if entry.id in positions:
                updated[positions[entry.id]] = entry
            else:
                positions[entry.id] = len(updated)
                updated.append(entry)
        return self._replace_entries(updated)

    def delete(self, ids: Iterable[str]) -> BuildReport:
        """Remove the entries with these ids (all must exist); nothing is encoded.

        :meth:`save` persists the change. The last entry cannot be deleted.
        """
        if isinstance(ids, str):
            raise InputError("delete takes a list of ids; wrap a single id in a list")
        wanted = list(dict.fromkeys(ids))
        positions = self._positions()
        unknown = [i for i in wanted if i not in positions]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise InputError(f"no entry with id {shown} in the index; nothing was deleted")
        gone = set(wanted)
        kept = [e for e in self.entries if e.id not in gone]
        if not kept:
            raise InputError("deleting every entry would leave the index empty; build a new index instead")
        return self._replace_entries(kept)

    @property
    def fields_policy(self) -> Fields:
        """Which fields this index embeds: questions too, unless it was built with answers only."""
        if QUESTION in self.manifest.fields or not any(e.questions for e in self.entries):
            return Fields.QUESTION_ANSWER
        return Fields.ANSWER

    def _positions(self) -> dict[str, int]:
        positions = {e.id: n for n, e in enumerate(self.entries)}
        if len(positions) != len(self.entries):
            raise InputError("this index holds duplicate ids; rebuild it from a file with unique ids")
        return positions

    def _replace_entries(self, entries: list[FaqEntry]) -> BuildReport:
        rebuilt = FaqIndex.build(
            entries,
            encoder=self.encoder,
            fields=self.fields_policy,
            hybrid=self.hybrid,
            index_type=self.manifest.index_type,
            reuse=self,
        )
        manifest = dataclasses.replace(
            rebuilt.manifest,
            encoder=self.manifest.encoder,  # the same encoder; keeps its recorded name
            settings=self.manifest.settings,
            min_score=self.manifest.min_score,
            source=self.manifest.source,
            adaptation=self.manifest.adaptation,
        )
        with self._lock:
            self.entries = rebuilt.entries
            self.store = rebuilt.store
            self.manifest = manifest
            self.row_digests = rebuilt.row_digests
            self._lexical = None
            self._lexical_files = None
            self._dense_layout = None
            self.report = rebuilt.report
        if rebuilt.report is None:  # pragma: no cover - build always reports
            raise RuntimeError("build gave no report")
        return rebuilt.report

    def stored_vectors(self) -> np.ndarray | None:
        """The stored vectors, one per row, when the index type keeps them exactly; else None."""
        return _stored_vectors(self.store)

    def text_digests(self, encoder: Encoder | None = None) -> list[str] | None:
        """Per row, the digest of its text: recorded in the bundle, or recomputed for an older bundle.

        Recomputing needs the encoder's tokenizer (for windows); it gives None
        when the rows it finds differ from the stored ones.
        """
        if self.row_digests is not None:
            return self.row_digests
        texts, row_entry, row_field = embedding_rows(
            self.entries, self.fields_policy, (encoder or self.encoder).windows
        )
        if row_entry != self.store.row_entry.tolist() or row_field != self.store.row_field:
            return None
        return [text_digest(t) for t in texts]

    # -- persistence --------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the index as a bundle directory at ``path`` (atomically replacing one there)."""
        entries = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in self.entries)
        rows: dict[str, Any] = {"entry": self.store.row_entry.tolist(), "field": self.store.row_field}
        if self.row_digests is not None and len(self.row_digests) == len(self.store):
            rows["text_digest"] = self.row_digests
        files = {
            VECTORS: self.store.to_bytes(),
            ROWS: json.dumps(rows).encode("utf-8"),
            ENTRIES: entries.encode("utf-8"),
        }
        if self.hybrid.enabled:
            files.update({f"{LEXICAL_DIR}/{name}": data for name, data in self.lexical.to_files().items()})
        self.manifest = write_bundle(path, self.manifest, {**self.extra_files, **files})
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
            lines = files[ENTRIES].decode("utf-8").split("\n")  # not splitlines(): U+2028 or U+0085 may be in a text
            entries = [FaqEntry.from_dict(json.loads(line)) for line in lines if line]
            rows = json.loads(files[ROWS].decode("utf-8"))
            row_entry = np.asarray(rows["entry"], dtype=np.int64)
            store = VectorStore(VectorStore.index_from_bytes(files[VECTORS]), row_entry, rows["field"])
            digests = rows.get("text_digest")
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise BundleError(f"{path}: the index files are inconsistent ({exc}); rebuild the index") from None
        if len(entries) != manifest.entry_count or len(store) != manifest.vector_count:
            raise BundleError(f"{path}: entry or vector counts differ from the manifest; rebuild the index")
        try:
            EncoderIdentity.from_dict(manifest.encoder)
            EncoderSettings.from_dict(manifest.settings)
            HybridSettings.from_dict(manifest.hybrid)
        except (TypeError, ValueError, InputError) as exc:
            raise BundleError(
                f"{path}: the manifest's encoder or hybrid settings are unusable ({exc}); rebuild it"
            ) from None
        if store.dimension != EncoderIdentity.from_dict(manifest.encoder).dimension:
            raise BundleError(f"{path}: the vectors' dimension differs from the manifest's; rebuild the index")
        if len(row_entry) and (row_entry.min() < 0 or row_entry.max() >= len(entries)):
            raise BundleError(f"{path}: {ROWS} points at entries the index does not have; rebuild the index")
        if digests is not None and (
            not isinstance(digests, list) or len(digests) != len(store) or not all(isinstance(d, str) for d in digests)
        ):
            raise BundleError(f"{path}: the text digests in {ROWS} do not match its rows; rebuild the index")
        lexical_prefix = f"{LEXICAL_DIR}/"
        lexical = {name[len(lexical_prefix) :]: data for name, data in files.items() if name.startswith(lexical_prefix)}
        extra = {
            name: data for name, data in files.items() if name not in DATA_FILES and not name.startswith(lexical_prefix)
        }
        index = cls(
            entries,
            store,
            manifest,
            encoder,
            model_path=model_path,
            threads=threads,
            row_digests=digests,
            extra_files=extra,
        )
        index.path = Path(path)
        index._lexical_files = lexical or None
        return index

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
                    model = self._model_path or self.own_encoder_dir()
                    if model is not None:
                        settings = EncoderSettings.from_dict({**settings.to_dict(), "model": model})
                    encoder = BertEncoder(settings, threads=self._threads)
                    self._check_encoder(encoder)
                    self._encoder = encoder
        return self._encoder

    @property
    def is_adapted(self) -> bool:
        """Whether this index carries its own adapted encoder (``faq-search adapt``)."""
        return self.settings.model == ADAPTED_MODEL

    def encoder_files(self) -> dict[str, bytes]:
        """The files of the encoder this bundle carries (``encoder/...``); empty unless adapted."""
        return {name: data for name, data in self.extra_files.items() if name.startswith(f"{ENCODER_DIR}/")}

    def own_encoder_dir(self) -> str | None:
        """For a bundle that carries its encoder (``faq-search adapt``): where its weights are on disk."""
        if not self.is_adapted:
            return None
        if self.path is None or not (self.path / ENCODER_DIR).is_dir():
            raise BundleError(
                f"this index carries its own adapted encoder, but {ENCODER_DIR}/ is not found beside it; "
                "load the index from its bundle directory"
            )
        return str(self.path / ENCODER_DIR)  # the identity check below proves these are the recorded weights

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
            if not _is_text(question):
                raise InputError("the question holds bytes that are not text (not UTF-8); pass the question as UTF-8")
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
                if self._lexical is None and self._lexical_files:
                    self._lexical = LexicalIndex.from_files(self._lexical_files, len(self.entries), self.hybrid)
                if self._lexical is None:
                    with_questions = QUESTION in self.manifest.fields
                    documents = [entry_document(e.questions if with_questions else (), e.answer) for e in self.entries]
                    self._lexical = LexicalIndex(documents, self.hybrid)
                self._lexical_files = None
        return self._lexical

    def _dense_scores(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosines for a flat index: ``(entry_scores [q, entries], row_scores [q, rows])``.

        An entry's score is the max over its rows; the rows are grouped by entry.

        Entry ``e``'s rows are ``row_scores[:, starts[e]:ends[e]]``, store rows
        ``order[starts[e]:ends[e]]`` (``order, starts, ends = self._dense_layout[1:]``).
        """
        if self._dense_layout is None:
            with self._lock:
                if self._dense_layout is None:
                    matrix = self.store.index.reconstruct_n(0, len(self.store))
                    order = np.argsort(self.store.row_entry, kind="stable")
                    starts = np.searchsorted(self.store.row_entry[order], np.arange(len(self.entries)))
                    ends = np.append(starts[1:], len(order))
                    self._dense_layout = (np.ascontiguousarray(matrix[order]), order, starts, ends)
        matrix, _, starts, _ = self._dense_layout
        row_scores = _scores(vectors, matrix)
        return np.maximum.reduceat(row_scores, starts, axis=1), row_scores

    def _hybrid_search(self, vectors: np.ndarray, questions: Sequence[str], k: int) -> list[list[_Ranked]]:
        """Fused ranking: exact over all entries for a flat index, over a dense candidate pool otherwise."""
        lexical = self.lexical.scores(questions)
        out: list[list[_Ranked]] = []
        if self.manifest.index_type == "flat":
            dense, row_scores = self._dense_scores(vectors)
            fused = fuse(dense, lexical, self.hybrid.weight)
            _, order, starts, ends = self._dense_layout  # type: ignore[misc]
            for q in range(len(questions)):
                top = _top_k(fused[q], k)
                hits: list[_Ranked] = []
                for entry in top.tolist():
                    start = int(starts[entry])
                    row = int(order[start + int(np.argmax(row_scores[q, start : ends[entry]]))])
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


def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _blas_threads(limit: int | None) -> contextlib.AbstractContextManager[Any]:
    """Few-query products run on one BLAS thread: threading them costs more than it saves."""
    if limit is None:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=limit, user_api="blas")


def _scores(vectors: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``vectors @ matrix.T`` (float32), the fastest way measured here for the batch size.

    A few queries: FAISS's own inner-product kernel, one query at a time on
    the calling thread (1.2 ms for 24,645 rows, against 2.7 ms for numpy on
    one BLAS thread). Larger batches: torch's product, on the encoder's own
    thread pool. A threaded numpy product would start OpenBLAS's pool, whose
    threads keep spinning after the product and take the CPUs from the
    encoder's threads (measured: a 32-question batch then encodes at half speed).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if len(vectors) < 16:
        out = np.empty((len(vectors), len(matrix)), dtype=np.float32)
        for row in range(len(vectors)):
            _inner_products(out[row], vectors[row], matrix)
        return out
    if "torch" not in sys.modules:
        with _blas_threads(1):
            return vectors @ matrix.T
    import torch

    return (torch.from_numpy(np.ascontiguousarray(vectors)) @ torch.from_numpy(matrix).T).numpy()


def _inner_products(out: np.ndarray, vector: np.ndarray, matrix: np.ndarray) -> None:
    """``out[:] = matrix @ vector`` with FAISS's kernel (releases the GIL); all float32 and C-contiguous."""
    import faiss

    faiss.fvec_inner_products_ny(  # type: ignore[attr-defined]
        faiss.swig_ptr(out), faiss.swig_ptr(vector), faiss.swig_ptr(matrix), matrix.shape[1], matrix.shape[0]
    )


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index."""
    k = min(k, len(scores))
    kth = np.partition(-scores, k - 1)[k - 1]
    candidates = np.flatnonzero(-scores <= kth)  # every entry tied with the k-th is a candidate
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def embedding_rows(
    entries: Sequence[FaqEntry], fields: Fields, windows: TextWindows | None = None
) -> tuple[list[str], list[int], list[str]]:
    """The texts to embed and, per text, its entry position and field.

    Each question (when fields include questions) and the answer is a row; with
    ``windows`` (the encoder's long-text capability), a text longer than
    :data:`WINDOW_TOKENS` becomes several rows, one per window.
    """
    parts: list[tuple[int, str, str]] = []
    for position, entry in enumerate(entries):
        named = [(QUESTION, q) for q in entry.questions] if fields is Fields.QUESTION_ANSWER else []
        parts += [(position, name, text) for name, text in [*named, (ANSWER, entry.answer)]]
    plain = [text for _, _, text in parts]
    pieces_of = [[text] for text in plain] if windows is None else windows.split(plain, WINDOW_TOKENS)
    texts: list[str] = []
    row_entry: list[int] = []
    row_field: list[str] = []
    for (position, name, _), pieces in zip(parts, pieces_of, strict=True):
        for window in pieces:
            texts.append(window)
            row_entry.append(position)
            row_field.append(name)
    return texts, row_entry, row_field


def text_digest(text: str) -> str:
    """The key of a text's vector: the first 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def compare_entries(old: Sequence[FaqEntry], new: Sequence[FaqEntry]) -> Changes:
    """Added, changed and removed ids (and how many are unchanged) from ``old`` to ``new``."""
    before = {e.id: e for e in old}
    after = {e.id for e in new}
    added = tuple(e.id for e in new if e.id not in before)
    changed = tuple(e.id for e in new if e.id in before and before[e.id] != e)
    removed = tuple(e.id for e in old if e.id not in after)
    return Changes(added, changed, removed, unchanged=len(new) - len(added) - len(changed))


def check_entries(entries: Sequence[FaqEntry]) -> None:
    """Every text of every entry must be encodable as UTF-8 (no lone surrogates from a broken file)."""
    for entry in entries:
        if not isinstance(entry, FaqEntry):
            raise InputError(f"an FAQ entry must be an FaqEntry, not {type(entry).__name__}; use read_faq()")
        named = [("id", entry.id), ("answer", entry.answer), *(("question", q) for q in entry.questions)]
        named += [(f"metadata {k!r}", f"{k}{v}") for k, v in entry.metadata.items()]
        for what, text in named:
            if not isinstance(text, str):
                raise InputError(f"entry {entry.id!r}: its {what} is not text; give it as a string")
            if not _is_text(text):
                raise InputError(
                    f"entry {entry.id!r}: its {what} holds characters that are not valid text "
                    "(a lone surrogate, from a badly encoded file); re-save the file as UTF-8"
                )


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stored_vectors(store: VectorStore) -> np.ndarray | None:
    """All stored vectors, in row order, when the FAISS index keeps them exactly; else None."""
    import faiss

    try:
        index = faiss.downcast_index(store.index)
        if type(index).__name__ not in _EXACT_STORAGE:
            return None
        return np.asarray(index.reconstruct_n(0, len(store)), dtype=np.float32)
    except (RuntimeError, AttributeError, TypeError):
        return None


def _reusable_vectors(
    previous: FaqIndex | None, encoder: Encoder, precision: str
) -> tuple[dict[str, np.ndarray], str | None]:
    """``digest -> vector`` from an earlier index built by the same encoder, or why there is none."""
    if previous is None:
        return {}, None
    differences = previous.identity.differences(encoder.identity)
    if differences:
        return {}, "the encoder settings changed (" + "; ".join(differences) + "); every text is embedded again"
    if previous.manifest.precision != precision:
        return {}, (
            f"the previous index was computed in {previous.manifest.precision}, this run in {precision}; "
            "every text is embedded again"
        )
    vectors = previous.stored_vectors()
    if vectors is None:
        return {}, f"the previous index ({previous.manifest.index_type}) does not keep exact vectors to reuse"
    digests = previous.text_digests(encoder)
    if digests is None:
        return {}, "the previous index's rows do not match its entries; every text is embedded again"
    return {digest: vectors[row] for row, digest in enumerate(digests)}, None


def _embed_unique(
    encoder: Encoder,
    texts: Sequence[str],
    digests: Sequence[str],
    known: Mapping[str, np.ndarray],
    cache: EmbeddingCache | None,
    progress: bool,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Vectors for distinct texts: known ones reused, cached ones resumed, the rest encoded.

    Returns the vectors and (encoded, reused, resumed) counts. What is encoded
    goes to the encoder in groups of equal token length (no padding, so a
    vector depends on its text only) and, with a cache, to the cache every
    :data:`CACHE_CHUNK` texts.
    """
    out = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    cached = cache.load() if cache is not None else {}
    todo: list[int] = []
    reused = resumed = 0
    for position, digest in enumerate(digests):
        if digest in known:
            out[position] = known[digest]
            reused += 1
        elif digest in cached:
            out[position] = cached[digest]
            resumed += 1
        else:
            todo.append(position)
    bar = progress_bar(len(todo), progress)
    pending: list[int] = []
    try:
        for group in _encode_groups(encoder, [texts[i] for i in todo], piece=CACHE_CHUNK if cache else None):
            positions = [todo[i] for i in group]
            out[positions] = encoder.encode([texts[i] for i in positions])
            bar.update(len(positions))
            if cache is not None:
                pending += positions
                if len(pending) >= CACHE_CHUNK:
                    cache.put([digests[i] for i in pending], out[pending])
                    pending = []
        if cache is not None and pending:
            cache.put([digests[i] for i in pending], out[pending])
    finally:
        bar.close()
    return out, (len(todo), reused, resumed)


def _encode_groups(encoder: Encoder, texts: Sequence[str], piece: int | None) -> list[list[int]]:
    """Positions of ``texts`` in encoder calls: equal token length per call where the encoder measures texts
    (no padding, so a vector never depends on its batch), at most ``piece`` each."""
    if not texts:
        return []
    groups: list[list[int]]
    if encoder.windows is not None:
        by_length: dict[int, list[int]] = defaultdict(list)
        for position, length in enumerate(encoder.windows.token_lengths(texts)):
            by_length[length].append(position)
        groups = [by_length[n] for n in sorted(by_length)]
    else:
        groups = [list(range(len(texts)))]
    if piece is None:
        return groups
    return [group[start : start + piece] for group in groups for start in range(0, len(group), piece)]
