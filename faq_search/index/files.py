"""An index as bundle files and back: the row table, the entries, the vectors and the extras.

:func:`index_files` turns an index's parts into the bytes the bundle writer
seals; :func:`read_index_files` turns a verified bundle's content back into
parts and checks that they agree with each other and with the manifest
(counts, dimension, row -> entry pointers, text digests). The checksums
themselves are the bundle layer's job (:mod:`faq_search.bundle.files`).

Two layouts: JSON (``rows.json``, ``entries.jsonl``: readable, parsed whole
at load) for FAQs under :data:`~faq_search.index.columnar.COLUMNAR_ENTRIES`
entries, and columnar (``rows/*.npy``, ``entries.arrow``: memory-mapped,
decoded on use, :mod:`faq_search.index.columnar`) from there on. Both load the
same way, and a bundle in either layout may be rewritten in the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.bundle.files import DATA_FILES, ENTRIES, ROWS, VECTORS, Content, Manifest
from faq_search.bundle.layout import COLUMNAR_FILES, ENTRIES_ARROW, ROWS_DIGEST, ROWS_ENTRY, ROWS_FIELD
from faq_search.corpus import FaqEntry
from faq_search.errors import BundleError
from faq_search.index.columnar import (
    COLUMNAR_ENTRIES,
    FIELD_CODES,
    CodedStrings,
    ColumnarEntries,
    entries_arrow,
    npy_bytes,
    npy_view,
)
from faq_search.index.lexical import LEXICAL_DIR
from faq_search.index.manifest import IndexManifest
from faq_search.index.store import VectorStore


@dataclass(frozen=True)
class IndexFiles:
    """A bundle's content as an index holds it."""

    manifest: IndexManifest
    entries: Sequence[FaqEntry]  # a list, or a ColumnarEntries over the mapped file
    store: VectorStore
    row_digests: Sequence[str] | None  # None for bundles written before digests were recorded
    lexical: dict[str, Content]  # the BM25 index's files (names inside lexical/, mapped or read), empty without fusion
    extra: dict[str, bytes]  # every other file (an adapted encoder's), kept through load and save


def index_files(
    entries: Sequence[FaqEntry],
    store: VectorStore,
    row_digests: Sequence[str] | None,
    lexical: Mapping[str, bytes] | None,
    columnar: bool | None = None,
) -> dict[str, bytes]:
    """The standard data files of a bundle, and ``lexical/...`` when given.

    ``columnar``: the columnar layout (None: from :data:`COLUMNAR_ENTRIES` entries on).
    """
    if columnar is None:
        columnar = len(entries) >= COLUMNAR_ENTRIES
    digests = list(row_digests) if row_digests is not None and len(row_digests) == len(store) else None
    files = {VECTORS: store.to_bytes()}
    if columnar:
        files[ROWS_ENTRY] = npy_bytes(np.asarray(store.row_entry, dtype=np.int64))
        codes = {name: code for code, name in enumerate(FIELD_CODES)}
        files[ROWS_FIELD] = npy_bytes(np.fromiter((codes[f] for f in store.row_field), np.uint8, len(store)))
        if digests is not None:
            files[ROWS_DIGEST] = npy_bytes(np.asarray(digests, dtype="S32"))
        files[ENTRIES_ARROW] = entries_arrow(entries)
    else:
        text = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in entries)
        rows: dict[str, Any] = {"entry": store.row_entry.tolist(), "field": list(store.row_field)}
        if digests is not None:
            rows["text_digest"] = digests
        files[ROWS] = json.dumps(rows).encode("utf-8")
        files[ENTRIES] = text.encode("utf-8")
    files.update({f"{LEXICAL_DIR}/{name}": data for name, data in (lexical or {}).items()})
    return files


def _json_parts(files: Mapping[str, Content]) -> tuple[list[FaqEntry], np.ndarray, list[str], Any]:
    lines = bytes(files[ENTRIES]).decode("utf-8").split("\n")  # not splitlines(): U+2028 or U+0085 may be in a text
    entries = [FaqEntry.from_dict(json.loads(line)) for line in lines if line]
    rows = json.loads(bytes(files[ROWS]).decode("utf-8"))
    return entries, np.asarray(rows["entry"], dtype=np.int64), rows["field"], rows.get("text_digest")


def _columnar_parts(
    files: Mapping[str, Content],
) -> tuple[ColumnarEntries, np.ndarray, CodedStrings, CodedStrings | None]:
    entries = ColumnarEntries(files[ENTRIES_ARROW], ENTRIES_ARROW)
    row_entry = npy_view(files[ROWS_ENTRY], ROWS_ENTRY)
    codes = npy_view(files[ROWS_FIELD], ROWS_FIELD)
    if row_entry.dtype != np.int64 or codes.dtype != np.uint8 or row_entry.ndim != 1 or codes.shape != row_entry.shape:
        raise ValueError(f"{ROWS_ENTRY} and {ROWS_FIELD} must be int64 and uint8 columns of one length")
    if len(codes) and int(codes.max()) >= len(FIELD_CODES):
        raise ValueError(f"{ROWS_FIELD} names an unknown field")
    digests = None
    if ROWS_DIGEST in files:
        values = npy_view(files[ROWS_DIGEST], ROWS_DIGEST)
        if values.dtype != np.dtype("S32") or values.shape != row_entry.shape:
            raise ValueError(f"{ROWS_DIGEST} must hold one 32-character digest per row")
        digests = CodedStrings(values)
    return entries, row_entry, CodedStrings(codes, FIELD_CODES), digests


def read_index_files(path: str | Path, manifest: Manifest, files: Mapping[str, Content]) -> IndexFiles:
    """The parts of a bundle as :func:`~faq_search.bundle.files.read_bundle` gave it; BundleError if they disagree."""
    columnar = ENTRIES_ARROW in files
    try:
        entries, row_entry, row_field, digests = _columnar_parts(files) if columnar else _json_parts(files)
        store = VectorStore(VectorStore.index_from_bytes(files[VECTORS]), row_entry, row_field)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise BundleError(f"{path}: the index files are inconsistent ({exc}); rebuild the index") from None
    if len(entries) != manifest.entry_count or len(store) != manifest.vector_count:
        raise BundleError(f"{path}: entry or vector counts differ from the manifest; rebuild the index")
    typed = IndexManifest.from_bundle(manifest, where=path)
    if store.dimension != typed.identity.dimension:
        raise BundleError(f"{path}: the vectors' dimension differs from the manifest's; rebuild the index")
    rows_name = ROWS_ENTRY if columnar else ROWS
    if len(row_entry) and (row_entry.min() < 0 or row_entry.max() >= len(entries)):
        raise BundleError(f"{path}: {rows_name} points at entries the index does not have; rebuild the index")
    if (
        digests is not None
        and not columnar
        and (
            not isinstance(digests, list) or len(digests) != len(store) or not all(isinstance(d, str) for d in digests)
        )
    ):
        raise BundleError(f"{path}: the text digests in {ROWS} do not match its rows; rebuild the index")
    prefix = f"{LEXICAL_DIR}/"
    lexical = {name[len(prefix) :]: data for name, data in files.items() if name.startswith(prefix)}  # not copied
    standard = {*DATA_FILES, *COLUMNAR_FILES, ROWS_DIGEST}
    extra = {name: bytes(data) for name, data in files.items() if name not in standard and not name.startswith(prefix)}
    return IndexFiles(typed, entries, store, digests, lexical, extra)
