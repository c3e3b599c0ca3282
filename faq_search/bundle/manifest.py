"""The bundle's manifest: a typed, versioned, sealed record of what the bundle holds.

The manifest lists every other file with its SHA-256 and size, and carries its
own SHA-256 (``manifest_sha256``), computed over its exact bytes with that value
zeroed, so a flipped space is caught too. Older manifests are brought to the
current format by :func:`upgrade`, in this one place, so no reader branches on
"an older bundle". What the index keeps in it (encoder identity and settings,
fusion, calibration) stays a plain mapping here: the bundle layer does not know
encoders; :mod:`faq_search.index.manifest` types it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from faq_search.bundle.layout import COLUMNAR_FILES, DATA_FILES, ENTRIES_ARROW, MANIFEST
from faq_search.errors import BundleError

FORMAT_VERSION = 3
"""Version 3 allows the columnar layout (``rows/*.npy`` and ``entries.arrow``, written for large FAQs) beside
the JSON one; version 2 added the build record (library versions) and the confidence model, and made
``min_score`` a confidence. :func:`upgrade` reads versions 1 and 2."""

SEAL = "manifest_sha256"
_SEAL_ZERO = "0" * 64


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
    min_score: float | None = None  # a confidence in [0, 1] (version 1: a score in other units, dropped)
    hybrid: Mapping[str, Any] | None = None  # HybridSettings fields; None = dense only
    confidence: Mapping[str, Any] | None = None  # ConfidenceModel.to_dict() of `calibrate`; None = shipped model
    adaptation: Mapping[str, Any] | None = None  # base model, settings and scores of `faq-search adapt`, if run
    source: str | None = None
    created: str = ""
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    build: Mapping[str, str] = field(default_factory=dict)  # library versions that built the vectors
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
            "confidence": None if self.confidence is None else dict(self.confidence),
            "adaptation": None if self.adaptation is None else dict(self.adaptation),
            "files": {k: dict(v) for k, v in self.files.items()},
            "build": dict(self.build),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """A manifest of the current format (see :func:`upgrade` for older ones)."""
        return cls(
            format_version=int(data["format_version"]),
            created=str(data["created"]),
            source=data["source"],
            encoder=dict(data["encoder"]),
            settings=dict(data["settings"]),
            precision=str(data["precision"]),
            entry_count=int(data["entry_count"]),
            vector_count=int(data["vector_count"]),
            fields=tuple(data["fields"]),
            index_type=str(data["index_type"]),
            min_score=None if data["min_score"] is None else float(data["min_score"]),
            hybrid=None if data["hybrid"] is None else dict(data["hybrid"]),
            confidence=None if data["confidence"] is None else dict(data["confidence"]),
            adaptation=None if data["adaptation"] is None else dict(data["adaptation"]),
            files={str(k): dict(v) for k, v in data["files"].items()},
            build={str(k): str(v) for k, v in data["build"].items()},
        )


_VERSION_1_DEFAULTS: Mapping[str, Any] = {
    "created": "",
    "source": None,
    "index_type": "flat",
    "min_score": None,
    "hybrid": None,
    "adaptation": None,
}
"""Keys a version-1 manifest could lack (they were added while the format stayed 1), and their meaning then."""


def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest's content in the current format: the one place older formats are read.

    Version 1 -> 2: the keys version 1 could lack get the values they meant
    then, the build record is empty (the versions that built it are unknown),
    the confidence model is the shipped one (``confidence`` None) and a stored
    ``min_score`` is dropped: it was a cosine or fused score, not a confidence,
    so keeping it would silently filter on the wrong scale (run ``calibrate``).
    Version 2 -> 3: nothing to change (a version-2 bundle is in the JSON
    layout, which version 3 still reads). The seal is checked on the raw
    bytes before this, so upgrading never weakens the checksum.
    """
    out = dict(data)
    if out.get("format_version") == 1:
        out = {**_VERSION_1_DEFAULTS, **out, "min_score": None, "confidence": None, "build": {}, "format_version": 2}
    if out.get("format_version") == 2:
        out = {**out, "format_version": 3}
    return out


@cache
def build_record() -> dict[str, str]:
    """The versions of faq-search and of the libraries that shape the vectors and the index (txtai does the same)."""
    record = {}
    for package in ("faq-search", "torch", "transformers", "tokenizers", "faiss-cpu", "numpy", "bm25s"):
        try:
            record[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return record


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
    """The current UTC time, to the second, as ISO 8601 (the manifest's ``created``)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def check_name(name: str, target: Path) -> None:
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


def parse_manifest(raw: bytes, target: Path) -> Manifest:
    """The verified, upgraded manifest of the bundle at ``target`` from its raw bytes; BundleError names the damage."""
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
        manifest = Manifest.from_dict(upgrade(data))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where} is missing or has a bad field ({exc}); rebuild the index") from None
    for name in COLUMNAR_FILES if ENTRIES_ARROW in manifest.files else DATA_FILES:
        if name not in manifest.files:
            raise BundleError(f"{where} lists no {name}; the manifest is damaged, rebuild the index")
    for name, info in manifest.files.items():
        check_name(name, target)
        if not isinstance(info.get("sha256"), str) or not isinstance(info.get("bytes"), int):
            raise BundleError(f"{where} has a bad checksum entry for {name}; the manifest is damaged, rebuild it")
    _check_seal(raw, data, where)
    return manifest
