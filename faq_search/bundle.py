"""The index bundle on disk: a directory of plain files, written atomically.

Layout (format 1)::

    manifest.json   format version, encoder identity and settings, counts,
                    embedded fields, and the SHA-256 and size of every other file
    vectors.faiss   the FAISS index, in FAISS's own format
    rows.json       for each vector: the entry it belongs to and the field it embeds
    entries.jsonl   one FAQ entry per line (id, questions, answer, metadata)

No pickle anywhere: loading a bundle never executes code. A bundle is written
to a temporary sibling directory and swapped in with one atomic rename
(``renameat2(RENAME_EXCHANGE)`` on Linux), so a crash mid-write leaves the
previous bundle whole, and a reader sees either the old or the new bundle.
Reads go through one directory file descriptor for the same reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faq_search.errors import BundleError, InputError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
ROWS = "rows.json"
ENTRIES = "entries.jsonl"
DATA_FILES = (VECTORS, ROWS, ENTRIES)


@dataclass(frozen=True)
class Manifest:
    """The typed content of ``manifest.json``."""

    encoder: Mapping[str, Any]  # EncoderIdentity fields
    settings: Mapping[str, Any]  # EncoderSettings fields
    precision: str  # the precision the vectors were computed with
    entry_count: int
    vector_count: int
    fields: tuple[str, ...]
    index_type: str = "flat"
    min_score: float | None = None
    hybrid: Mapping[str, Any] | None = None  # HybridSettings fields; None = dense only
    source: str | None = None
    created: str = ""
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "faq-search bundle",
            "format_version": self.format_version,
            "created": self.created,
            "source": self.source,
            "encoder": dict(self.encoder),
            "settings": dict(self.settings),
            "precision": self.precision,
            "entry_count": self.entry_count,
            "vector_count": self.vector_count,
            "fields": list(self.fields),
            "index_type": self.index_type,
            "min_score": self.min_score,
            "hybrid": None if self.hybrid is None else dict(self.hybrid),
            "files": {k: dict(v) for k, v in self.files.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(
            format_version=int(data["format_version"]),
            created=str(data.get("created", "")),
            source=data.get("source"),
            encoder=dict(data["encoder"]),
            settings=dict(data["settings"]),
            precision=str(data["precision"]),
            entry_count=int(data["entry_count"]),
            vector_count=int(data["vector_count"]),
            fields=tuple(data["fields"]),
            index_type=str(data.get("index_type", "flat")),
            min_score=None if data.get("min_score") is None else float(data["min_score"]),
            hybrid=None if data.get("hybrid") is None else dict(data["hybrid"]),
            files={str(k): dict(v) for k, v in data["files"].items()},
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def write_bundle(
    path: str | Path,
    manifest: Manifest,
    files: Mapping[str, bytes],
    *,
    before_swap: Callable[[Path], None] | None = None,
) -> Manifest:
    """Write ``files`` and a manifest listing their checksums to ``path``, atomically.

    ``before_swap`` is called with the finished temporary directory just
    before it replaces ``path`` (tests use it to simulate a crash there).
    Returns the manifest as written, with its ``files`` filled in.
    """
    target = Path(path)
    occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if occupied and not (target / MANIFEST).is_file():
        raise InputError(f"{target} exists and is not a faq-search index; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        listing = {}
        for name, data in files.items():
            _write_file(temp / name, data)
            listing[name] = {"sha256": sha256(data), "bytes": len(data)}
        final = Manifest(**{**manifest.__dict__, "files": listing, "format_version": FORMAT_VERSION})
        _write_file(temp / MANIFEST, json.dumps(final.to_dict(), indent=2, ensure_ascii=False).encode("utf-8"))
        _fsync_dir(temp)
        if before_swap is not None:
            before_swap(temp)
        _swap_in(temp, target)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return final


def read_bundle(path: str | Path) -> tuple[Manifest, dict[str, bytes]]:
    """Read and verify a bundle: version, presence, size and checksum of every file."""
    target = Path(path)
    if not (target / MANIFEST).is_file():
        if target.is_dir() and not any(target.iterdir()):
            raise BundleError(f"{target} is empty; build an index there with `faq-search index FILE --out {target}`")
        if target.exists():
            raise BundleError(f"{target} is not a faq-search index (no {MANIFEST}); pass the index directory")
        raise BundleError(f"no index at {target}; build one with `faq-search index FILE --out {target}`")
    dir_fd = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        raw = _read_at(dir_fd, MANIFEST, target)
        manifest = _parse_manifest(raw, target)
        contents: dict[str, bytes] = {}
        for name in DATA_FILES:
            expected = manifest.files.get(name)
            if expected is None:
                raise BundleError(f"{target / MANIFEST} lists no {name}; the manifest is damaged, rebuild the index")
            data = _read_at(dir_fd, name, target)
            if len(data) != int(expected["bytes"]) or sha256(data) != expected["sha256"]:
                raise BundleError(
                    f"{target / name} is corrupt (its size or checksum differs from the manifest); rebuild the index"
                )
            contents[name] = data
        return manifest, contents
    finally:
        os.close(dir_fd)


def _parse_manifest(raw: bytes, target: Path) -> Manifest:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleError(f"{target / MANIFEST} is not valid JSON; the index is damaged, rebuild it") from None
    if not isinstance(data, dict) or data.get("format") != "faq-search bundle":
        raise BundleError(f"{target / MANIFEST} is not a faq-search manifest; rebuild the index")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{target} has bundle format {version!r}, newer than this faq-search reads ({FORMAT_VERSION}); "
            "upgrade faq-search or rebuild the index"
        )
    try:
        return Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{target / MANIFEST} is missing or has a bad field ({exc}); rebuild the index") from None


def _read_at(dir_fd: int, name: str, target: Path) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        raise BundleError(f"{target / name} is missing; the index is incomplete, rebuild it") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(result == 0)


def _swap_in(temp: Path, target: Path) -> None:
    """Make ``temp`` become ``target``; the old ``target`` (if any) ends up at ``temp``."""
    if not target.exists():
        os.rename(temp, target)
    elif not _exchange(temp, target):
        # No atomic exchange here: two renames, with a short window where target is absent.
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(temp, target)
        os.rename(old, temp)
    _fsync_dir(target.parent)


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary directories left by writers that were killed mid-write."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        parts = stale.name.split(".tmp-", 1)[1].split("-", 1)
        if parts and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
