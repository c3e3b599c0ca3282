"""Writers: .jsonl and .parquet round trips, .npy for sentence level only, atomic replacement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faq_search.errors import InputError
from faq_search.export.embeddings import OUTPUT_FORMATS, Level, SentenceEmbedding
from faq_search.export.writers import WRITERS
from tests.export.samples import fabricated


@pytest.mark.parametrize("level", list(Level))
def test_jsonl_and_parquet_round_trip(tmp_path: Path, level: Level) -> None:
    import pyarrow.parquet as pq

    result = fabricated(level)
    lines = result.save(tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in result.records]

    table = pq.read_table(result.save(tmp_path / "out.parquet"))
    assert json.loads(table.schema.metadata[b"faq_search"])["level"] == level.value
    rows = table.to_pylist()
    assert [row["text"] for row in rows] == [r.text for r in result.records]
    for row, record in zip(rows, result.records, strict=True):
        if isinstance(record, SentenceEmbedding):
            np.testing.assert_array_equal(np.array(row["vector"], np.float32), record.vector)
        else:
            got = np.array(row["vectors"], np.float32).reshape(-1, 4)
            np.testing.assert_array_equal(got, record.vectors)
            assert [tuple(s) for s in row["offsets"]] == list(record.offsets)
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary file, then renamed


def test_npy_is_sentence_level_only(tmp_path: Path) -> None:
    result = fabricated(Level.SENTENCE)
    np.testing.assert_array_equal(np.load(result.save(tmp_path / "s.npy")), result.matrix())
    for level in (Level.TOKEN, Level.WORD):
        with pytest.raises(InputError, match=r"write \.jsonl or \.parquet instead"):
            fabricated(level).save(tmp_path / "t.npy")
    with pytest.raises(InputError, match=r"unknown output format '\.csv'"):
        result.save(tmp_path / "s.csv")
    with pytest.raises(InputError, match="does not exist"):
        result.save(tmp_path / "no" / "s.npy")


def test_every_accepted_suffix_has_a_writer() -> None:
    assert tuple(WRITERS) == OUTPUT_FORMATS
