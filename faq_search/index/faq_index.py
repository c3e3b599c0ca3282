"""The FAQ index: an FAQ with its vectors, answering questions with ranked entries.

:class:`FaqIndex` is the front the CLI, the HTTP server and in-process bots
use; it holds the entries, the vector store and the typed manifest, and hands
the work to small modules: :mod:`.build` (embedding, reuse, resume),
:mod:`.ranking` (dense scores, best row per entry, candidate pools, the confident ranking),
:mod:`.confidence` (the model that makes a match's score a probability),
:mod:`.files` (bundle files and their consistency checks), :mod:`.manifest`
and :mod:`.records`. ``ask`` is safe to call from several threads at once.

Updates are incremental (``upsert``, ``delete``, ``build(..., reuse=old)``):
only texts no vector is known for are encoded, and the result equals a full
rebuild (see :mod:`faq_search.index.build`).

The records and helpers other modules import from here (``Match``,
``Answer``, ``BuildReport``, ``compare_entries``, ``embedding_rows``, ...)
are re-exported from the modules that define them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.bundle.files import Content, Manifest, read_bundle, write_bundle
from faq_search.corpus import FaqEntry
from faq_search.encoding.protocol import Encoder
from faq_search.encoding.runtime import Runtime
from faq_search.encoding.settings import ADAPTED_MODEL, EncoderIdentity, EncoderSettings, Fields, choice
from faq_search.errors import InputError
from faq_search.index.build import CACHE_CHUNK, BuildOptions, build_index, stored_vectors
from faq_search.index.columnar import LazyColumn, take_questions
from faq_search.index.columns import FILTERS_DIR, FilterColumns, build_columns
from faq_search.index.confidence import DENSE_POOL, POOL, ConfidenceModel, default_model, question_groups
from faq_search.index.edits import deleted, upserted
from faq_search.index.files import index_files, read_index_files
from faq_search.index.filters import FilterError, parse_all
from faq_search.index.lexical import HybridSettings, LexicalIndex, entry_document
from faq_search.index.manifest import IndexManifest
from faq_search.index.pool_lexical import EntryDocuments, PoolLexicon
from faq_search.index.query_encoder import (
    adapted_encoder_dir,
    check_encoder,
    encoder_files,
    has_onnx,
    load_query_encoder,
    resolve_runtime,
)
from faq_search.index.ranking import DenseLayout, confident_search, pools, ranked_features
from faq_search.index.records import Answer, BuildReport, Changes, Match, Ranked, compare_entries
from faq_search.index.rows import ANSWER, QUESTION, WINDOW_TOKENS, check_entries, embedding_rows, is_text, text_digest
from faq_search.index.store import IndexType, VectorStore

if TYPE_CHECKING:
    from faq_search.index.cache import EmbeddingCache

__all__ = [
    "ANSWER",
    "CACHE_CHUNK",
    "QUESTION",
    "WINDOW_TOKENS",
    "Answer",
    "BuildOptions",
    "BuildReport",
    "Changes",
    "FaqIndex",
    "IndexManifest",
    "Match",
    "check_entries",
    "compare_entries",
    "embedding_rows",
    "text_digest",
]


class FaqIndex:
    """An FAQ with its vectors, ready to answer questions."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        store: VectorStore,
        manifest: IndexManifest | Manifest,
        encoder: Encoder | None = None,
        *,
        model_path: str | None = None,
        threads: int | None = None,
        row_digests: Sequence[str] | None = None,
        extra_files: Mapping[str, bytes] | None = None,
        runtime: Runtime | str | None = None,
        columns: FilterColumns | None = None,
    ) -> None:
        self.entries: Sequence[FaqEntry] = entries if isinstance(entries, LazyColumn) else list(entries)
        self.store = store
        self.report: BuildReport | None = None
        self.row_digests: Sequence[str] | None = (
            row_digests if row_digests is None or isinstance(row_digests, LazyColumn) else list(row_digests)
        )
        """Per store row, :func:`text_digest` of the text it embeds (None for bundles written before them)."""
        self.extra_files = {n: d for n, d in (extra_files or {}).items() if not n.startswith(f"{FILTERS_DIR}/")}
        """Bundle files besides the standard ones (``name -> bytes``), kept through load and save."""
        self.columns = columns
        """The filterable metadata columns (``index --metadata-column``), or None: see :meth:`filter_mask`."""
        self._encoder = encoder
        self._model_path = model_path
        self._threads = threads
        self._runtime = None if runtime is None else choice(Runtime, runtime, "runtime")
        self.path: Path | None = None
        """The bundle directory this index was loaded from, if any."""
        self._lock = threading.Lock()
        self._manifest = manifest if isinstance(manifest, IndexManifest) else IndexManifest.from_bundle(manifest)
        self._lexical: LexicalIndex | None = None
        self._lexical_files: dict[str, Content] | None = None  # a loaded bundle's BM25 index, read on first use
        self._dense_layout: DenseLayout | None = None
        self._pool_lexicon: PoolLexicon | None = None  # per-entry tokens for the candidates' own BM25
        if encoder is not None:
            self._check_encoder(encoder)

    # -- the manifest ---------------------------------------------------------

    @property
    def manifest(self) -> IndexManifest:
        """How the vectors were made and how the index answers; change it with :meth:`revise`."""
        return self._manifest

    @manifest.setter
    def manifest(self, manifest: IndexManifest | Manifest) -> None:
        """Replace the whole manifest (a bundle :class:`Manifest` is parsed); :meth:`revise` is the usual way."""
        if not isinstance(manifest, IndexManifest):
            manifest = IndexManifest.from_bundle(manifest)
        before = self._manifest
        if self._encoder is not None and manifest.identity != before.identity:
            check_encoder(manifest.identity, self._encoder)  # before anything changes
        with self._lock:
            self._manifest = manifest
            if manifest.hybrid != before.hybrid:  # the BM25 index was built with the old fusion settings
                self._lexical = None
                self._lexical_files = None
                self._pool_lexicon = None

    def revise(self, **changes: Any) -> IndexManifest:
        """Change manifest fields (``min_score=0.4``, ``source="faq.csv"``, ...); what depends on them follows.

        A new ``hybrid`` drops the BM25 index built with the old one; a new
        ``identity`` is checked against a loaded encoder. :meth:`save` persists it.
        """
        self.manifest = dataclasses.replace(self._manifest, **changes)
        return self._manifest

    @property
    def identity(self) -> EncoderIdentity:
        return self._manifest.identity

    @property
    def settings(self) -> EncoderSettings:
        return self._manifest.settings

    @property
    def hybrid(self) -> HybridSettings:
        """Whether BM25 evidence is used (weight > 0; the fusion weight itself lives in the confidence model)."""
        return self._manifest.hybrid

    @property
    def confidence_model(self) -> ConfidenceModel:
        """What turns a match's evidence into ``Match.score``: the bundle's (``calibrate``), else the shipped model."""
        return self._manifest.confidence or default_model()

    def set_min_score(self, min_score: float | None) -> None:
        """Store a confidence threshold in the index (persisted by :meth:`save`)."""
        self.revise(min_score=min_score)

    # -- building -----------------------------------------------------------

    @classmethod
    def build(
        cls,
        source: str | Path | Sequence[FaqEntry],
        options: BuildOptions | None = None,
        *,
        encoder: Encoder | None = None,
        reuse: FaqIndex | None = None,
        cache: EmbeddingCache | None = None,
        **changes: Any,
    ) -> FaqIndex:
        """Embed an FAQ (a file path, read with default columns, or entries) into a new index.

        ``options`` (:class:`~faq_search.index.build.BuildOptions`) says how;
        any of its fields can also be passed as a keyword (``fields="answer"``,
        ``index_type="hnsw"``, ``metadata_columns=["plan"]``, ...), changing
        ``options``. Pass ``encoder`` to reuse a loaded model (or a test fake);
        otherwise one is loaded with ``options.settings``.

        ``reuse``: an earlier index of (part of) this FAQ; its vectors are used
        for every text it embedded with the same encoder, so only new texts are
        encoded, and the report counts the changes. ``cache``: where encoded
        vectors are written as they come, so a killed run can resume (see
        :mod:`faq_search.index.cache`). Either way the result equals a full build.
        """
        options = (options or BuildOptions()).revised(**changes)
        built = build_index(source, options, encoder=encoder, reuse=reuse, cache=cache)
        index = cls(
            built.entries, built.store, built.manifest, built.encoder, threads=options.threads, columns=built.columns
        )
        index.row_digests = built.row_digests
        index.report = built.report
        return index

    # -- updating -------------------------------------------------------------

    def upsert(self, entries: Iterable[FaqEntry]) -> BuildReport:
        """Add entries, or replace those whose id the index has; only new texts are encoded.

        A replaced entry keeps its place; new entries go at the end. The index
        then equals :meth:`build` of its new entry list (same ids, same scores);
        :meth:`save` persists it. Not to be run while other threads ``ask`` this
        object: build the new bundle, save it, and let readers reload it.
        """
        return self._replace_entries(upserted(self.entries, entries))

    def delete(self, ids: Iterable[str]) -> BuildReport:
        """Remove the entries with these ids (all must exist); nothing is encoded.

        :meth:`save` persists the change. The last entry cannot be deleted.
        """
        return self._replace_entries(deleted(self.entries, ids))

    @property
    def fields_policy(self) -> Fields:
        """Which fields this index embeds: questions too, unless it was built with answers only."""
        if QUESTION in self._manifest.fields or not any(e.questions for e in self.entries):
            return Fields.QUESTION_ANSWER
        return Fields.ANSWER

    def _replace_entries(self, entries: list[FaqEntry]) -> BuildReport:
        options = BuildOptions(fields=self.fields_policy, hybrid=self.hybrid, index_type=self._manifest.index_type)
        built = build_index(entries, options, encoder=self.encoder, reuse=self)
        manifest = dataclasses.replace(  # the same encoder (keeps its recorded name) and the same threshold
            built.manifest,
            identity=self._manifest.identity,
            settings=self._manifest.settings,
            min_score=self._manifest.min_score,
            confidence=self._manifest.confidence,
            source=self._manifest.source,
            adaptation=self._manifest.adaptation,
        )
        with self._lock:
            self.entries = built.entries
            self.store = built.store
            self._manifest = manifest
            self.row_digests = built.row_digests
            self._lexical = None
            self._lexical_files = None
            self._dense_layout = None
            self._pool_lexicon = None
            self.columns = None if self.columns is None else build_columns(built.entries, self.columns.specs)
            self.report = built.report
        return built.report

    def stored_vectors(self) -> np.ndarray | None:
        """The stored vectors, one per row, when the index type keeps them exactly; else None."""
        return stored_vectors(self.store)

    def text_digests(self, encoder: Encoder | None = None) -> Sequence[str] | None:
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
        lexical = self.lexical.to_files() if self.hybrid.enabled else None
        files = index_files(self.entries, self.store, self.row_digests, lexical)
        if self.columns is not None:
            files.update(self.columns.to_files())
        written = write_bundle(path, self._manifest.to_bundle(), {**self.extra_files, **files})
        self.revise(files=written.files, build=written.build, format_version=written.format_version)
        return Path(path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        model_path: str | None = None,
        threads: int | None = None,
        runtime: Runtime | str | None = None,
    ) -> FaqIndex:
        """Open a bundle. The query encoder is loaded on first ``ask`` with the bundle's settings.

        ``model_path`` points at the same model in another place (the weights
        must be identical); ``encoder`` supplies a loaded one, checked against
        the bundle. ``runtime`` picks torch or the bundle's ONNX graph
        (default ``$FAQ_SEARCH_RUNTIME``, else ``auto``: see
        :func:`~faq_search.encoding.runtime.pick_runtime`).
        """
        manifest, files = read_bundle(path)
        parts = read_index_files(path, manifest, files)
        index = cls(
            parts.entries,
            parts.store,
            parts.manifest,
            encoder,
            model_path=model_path,
            threads=threads,
            row_digests=parts.row_digests,
            extra_files=parts.extra,
            runtime=runtime,
            columns=FilterColumns.from_files(parts.extra, len(parts.entries)),
        )
        index.path = Path(path)
        index._lexical_files = parts.lexical or None
        return index

    # -- querying -----------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The query encoder: the bundle's settings, loaded once, checked against the bundle."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    encoder = self._load_encoder()
                    self._check_encoder(encoder)
                    self._encoder = encoder
        return self._encoder

    def resolved_runtime(self) -> Runtime:
        """The runtime this index loads its own query encoder on (``auto`` resolved; a given encoder is used as is)."""
        return resolve_runtime(self._runtime, self.extra_files, model_moved=self._model_path is not None)

    @property
    def has_onnx(self) -> bool:
        """Whether this bundle carries its query encoder as an ONNX graph (``faq-search onnx``)."""
        return has_onnx(self.extra_files)

    def _load_encoder(self) -> Encoder:
        model_dir = self._model_path or self.own_encoder_dir()
        return load_query_encoder(
            self.settings, self.extra_files, self.resolved_runtime(), model_dir=model_dir, threads=self._threads
        )

    @property
    def is_adapted(self) -> bool:
        """Whether this index carries its own adapted encoder (``faq-search adapt``)."""
        return self.settings.model == ADAPTED_MODEL

    def encoder_files(self) -> dict[str, bytes]:
        """The files of the encoder this bundle carries (``encoder/...``); empty unless adapted."""
        return encoder_files(self.extra_files)

    def own_encoder_dir(self) -> str | None:
        """For a bundle that carries its encoder (``faq-search adapt``): where its weights are on disk."""
        return adapted_encoder_dir(self.settings, self.path)

    def _check_encoder(self, encoder: Encoder) -> None:
        check_encoder(self.identity, encoder)

    def use_encoder(self, encoder: Encoder) -> None:
        """Query with ``encoder`` (one loaded for another index); SettingsMismatchError if it differs from the bundle's.

        How a server holding several indexes built with the same settings keeps one model in memory.
        """
        self._check_encoder(encoder)
        with self._lock:
            self._encoder = encoder

    def ask(
        self, question: str, k: int = 5, min_score: float | None = None, where: str | Sequence[str] | None = None
    ) -> list[Match]:
        """The ``k`` best answers to ``question``, best first, each answer at most once.

        Each match's ``score`` is its confidence in [0, 1] (:mod:`.confidence`).
        Matches whose confidence is below ``min_score`` (default: the bundle's
        calibrated threshold, if any) are left out; an empty list means no
        confident answer. ``where`` filters on metadata before ranking
        (``"plan=enterprise and country in (DE, AT)"``; several texts are
        joined with ``and``; grammar in :mod:`.filters`): only entries it keeps
        are ranked and scored, so ``k`` matches come back whenever ``k`` pass.
        """
        return self.ask_batch([question], k=k, min_score=min_score, where=where)[0]

    def ask_batch(
        self,
        questions: Sequence[str],
        k: int = 5,
        min_score: float | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[list[Match]]:
        """:meth:`ask` for several questions with one encoder call (one filter for all of them)."""
        if isinstance(questions, str):
            raise InputError("ask_batch takes a list of questions; use ask() for one")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        for question in questions:
            if not isinstance(question, str) or not question.strip():
                raise InputError("the question is empty; type a question")
            if not is_text(question):
                raise InputError("the question holds bytes that are not text (not UTF-8); pass the question as UTF-8")
        allowed = self.filter_mask(where)
        if not questions:
            return []
        vectors = self.encoder.encode([q.strip() for q in questions])
        return self.ask_vectors(vectors, questions, k, min_score, allowed)

    def ask_vectors(
        self,
        vectors: np.ndarray,
        questions: Sequence[str],
        k: int = 5,
        min_score: float | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[list[Match]]:
        """:meth:`ask_batch` for questions already encoded with :attr:`encoder` (a server shares encoder calls).

        ``allowed`` is an entry mask from :meth:`filter_mask` (None: every entry).
        """
        threshold = self._manifest.min_score if min_score is None else min_score
        ranked = self._ranked(vectors, questions, k, allowed)
        results = []
        for hits in ranked:
            matches = [
                Match(
                    entry=self.entries[hit.entry],
                    score=hit.score,
                    rank=rank,
                    field=self.store.row_field[hit.row],
                    cosine=hit.cosine,
                    lexical=hit.lexical,
                )
                for rank, hit in enumerate(hits, start=1)
            ]
            results.append([m for m in matches if threshold is None or m.score >= threshold])
        return results

    def filter_mask(self, where: str | Sequence[str] | None) -> np.ndarray | None:
        """The entries a filter keeps (a boolean array over :attr:`entries`), or None for no filter.

        A filter text that does not parse, or names a field or value this index
        does not have, raises :class:`~faq_search.index.filters.FilterError`
        (an :class:`InputError`) naming the known ones.
        """
        if where is None or (not isinstance(where, str) and not where):
            return None
        if self.columns is None:
            parse_all(where)  # a filter that does not parse says so first
            raise FilterError(
                "this index has no filterable fields; rebuild it with --metadata-column NAME "
                "(metadata_columns= in the library)"
            )
        return self.columns.filter_mask(where)

    @property
    def lexical(self) -> LexicalIndex:
        """BM25 over each entry's embedded fields, built on first use."""
        if self._lexical is None:
            with self._lock:
                if self._lexical is None and self._lexical_files:
                    self._lexical = LexicalIndex.from_files(self._lexical_files, len(self.entries), self.hybrid)
                if self._lexical is None:
                    with_questions = QUESTION in self._manifest.fields
                    documents = [entry_document(e.questions if with_questions else (), e.answer) for e in self.entries]
                    self._lexical = LexicalIndex(documents, self.hybrid)
                self._lexical_files = None
        return self._lexical

    def _ranked(
        self, vectors: np.ndarray, questions: Sequence[str], k: int, allowed: np.ndarray | None = None
    ) -> list[list[Ranked]]:
        """The ``k`` best entries per question, scored by the confidence model (see :mod:`.ranking`)."""
        hybrid = self.hybrid.enabled
        return confident_search(
            vectors,
            questions,
            k,
            model=self.confidence_model,
            layout=self._layout() if hybrid and self._manifest.index_type is IndexType.FLAT else None,
            store=self.store,
            lexicon=self.pool_lexicon if hybrid else None,
            lexical=self.lexical.matches(questions) if hybrid else None,
            groups=self.sibling_groups,
            allowed=allowed,
        )

    def candidate_features(self, questions: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """Per question, its candidates' entry positions and :func:`~.confidence.features`, in ranking order.

        What ``calibrate`` refits the confidence model on; the same candidates and
        numbers ``ask`` scores (the pool is the full ``POOL`` with fusion, the
        ``DENSE_POOL`` best entries without, enough for the margin).
        """
        if not questions:
            return []
        hybrid = self.hybrid.enabled
        vectors = self.encoder.encode([q.strip() for q in questions])
        layout = self._layout() if hybrid and self._manifest.index_type is IndexType.FLAT else None
        found = pools(
            vectors,
            questions,
            POOL if hybrid else DENSE_POOL,
            layout,
            self.store,
            self.pool_lexicon if hybrid else None,
        )
        weight, groups = self.confidence_model.fusion_weight, self.sibling_groups
        return [(entries.tolist(), rows) for entries, rows in (ranked_features(pool, weight, groups) for pool in found)]

    def sibling_groups(self, entries: np.ndarray) -> np.ndarray:
        """:func:`~.confidence.question_groups` of these entries (one question's candidates): siblings share an id.

        Made per pool from the candidates' own questions, so the first question
        on a million-entry bundle decodes a hundred entries, not all of them.
        """
        return question_groups(take_questions(self.entries, entries.tolist()))

    @property
    def pool_lexicon(self) -> PoolLexicon:
        """The per-entry BM25 tokens the candidates' own lexical evidence is computed from (tokenized on use)."""
        if self._pool_lexicon is None:
            lexical = self.lexical  # its stored term frequencies spare tokenizing candidates (before the lock)
            with self._lock:
                if self._pool_lexicon is None:
                    documents = EntryDocuments(self.entries, QUESTION in self._manifest.fields)
                    self._pool_lexicon = PoolLexicon(documents, self.hybrid.language, lexical)
        return self._pool_lexicon

    def _layout(self) -> DenseLayout:
        """The flat store's vectors grouped by entry, made on first use."""
        if self._dense_layout is None:
            with self._lock:
                if self._dense_layout is None:
                    self._dense_layout = DenseLayout.of(self.store, len(self.entries))
        return self._dense_layout

    def __len__(self) -> int:
        return len(self.entries)
