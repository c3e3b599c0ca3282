"""Embeddings of an unfinished indexing run, kept beside the bundle so a rerun resumes.

While ``faq-search index`` embeds, every :data:`~faq_search.index.build.CACHE_CHUNK`
new vectors are written to ``.<bundle>.cache/<encoder key>/`` as one small
``.npz`` file, atomically (temporary name, fsync, rename). A run killed at any
moment leaves whole chunk files only; the next run for the same bundle reads
them and encodes only what is still missing. Once the bundle is saved, the
cache is deleted. The key covers the encoder's identity and the precision the
vectors were computed in, so vectors of other settings are never mixed in.

What it is not: a long-lived embedding store. It exists only between a run
that was interrupted and the run that finishes the job. No pickle: chunks are
read with ``allow_pickle=False`` and checked; a damaged chunk is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.bundle.files import fsync_dir

_DIGEST_DTYPE = "S32"


class EmbeddingCache:
    """Chunk files of ``text digest -> vector`` in one directory."""

    def __init__(self, directory: Path, dimension: int, root: Path | None = None) -> None:
        self.directory = Path(directory)
        self.root = Path(root) if root is not None else self.directory
        self.dimension = dimension
        self.disabled = False
        self._written = 0

    @classmethod
    def beside(cls, bundle: str | Path, identity: Mapping[str, Any], precision: str, dimension: int) -> EmbeddingCache:
        """The cache of the bundle at ``bundle`` for vectors of this encoder identity and precision."""
        target = Path(bundle)
        key = json.dumps({"encoder": dict(identity), "precision": precision}, sort_keys=True)
        root = target.parent / f".{target.name}.cache"
        return cls(root / hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], dimension, root=root)

    def load(self) -> dict[str, np.ndarray]:
        """Every vector in the cache by digest; damaged or foreign chunk files are removed."""
        found: dict[str, np.ndarray] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("chunk-*.npz")):
            chunk = self._read(path)
            if chunk is None:
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            digests, vectors = chunk
            found.update(zip((d.decode("ascii") for d in digests.tolist()), vectors, strict=True))
        return found

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                digests = np.asarray(data["digests"])
                vectors = np.asarray(data["vectors"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        if (
            digests.dtype != np.dtype(_DIGEST_DTYPE)
            or digests.ndim != 1
            or vectors.dtype != np.float32
            or vectors.shape != (len(digests), self.dimension)
            or not np.isfinite(vectors).all()
        ):
            return None
        return digests, vectors

    def put(self, digests: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors as one chunk file, atomically. A cache that cannot be written is switched off."""
        if self.disabled or not len(digests):
            return
        self._written += 1
        name = f"chunk-{os.getpid()}-{self._written:06d}.npz"
        temp = self.directory / f".{name}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                np.savez(
                    handle,
                    digests=np.array([d.encode("ascii") for d in digests], dtype=_DIGEST_DTYPE),
                    vectors=np.ascontiguousarray(vectors, dtype=np.float32),
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.directory / name)
            fsync_dir(self.directory)
        except OSError:
            self.disabled = True  # resuming is an optimisation: indexing goes on without it
            with contextlib.suppress(OSError):
                temp.unlink()

    def chunk_files(self) -> list[Path]:
        return sorted(self.directory.glob("chunk-*.npz")) if self.directory.is_dir() else []

    def clear(self) -> None:
        """Delete the whole cache of the bundle (every encoder key)."""
        shutil.rmtree(self.root, ignore_errors=True)
