"""Exported embeddings to files: ``.npy`` (sentence level), ``.jsonl`` and ``.parquet``.

One writer per format in one table, keyed by suffix; :func:`save` checks the
path first (:func:`~faq_search.export.inputs.check_output`), writes to a
temporary name beside it and renames, so a failed run never leaves half a
file. numpy and pyarrow are imported only by the writer that needs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from faq_search.export.inputs import check_output
from faq_search.export.records import Embeddings, Level, SentenceEmbedding, TokenEmbedding, WordEmbedding

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def save(result: Embeddings, path: str | Path) -> Path:
    """Write ``result`` to ``path`` in the format its suffix names, replacing the file atomically."""
    path = check_output(path, result.level)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        WRITERS[path.suffix.lower()](result, temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def _write_npy(result: Embeddings, path: Path) -> None:
    import numpy as np

    with path.open("wb") as handle:
        np.save(handle, result.matrix())


def _write_jsonl(result: Embeddings, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in result.records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def _write_parquet(result: Embeddings, path: Path) -> None:
    """One row per text; vectors as (lists of) fixed-size float32 lists; the metadata in the schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if result.level is Level.SENTENCE:
        columns = _sentence_columns(result)
    elif result.level is Level.TOKEN:
        columns = _token_columns(result)
    else:
        columns = _word_columns(result)
    table = pa.table(columns).replace_schema_metadata({"faq_search": json.dumps(result.metadata())})
    pq.write_table(table, path)


def _fixed(matrix: np.ndarray, width: int) -> pa.Array:
    """Rows of ``matrix`` as a fixed-size list array of float32."""
    import numpy as np
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _nested(matrices: list[np.ndarray], width: int) -> pa.Array:
    """One list of fixed-size float32 lists per matrix (texts have different numbers of vectors)."""
    import numpy as np
    import pyarrow as pa

    counts = np.cumsum([0] + [len(m) for m in matrices]).astype(np.int32)
    inner = _fixed(np.concatenate(matrices) if matrices else np.zeros((0, width), np.float32), width)
    return pa.ListArray.from_arrays(pa.array(counts), inner)


def _sentence_columns(result: Embeddings) -> dict[str, pa.Array]:
    import pyarrow as pa

    sentences = [r for r in result.records if isinstance(r, SentenceEmbedding)]
    return {
        "text": pa.array([r.text for r in sentences], pa.string()),
        "tokens": pa.array([list(r.tokens) for r in sentences], pa.list_(pa.string())),
        "truncated": pa.array([r.truncated for r in sentences], pa.bool_()),
        "vector": _fixed(result.matrix(), result.dimension),
    }


def _token_columns(result: Embeddings) -> dict[str, pa.Array]:
    import pyarrow as pa

    spans = pa.list_(pa.list_(pa.int32(), 2))
    tokens = [r for r in result.records if isinstance(r, TokenEmbedding)]
    return {
        "text": pa.array([r.text for r in tokens], pa.string()),
        "tokens": pa.array([list(r.tokens) for r in tokens], pa.list_(pa.string())),
        "offsets": pa.array([[list(s) for s in r.offsets] for r in tokens], spans),
        "word_index": pa.array([list(r.word_index) for r in tokens], pa.list_(pa.int32())),
        "windows": pa.array([r.windows for r in tokens], pa.int32()),
        "dropped_tokens": pa.array([r.dropped_tokens for r in tokens], pa.int32()),
        "truncated_at": pa.array([r.truncated_at for r in tokens], pa.int64()),
        "vectors": _nested([r.vectors for r in tokens], result.dimension),
    }


def _word_columns(result: Embeddings) -> dict[str, pa.Array]:
    import pyarrow as pa

    spans = pa.list_(pa.list_(pa.int32(), 2))
    words = [r for r in result.records if isinstance(r, WordEmbedding)]
    return {
        "text": pa.array([r.text for r in words], pa.string()),
        "words": pa.array([list(r.words) for r in words], pa.list_(pa.string())),
        "offsets": pa.array([[list(s) for s in r.offsets] for r in words], spans),
        "pieces": pa.array([[list(p) for p in r.pieces] for r in words], pa.list_(pa.list_(pa.string()))),
        "windows": pa.array([r.windows for r in words], pa.int32()),
        "dropped_words": pa.array([list(r.dropped_words) for r in words], pa.list_(pa.string())),
        "truncated_at": pa.array([r.truncated_at for r in words], pa.int64()),
        "vectors": _nested([r.vectors for r in words], result.dimension),
    }


WRITERS: dict[str, Callable[[Embeddings, Path], None]] = {
    ".npy": _write_npy,
    ".jsonl": _write_jsonl,
    ".parquet": _write_parquet,
}
"""One writer per output suffix; its keys are :data:`~faq_search.export.inputs.OUTPUT_FORMATS`."""
