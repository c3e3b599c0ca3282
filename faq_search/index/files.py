"""An index as bundle files and back: ``rows.json``, ``entries.jsonl``, the vectors and the extras.

:func:`index_files` turns an index's parts into the bytes the bundle writer
seals; :func:`read_index_files` turns a verified bundle's bytes back into
parts and checks that they agree with each other and with the manifest
(counts, dimension, row -> entry pointers, text digests). The checksums
themselves are the bundle layer's job (:mod:`faq_search.bundle.files`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faq_search.bundle.files import DATA_FILES, ENTRIES, ROWS, VECTORS, Manifest
from faq_search.corpus import FaqEntry
from faq_search.errors import BundleError
from faq_search.index.lexical import LEXICAL_DIR
from faq_search.index.manifest import IndexManifest
from faq_search.index.store import VectorStore


@dataclass(frozen=True)
class IndexFiles:
    """A bundle's content as an index holds it."""

    manifest: IndexManifest
    entries: list[FaqEntry]
    store: VectorStore
    row_digests: list[str] | None  # None for bundles written before digests were recorded
    lexical: dict[str, bytes]  # the BM25 index's files (names inside lexical/), empty without fusion
    extra: dict[str, bytes]  # every other file (an adapted encoder's), kept through load and save


def index_files(
    entries: Sequence[FaqEntry],
    store: VectorStore,
    row_digests: Sequence[str] | None,
    lexical: Mapping[str, bytes] | None,
) -> dict[str, bytes]:
    """The standard data files of a bundle, and ``lexical/...`` when given."""
    text = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in entries)
    rows: dict[str, Any] = {"entry": store.row_entry.tolist(), "field": store.row_field}
    if row_digests is not None and len(row_digests) == len(store):
        rows["text_digest"] = list(row_digests)
    files = {
        VECTORS: store.to_bytes(),
        ROWS: json.dumps(rows).encode("utf-8"),
        ENTRIES: text.encode("utf-8"),
    }
    files.update({f"{LEXICAL_DIR}/{name}": data for name, data in (lexical or {}).items()})
    return files


def read_index_files(path: str | Path, manifest: Manifest, files: Mapping[str, bytes]) -> IndexFiles:
    """The parts of a bundle as :func:`~faq_search.bundle.files.read_bundle` gave it; BundleError if they disagree."""
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
    typed = IndexManifest.from_bundle(manifest, where=path)
    if store.dimension != typed.identity.dimension:
        raise BundleError(f"{path}: the vectors' dimension differs from the manifest's; rebuild the index")
    if len(row_entry) and (row_entry.min() < 0 or row_entry.max() >= len(entries)):
        raise BundleError(f"{path}: {ROWS} points at entries the index does not have; rebuild the index")
    if digests is not None and (
        not isinstance(digests, list) or len(digests) != len(store) or not all(isinstance(d, str) for d in digests)
    ):
        raise BundleError(f"{path}: the text digests in {ROWS} do not match its rows; rebuild the index")
    prefix = f"{LEXICAL_DIR}/"
    lexical = {name[len(prefix) :]: data for name, data in files.items() if name.startswith(prefix)}
    extra = {name: data for name, data in files.items() if name not in DATA_FILES and not name.startswith(prefix)}
    return IndexFiles(typed, entries, store, digests, lexical, extra)
