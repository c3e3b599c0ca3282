"""The index being served and its hot reload: one immutable record per loaded bundle, swapped whole.

A watcher notices when the bundle directory is replaced (``faq-search index``
swaps it in atomically), loads and warms the new bundle in the background,
reusing the loaded encoder when its identity is unchanged, and swaps it in
with one assignment. Requests in flight keep the :class:`ServedIndex` they
started with; a bundle that fails to load is reported and the old one keeps
serving. What it is not: a file-system watcher (it polls with one ``stat``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faq_search.encoding.runtime import batch_runtime
from faq_search.errors import FaqSearchError, SettingsMismatchError
from faq_search.service.config import ServeConfig

if TYPE_CHECKING:
    from faq_search.encoding.protocol import Encoder
    from faq_search.index.faq_index import FaqIndex

log = logging.getLogger("faq_search.service.reload")


@dataclass(frozen=True)
class ServedIndex:
    """One loaded bundle, as served: requests capture this record once and use it to the end."""

    index: FaqIndex
    generation: int  # 1 for the bundle loaded at start, +1 per reload
    loaded_at: float
    content: str  # fingerprint of the manifest it was loaded from


def bundle_fingerprint(manifest_data: dict[str, Any]) -> str:
    """Identity of a bundle's content: its creation time and the checksums of its files."""
    files = manifest_data.get("files") or {}
    key = [manifest_data.get("created"), sorted((name, dict(info).get("sha256")) for name, info in files.items())]
    return hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()


def disk_state(index_dir: Path) -> tuple[int, ...] | None:
    """A cheap signature of the bundle directory: changes when it is swapped or its manifest rewritten."""
    try:
        folder = os.stat(index_dir)
        manifest = os.stat(index_dir / "manifest.json")
    except OSError:
        return None  # absent for a moment (non-atomic replace) or not there yet
    return (folder.st_dev, folder.st_ino, manifest.st_ino, manifest.st_mtime_ns, manifest.st_size)


def disk_fingerprint(index_dir: Path) -> str | None:
    """:func:`bundle_fingerprint` of the manifest on disk, or None when it cannot be read now."""
    try:
        return bundle_fingerprint(json.loads((index_dir / "manifest.json").read_bytes()))
    except (OSError, ValueError, AttributeError, TypeError):
        return None


class SharedEncoders:
    """The query encoders a server has loaded: an index whose bundle allows one of them uses it.

    So several indexes built with equal encoder settings (model weights, layer,
    pooling, ...) hold one model; an index that needs another loads it, once.
    """

    def __init__(self) -> None:
        self._encoders: list[Encoder] = []
        self._lock = threading.Lock()

    def candidates(self) -> list[Encoder]:
        with self._lock:
            return list(self._encoders)

    def add(self, encoder: Encoder) -> None:
        with self._lock:
            if all(encoder is not known for known in self._encoders):
                self._encoders.append(encoder)

    def __len__(self) -> int:
        return len(self._encoders)


def open_index(
    config: ServeConfig,
    previous: FaqIndex | None = None,
    *,
    index_dir: Path | None = None,
    shared: SharedEncoders | None = None,
) -> FaqIndex:
    """Load the bundle and warm it, with ``previous``'s or a shared encoder when the bundle's settings allow it."""
    from faq_search.index.faq_index import FaqIndex

    folder = config.index_dir if index_dir is None else index_dir
    runtime = batch_runtime(config.runtime) if config.batching else config.runtime
    index = FaqIndex.load(folder, model_path=config.model_path, threads=config.threads, runtime=runtime)
    candidates = ([previous.encoder] if previous is not None else []) + (shared.candidates() if shared else [])
    for encoder in candidates:
        try:
            index.use_encoder(encoder)
            break
        except SettingsMismatchError:
            continue
    else:
        if candidates:
            log.info("%s needs another encoder; loading it", folder)
    warm_up(index)
    if shared is not None:
        shared.add(index.encoder)
    return index


def warm_up(index: FaqIndex) -> None:
    """Load the model (if new) and run one question through everything, before any request waits on it."""
    index.ask_batch(["warm up"], k=1)


class IndexHolder:
    """The current :class:`ServedIndex`, replaced whole on reload; never mutated in place."""

    def __init__(
        self,
        config: ServeConfig,
        index_dir: Path | None = None,
        name: str | None = None,
        shared: SharedEncoders | None = None,
    ) -> None:
        self.config = config
        self.index_dir = config.index_dir if index_dir is None else Path(index_dir)
        self.name = name or config.served[0][0]
        self.shared = shared
        self._current: ServedIndex | None = None
        self._seen_disk: tuple[int, ...] | None = None
        self._lock = asyncio.Lock()
        self.reloads = 0
        self.last_error: str | None = None

    @property
    def current(self) -> ServedIndex:
        if self._current is None:
            raise FaqSearchError("the index is not loaded yet; wait for the server to finish starting")
        return self._current

    async def start(self, index: FaqIndex | None) -> None:
        """Load (or adopt) the first index and warm it, off the event loop."""
        self._seen_disk = await asyncio.to_thread(disk_state, self.index_dir)
        if index is None:
            index = await asyncio.to_thread(open_index, self.config, index_dir=self.index_dir, shared=self.shared)
        else:
            await asyncio.to_thread(warm_up, index)
            if self.shared is not None:
                self.shared.add(index.encoder)
        self._install(index)

    def _install(self, index: FaqIndex) -> None:
        generation = 1 if self._current is None else self._current.generation + 1
        content = bundle_fingerprint(index.manifest.to_dict())
        self._current = ServedIndex(index=index, generation=generation, loaded_at=time.time(), content=content)

    async def reload(self, *, only_if_changed: bool = False) -> bool:
        """Load the bundle on disk and swap it in; False when skipped because nothing changed.

        Raises the library error when the new bundle cannot be loaded; the old
        index keeps serving either way.
        """
        async with self._lock:
            previous = self.current
            if only_if_changed:
                found = await asyncio.to_thread(disk_fingerprint, self.index_dir)
                if found is None or found == previous.content:
                    return False
            try:
                index = await self._load(previous)
            except FaqSearchError as exc:
                self.last_error = str(exc)
                log.error(
                    "reload of %s failed, still serving generation %d: %s",
                    self.index_dir,
                    previous.generation,
                    exc,
                )
                raise
            self._install(index)
            self.reloads += 1
            self.last_error = None
            log.info("reloaded %s: generation %d, %d entries", self.index_dir, self.current.generation, len(index))
            return True

    async def _load(self, previous: ServedIndex) -> FaqIndex:
        """The new index, off the event loop; any failure becomes a library error naming the log."""
        try:
            return await asyncio.to_thread(
                open_index, self.config, previous.index, index_dir=self.index_dir, shared=self.shared
            )
        except FaqSearchError:
            raise
        except Exception as exc:  # not a library error: still keep serving, and say what happened
            log.exception("unexpected error while loading %s", self.index_dir)
            raise FaqSearchError(f"{type(exc).__name__}: {exc}; see the server log") from exc

    async def watch(self) -> None:
        """Poll the bundle directory and reload when it was replaced; runs until cancelled."""
        while True:
            await asyncio.sleep(self.config.watch_s)
            state = await asyncio.to_thread(disk_state, self.index_dir)
            if state is None or state == self._seen_disk:
                continue
            self._seen_disk = state
            with contextlib.suppress(FaqSearchError):  # logged and kept in last_error; the next change retries
                await self.reload(only_if_changed=True)
