"""Reading and writing a bundle directory: atomic, verified, no pickle.

A bundle is written to a temporary sibling directory and swapped in with one
atomic rename (``renameat2(RENAME_EXCHANGE)`` on Linux), so a crash mid-write
leaves the previous bundle whole, and a reader sees either the old or the new
bundle. Reads go through one directory file descriptor for the same reason,
and start again when the directory they opened was swapped out and deleted
under them. Every file is checked against the manifest's SHA-256 and size
(:mod:`faq_search.bundle.manifest`); the layout is :mod:`faq_search.bundle.layout`.
Loading a bundle never executes code. The large files (:data:`~faq_search.bundle.layout.MAPPED_FILES`)
are memory-mapped rather than read: checked against their SHA-256 through the mapping, then handed out
as the mapping itself, so a reader pages in what it uses and never holds a second copy.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from faq_search.bundle.layout import COLUMNAR_FILES, DATA_FILES, ENTRIES, MANIFEST, MAPPED_FILES, ROWS, VECTORS
from faq_search.bundle.manifest import (
    FORMAT_VERSION,
    Manifest,
    build_record,
    check_name,
    manifest_is_sealed,
    now_iso,
    parse_manifest,
    seal_manifest,
    sha256,
)
from faq_search.errors import BundleError, InputError

__all__ = [
    "DATA_FILES",
    "ENTRIES",
    "FORMAT_VERSION",
    "MANIFEST",
    "ROWS",
    "VECTORS",
    "Content",
    "Manifest",
    "check_writable",
    "fsync_dir",
    "looks_like_bundle",
    "manifest_is_sealed",
    "now_iso",
    "read_bundle",
    "seal_manifest",
    "write_bundle",
]

_READ_ATTEMPTS = 5

Content = bytes | mmap.mmap
"""A bundle file as :func:`read_bundle` hands it out: its bytes, or a read-only mapping of a large file."""


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
        check_name(name, target)
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
        build = manifest.build or build_record()
        final = Manifest(**{**manifest.__dict__, "files": listing, "format_version": FORMAT_VERSION, "build": build})
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


def read_bundle(path: str | Path) -> tuple[Manifest, dict[str, Content]]:
    """Read and verify a bundle: version, the manifest's own checksum, and every listed file's size and checksum.

    Returns the manifest and the content of every file it lists (a large file,
    :data:`~faq_search.bundle.layout.MAPPED_FILES`, as a read-only ``mmap``). A reader
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


def _read_verified(dir_fd: int, target: Path) -> tuple[Manifest, dict[str, Content]]:
    raw = _read_at(dir_fd, MANIFEST, target)
    manifest = parse_manifest(raw, target)
    contents: dict[str, Content] = {}
    for name, expected in manifest.files.items():
        data = _map_at(dir_fd, name, target) if name in MAPPED_FILES else _read_at(dir_fd, name, target)
        if len(data) != int(expected["bytes"]) or _digest(data) != expected["sha256"]:
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
    return target.is_dir() and any((target / name).exists() for name in (MANIFEST, *DATA_FILES, *COLUMNAR_FILES))


def _digest(data: Content) -> str:
    """SHA-256 in hex, of bytes or of a mapping.

    A mapping is read in 16 MiB steps and each step's pages are released from
    the process once hashed (they stay in the page cache): checking a 1 GB
    bundle does not leave 1 GB resident; the parts a query reads fault back in.
    """
    if isinstance(data, bytes):
        return sha256(data)
    digest = hashlib.sha256()
    view = memoryview(data)
    step = 1 << 24
    release = getattr(mmap, "MADV_DONTNEED", None) if isinstance(data, mmap.mmap) else None
    for start in range(0, len(view), step):
        digest.update(view[start : start + step])
        if release is not None:
            data.madvise(release, start, min(step, len(view) - start))
    view.release()
    return digest.hexdigest()


def _open_at(dir_fd: int, name: str, target: Path) -> int:
    """A read-only descriptor of a bundle file (never through a symlink), or a BundleError naming the file."""
    try:
        return os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=dir_fd)
    except FileNotFoundError:
        raise BundleError(f"{target / name} is missing; the index is incomplete, rebuild it") from None
    except OSError as exc:
        raise BundleError(f"{target / name} cannot be read ({exc.strerror}); rebuild the index") from None


def _map_at(dir_fd: int, name: str, target: Path) -> Content:
    """A read-only mapping of a bundle file (its bytes when it is empty: an empty file cannot be mapped)."""
    fd = _open_at(dir_fd, name, target)
    try:
        if os.fstat(fd).st_size == 0:
            return b""
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)  # stays valid when the bundle is swapped and deleted
    except OSError as exc:
        raise BundleError(f"{target / name} cannot be mapped ({exc.strerror}); rebuild the index") from None
    finally:
        os.close(fd)


def _read_at(dir_fd: int, name: str, target: Path) -> bytes:
    with os.fdopen(_open_at(dir_fd, name, target), "rb") as handle:
        return handle.read()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new files, renames) durable; a no-op where the system refuses."""
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
