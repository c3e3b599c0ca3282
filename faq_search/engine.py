"""The query engine: an FAQ index that answers questions with ranked entries.

:class:`FaqIndex` ties the pieces together: it embeds the FAQ's fields with an
encoder, keeps the vectors in a :class:`~faq_search.store.VectorStore`, writes
and reads bundles, and answers ``ask(question)`` with ``list[Match]``. The
same object serves the CLI, the HTTP server and in-process bots; ``ask`` is
safe to call from several threads at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.bundle import ENTRIES, ROWS, VECTORS, Manifest, now_iso, read_bundle, write_bundle
from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoder import BertEncoder, Encoder
from faq_search.errors import BundleError, InputError, SettingsMismatchError
from faq_search.settings import EncoderIdentity, EncoderSettings, Fields, choice
from faq_search.store import VectorStore

QUESTION = "question"
ANSWER = "answer"


@dataclass(frozen=True)
class Match:
    """One ranked answer: the entry, its cosine score, its 1-based rank and the field that matched best."""

    entry: FaqEntry
    score: float
    rank: int
    field: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by ``ask --json`` and the HTTP API."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
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
        index_type: str = "flat",
        batch_size: int = 64,
        threads: int | None = None,
        progress: bool = False,
    ) -> FaqIndex:
        """Embed an FAQ (a file path, read with default columns, or entries) into a new index.

        Pass ``encoder`` to reuse a loaded model (or a test fake); otherwise a
        :class:`BertEncoder` is loaded with ``settings``.
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
        if encoder is None:
            encoder = BertEncoder(settings, batch_size=batch_size, threads=threads, progress=progress)
        embedded = (QUESTION, ANSWER) if fields is Fields.QUESTION_ANSWER else (ANSWER,)

        row_entry: list[int] = []
        row_field: list[str] = []
        texts: list[str] = []
        for position, entry in enumerate(entries):
            if QUESTION in embedded:
                for question in entry.questions:
                    row_entry.append(position)
                    row_field.append(QUESTION)
                    texts.append(question)
            row_entry.append(position)
            row_field.append(ANSWER)
            texts.append(entry.answer)

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
            fields=tuple(sorted(set(row_field), key=[QUESTION, ANSWER].index)),
            index_type=index_type,
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
        results = []
        for hits in self.store.search(vectors, k):
            matches = [
                Match(
                    entry=self.entries[hit.entry],
                    score=hit.score,
                    rank=rank,
                    field=self.store.row_field[hit.row],
                )
                for rank, hit in enumerate(hits, start=1)
            ]
            results.append([m for m in matches if threshold is None or m.score >= threshold])
        return results

    def __len__(self) -> int:
        return len(self.entries)


def _settings_of(encoder: Encoder, settings: EncoderSettings | None) -> EncoderSettings:
    found = getattr(encoder, "settings", None)
    if isinstance(found, EncoderSettings):
        return found
    return settings or EncoderSettings()
