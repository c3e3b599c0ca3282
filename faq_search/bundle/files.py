"""The index bundle on disk: a directory of plain files, written atomically.

Layout (format 1)::

    manifest.json   format version, encoder identity and settings, counts,
                    embedded fields, the SHA-256 and size of every other file,
                    and the SHA-256 of the manifest itself (``manifest_sha256``)
    vectors.faiss   the FAISS index, in FAISS's own format
    rows.json       for each vector: the entry it belongs to, the field it embeds
                    and a digest of the text it embeds (for incremental updates)
    entries.jsonl   one FAQ entry per line (id, questions, answer, metadata)

Further files may be listed in ``manifest.files``, also in subdirectories:
``lexical/`` (the BM25 index, when fusion is on) and ``encoder/`` (an adapted
encoder, safetensors); they are verified and returned like the others.

No pickle anywhere: loading a bundle never executes code. Every byte is
covered by a checksum: the data files by the SHA-256 in the manifest, the
manifest by its own ``manifest_sha256``, computed over its exact bytes with
that value zeroed (so a flipped space is caught too). A manifest without it
(written before it existed) still loads.

A bundle is written to a temporary sibling directory and swapped in with one
atomic rename (``renameat2(RENAME_EXCHANGE)`` on Linux), so a crash mid-write
leaves the previous bundle whole, and a reader sees either the old or the new
bundle. Reads go through one directory file descriptor for the same reason,
and start again when the directory they opened was swapped out and deleted
under them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from faq_search.errors import BundleError, InputError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
ROWS = "rows.json"
ENTRIES = "entries.jsonl"
DATA_FILES = (VECTORS, ROWS, ENTRIES)
"""The files every bundle has besides the manifest."""

SEAL = "manifest_sha256"
_SEAL_ZERO = "0" * 64
_READ_ATTEMPTS = 5


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
    adaptation: Mapping[str, Any] | None = None  # base model, settings and scores of `faq-search adapt`, if run
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
            "adaptation": None if self.adaptation is None else dict(self.adaptation),
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
            adaptation=None if data.get("adaptation") is None else dict(data["adaptation"]),
            files={str(k): dict(v) for k, v in data["files"].items()},
        )


def _manifest_keys() -> frozenset[str]:
    """Top-level keys a manifest may have: a key outside them is damage (a flipped byte in a name)."""
    return frozenset({"format", SEAL, *(f.name for f in fields(Manifest))})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal_manifest(data: Mapping[str, Any]) -> bytes:
    """The bytes of ``manifest.json`` for ``data``, with ``manifest_sha256`` over those very bytes.

    The checksum is computed with its own value written as 64 zeros, then put
    in place of the zeros: the file's length and every other byte stay as hashed.
    """
    body = {key: value for key, value in data.items() if key != SEAL}
    raw = (json.dumps({**body, SEAL: _SEAL_ZERO}, indent=2) + "\n").encode("ascii")  # escapes any lone surrogate
    return raw.replace(_seal_field(_SEAL_ZERO), _seal_field(sha256(raw)), 1)


def manifest_is_sealed(raw: bytes) -> bool:
    """True when manifest bytes carry a ``manifest_sha256`` that matches them; False for an older unsealed one.

    Raises :class:`BundleError` when the checksum is there but does not match.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleError(f"{MANIFEST} is not valid JSON") from None
    return _check_seal(raw, data if isinstance(data, dict) else {}, Path(MANIFEST))


def _seal_field(value: str) -> bytes:
    return f'"{SEAL}": "{value}"'.encode()


def _check_seal(raw: bytes, data: Mapping[str, Any], where: Path) -> bool:
    value = data.get(SEAL)
    if value is None:
        return False
    needle = _seal_field(value) if isinstance(value, str) else b""
    if (
        not isinstance(value, str)
        or not re.fullmatch("[0-9a-f]{64}", value)
        or raw.count(needle) != 1
        or sha256(raw.replace(needle, _seal_field(_SEAL_ZERO))) != value
    ):
        raise BundleError(
            f"{where} is corrupt (its content differs from its own checksum, manifest_sha256); rebuild the index"
        )
    return True


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

    File names may hold subdirectories (``adapter/model.safetensors``).
    ``before_swap`` is called with the finished temporary directory just
    before it replaces ``path`` (tests use it to simulate a crash there).
    Returns the manifest as written, with its ``files`` filled in.
    """
    target = Path(path)
    for name in files:
        _check_name(name, target)
    check_writable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    except OSError as exc:
        raise InputError(f"cannot write an index at {target} ({exc.strerror}); choose another --out") from None
    try:
        os.chmod(temp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a bundle is as readable as any new directory
        listing = {}
        for name, data in files.items():
            (temp / name).parent.mkdir(parents=True, exist_ok=True)
            _write_file(temp / name, data)
            listing[name] = {"sha256": sha256(data), "bytes": len(data)}
        final = Manifest(**{**manifest.__dict__, "files": listing, "format_version": FORMAT_VERSION})
        _write_file(temp / MANIFEST, seal_manifest(final.to_dict()))
        for folder in {(temp / name).parent for name in files}:
            fsync_dir(folder)
        fsync_dir(temp)
        if before_swap is not None:
            before_swap(temp)
        _swap_in(temp, target)
    except OSError as exc:  # disk full, quota, permissions: the old bundle stays as it was
        raise InputError(
            f"cannot write the index at {target} ({exc.strerror}); the previous index is unchanged"
        ) from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return final


def check_writable(path: str | Path) -> None:
    """Refuse to write a bundle over anything but a bundle (maybe damaged), an empty directory or nothing."""
    target = Path(path)
    occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if occupied and not looks_like_bundle(target):
        raise InputError(f"{target} exists and is not a faq-search index; choose another --out")


def read_bundle(path: str | Path) -> tuple[Manifest, dict[str, bytes]]:
    """Read and verify a bundle: version, the manifest's own checksum, and every listed file's size and checksum.

    Returns the manifest and the content of every file it lists. A reader
    racing a writer sees the old bundle or the new one: when the directory it
    opened is swapped out and deleted mid-read, it reads again.
    """
    target = Path(path)
    for attempt in range(_READ_ATTEMPTS):
        if not (target / MANIFEST).is_file():
            _no_manifest(target)
        try:
            dir_fd = os.open(target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            continue  # swapped between the check and the open
        except OSError as exc:
            raise BundleError(f"{target} cannot be read ({exc.strerror}); check its permissions") from None
        try:
            return _read_verified(dir_fd, target)
        except BundleError:
            if attempt + 1 < _READ_ATTEMPTS and _replaced(dir_fd, target):
                continue
            raise
        finally:
            os.close(dir_fd)
    raise BundleError(f"{target} kept changing while it was read; try again")


def _read_verified(dir_fd: int, target: Path) -> tuple[Manifest, dict[str, bytes]]:
    raw = _read_at(dir_fd, MANIFEST, target)
    manifest = _parse_manifest(raw, target)
    contents: dict[str, bytes] = {}
    for name, expected in manifest.files.items():
        data = _read_at(dir_fd, name, target)
        if len(data) != int(expected["bytes"]) or sha256(data) != expected["sha256"]:
            raise BundleError(
                f"{target / name} is corrupt (its size or checksum differs from the manifest); rebuild the index"
            )
        contents[name] = data
    return manifest, contents


def _replaced(dir_fd: int, target: Path) -> bool:
    """True when ``target`` is no longer the directory open as ``dir_fd`` (a writer swapped it)."""
    try:
        now = os.stat(target)
    except OSError:
        return True
    opened = os.fstat(dir_fd)
    return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)


def _no_manifest(target: Path) -> None:
    if target.is_dir() and not any(target.iterdir()):
        raise BundleError(f"{target} is empty; build an index there with `faq-search index FILE --out {target}`")
    if target.is_dir() and looks_like_bundle(target):
        raise BundleError(f"{target / MANIFEST} is missing; the index is incomplete, rebuild it")
    if target.exists():
        raise BundleError(f"{target} is not a faq-search index (no {MANIFEST}); pass the index directory")
    raise BundleError(f"no index at {target}; build one with `faq-search index FILE --out {target}`")


def looks_like_bundle(target: Path) -> bool:
    """A directory holding a manifest or any bundle data file: a bundle, maybe a damaged one."""
    return target.is_dir() and any((target / name).exists() for name in (MANIFEST, *DATA_FILES))


def _check_name(name: str, target: Path) -> None:
    """A listed file must stay inside the bundle: relative, no '..', not the manifest."""
    parts = name.split("/")
    if (
        not name
        or name == MANIFEST
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise BundleError(f"{target / MANIFEST} lists a file named {name!r}, which a bundle cannot hold; rebuild it")


def _parse_manifest(raw: bytes, target: Path) -> Manifest:
    where = target / MANIFEST
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError(f"{where} is not valid JSON; the index is damaged, rebuild it") from None
    if not isinstance(data, dict) or data.get("format") != "faq-search bundle":
        raise BundleError(f"{where} is not a faq-search manifest; rebuild the index")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{target} has bundle format {version!r} in {MANIFEST}, which is not a version; rebuild it")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{target} has bundle format {version!r}, newer than this faq-search reads ({FORMAT_VERSION}) "
            f"(see {where}); upgrade faq-search or rebuild the index"
        )
    unknown = sorted(set(data) - _manifest_keys())
    if unknown:
        raise BundleError(f"{where} has an unknown field {unknown[0]!r}; the manifest is damaged, rebuild the index")
    try:
        manifest = Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where} is missing or has a bad field ({exc}); rebuild the index") from None
    for name in DATA_FILES:
        if name not in manifest.files:
            raise BundleError(f"{where} lists no {name}; the manifest is damaged, rebuild the index")
    for name, info in manifest.files.items():
        _check_name(name, target)
        if not isinstance(info.get("sha256"), str) or not isinstance(info.get("bytes"), int):
            raise BundleError(f"{where} has a bad checksum entry for {name}; the manifest is damaged, rebuild it")
    _check_seal(raw, data, where)
    return manifest


def _read_at(dir_fd: int, name: str, target: Path) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=dir_fd)
    except FileNotFoundError:
        raise BundleError(f"{target / name} is missing; the index is incomplete, rebuild it") from None
    except OSError as exc:
        raise BundleError(f"{target / name} cannot be read ({exc.strerror}); rebuild the index") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or new file in it survives a crash; silently skipped where unsupported."""
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
    fsync_dir(target.parent)


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 where it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


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
