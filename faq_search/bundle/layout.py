"""Where things live inside a bundle directory: the one list of its file and folder names.

::

    manifest.json   format version, build record, encoder identity and settings, counts, fields,
                    the SHA-256 and size of every other file, and its own SHA-256 (``manifest_sha256``)
    vectors.faiss   the FAISS index, in FAISS's own format
    rows.json       for each vector: the entry it belongs to, the field it embeds, a digest of its text
    entries.jsonl   one FAQ entry per line (id, questions, answer, metadata)
    rows/*.npy      (large bundles, instead of rows.json) the same row table as .npy columns, memory-mapped
    entries.arrow   (large bundles, instead of entries.jsonl) the entries as an Arrow IPC file, memory-mapped
    lexical/        the BM25 index when fusion is on (bm25s's .npy arrays and JSON; term_counts.npy and
                    document_lengths.npy: each score's term frequency and each entry's token count)
    encoder/        an adapted encoder (safetensors, config, tokenizer), when ``faq-search adapt`` kept one
    onnx/           the query encoder as an ONNX graph, its tokenizer and identity, for answering without torch
                    (``faq-search onnx``; see faq_search.encoding.onnx_export)
    filters/        the filterable metadata columns (``index --metadata-column``): columns.json and one .npy each
"""

from __future__ import annotations

MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
ROWS = "rows.json"
ENTRIES = "entries.jsonl"
DATA_FILES = (VECTORS, ROWS, ENTRIES)
"""The files of a bundle in the JSON layout besides the manifest (a columnar bundle: :data:`COLUMNAR_FILES`)."""

ROWS_ENTRY = "rows/entry.npy"
ROWS_FIELD = "rows/field.npy"
ROWS_DIGEST = "rows/digest.npy"
ENTRIES_ARROW = "entries.arrow"
COLUMNAR_FILES = (VECTORS, ROWS_ENTRY, ROWS_FIELD, ENTRIES_ARROW)
"""The files every columnar bundle has besides the manifest (``rows/digest.npy`` too, unless digests are unknown)."""
MAPPED_FILES = (
    VECTORS,
    ROWS_ENTRY,
    ROWS_FIELD,
    ROWS_DIGEST,
    ENTRIES_ARROW,
    *(f"lexical/{name}.csc.index.npy" for name in ("data", "indices", "indptr")),
    "lexical/term_counts.npy",
    "lexical/document_lengths.npy",
)
"""Files a reader maps into memory instead of reading (after checking them): the large ones (BM25's arrays too)."""

LEXICAL_DIR = "lexical"
ENCODER_DIR = "encoder"
ONNX_DIR = "onnx"
FILTERS_DIR = "filters"
