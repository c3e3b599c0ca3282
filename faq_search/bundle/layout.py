"""Where things live inside a bundle directory: the one list of its file and folder names.

::

    manifest.json   format version, build record, encoder identity and settings, counts, fields,
                    the SHA-256 and size of every other file, and its own SHA-256 (``manifest_sha256``)
    vectors.faiss   the FAISS index, in FAISS's own format
    rows.json       for each vector: the entry it belongs to, the field it embeds, a digest of its text
    entries.jsonl   one FAQ entry per line (id, questions, answer, metadata)
    lexical/        the BM25 index when fusion is on (bm25s's .npy arrays and JSON)
    encoder/        an adapted encoder (safetensors, config, tokenizer), when ``faq-search adapt`` kept one
    filters/        the filterable metadata columns (``index --metadata-column``): columns.json and one .npy each
"""

from __future__ import annotations

MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
ROWS = "rows.json"
ENTRIES = "entries.jsonl"
DATA_FILES = (VECTORS, ROWS, ENTRIES)
"""The files every bundle has besides the manifest."""

LEXICAL_DIR = "lexical"
ENCODER_DIR = "encoder"
FILTERS_DIR = "filters"
