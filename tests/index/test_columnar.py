"""The columnar bundle layout: rows as .npy columns, entries as Arrow IPC, mapped at load, checked like any file."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from faq_search.bundle.files import ENTRIES, MANIFEST, ROWS, read_bundle
from faq_search.bundle.layout import ENTRIES_ARROW, ROWS_DIGEST, ROWS_ENTRY, ROWS_FIELD
from faq_search.corpus import FaqEntry, read_faq
from faq_search.errors import BundleError
from faq_search.index import files as index_files
from faq_search.index.columnar import CodedStrings, ColumnarEntries, npy_bytes, npy_view
from faq_search.index.faq_index import FaqIndex
from faq_search.index.update import update_bundle
from faq_search.index.verify import check_bundle
from tests.conftest import DATA, FakeEncoder, tree

QUESTIONS = ["forgot my password", "how long does delivery take", "can I pay by invoice", "gift card expired"]


@pytest.fixture
def columnar(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bundle saved in the test is columnar (the sample FAQ is far below the size that switches)."""
    monkeypatch.setattr(index_files, "COLUMNAR_ENTRIES", 1)


def entries() -> list[FaqEntry]:
    found = read_faq(DATA / "faq.csv")
    found[0] = dataclasses.replace(found[0], metadata={"lang": "de", "note": "Grüße\u2028aus Köln"}, aliases=("x-1",))
    return found


def answers(index: FaqIndex) -> list[list[tuple[str, float, str]]]:
    return [[(m.entry.id, round(m.score, 6), m.field) for m in index.ask(q, k=5)] for q in QUESTIONS]


def test_a_columnar_bundle_answers_as_the_json_one(columnar: None, tmp_path: Path) -> None:
    built = FaqIndex.build(entries(), encoder=FakeEncoder())
    built.save(tmp_path / "columnar")
    names = set(tree(tmp_path / "columnar"))
    assert {ROWS_ENTRY, ROWS_FIELD, ROWS_DIGEST, ENTRIES_ARROW} <= names and not {ROWS, ENTRIES} & names
    loaded = FaqIndex.load(tmp_path / "columnar", encoder=FakeEncoder())
    assert isinstance(loaded.entries, ColumnarEntries) and isinstance(loaded.store.row_field, CodedStrings)
    assert not loaded.store.row_entry.flags.owndata  # a view over the mapped file, not a copy
    assert list(loaded.entries) == built.entries and loaded.entries == built.entries
    assert (
        loaded.entries[0].metadata == {"lang": "de", "note": "Grüße\u2028aus Köln"}
        and loaded.entries[-1] == built.entries[-1]
    )
    assert list(loaded.store.row_field) == built.store.row_field and loaded.row_digests == built.row_digests
    np.testing.assert_array_equal(loaded.store.row_entry, built.store.row_entry)
    assert answers(loaded) == answers(built)


def test_an_old_json_bundle_loads_and_is_rewritten_columnar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = FaqIndex.build(entries(), encoder=FakeEncoder())
    built.save(tmp_path / "json")
    assert {ROWS, ENTRIES} <= set(tree(tmp_path / "json"))  # small FAQs keep the readable layout
    old = FaqIndex.load(tmp_path / "json", encoder=FakeEncoder())
    monkeypatch.setattr(index_files, "COLUMNAR_ENTRIES", 1)
    old.save(tmp_path / "converted")
    assert answers(FaqIndex.load(tmp_path / "converted", encoder=FakeEncoder())) == answers(built)


def test_checksums_cover_the_columnar_files(columnar: None, tmp_path: Path) -> None:
    FaqIndex.build(entries(), encoder=FakeEncoder()).save(tmp_path / "b")
    listed = json.loads((tmp_path / "b" / MANIFEST).read_text())["files"]
    assert {ROWS_ENTRY, ROWS_FIELD, ROWS_DIGEST, ENTRIES_ARROW} <= set(listed)
    for name in (ROWS_ENTRY, ENTRIES_ARROW):
        path = tmp_path / "b" / name
        original = path.read_bytes()
        damaged = bytearray(original)
        damaged[-3] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(BundleError, match=f"{name} is corrupt"):
            FaqIndex.load(tmp_path / "b")
        report = check_bundle(tmp_path / "b", encoder=FakeEncoder())
        assert not report.ok and "is corrupt" in report.findings[0].detail
        path.write_bytes(original)
    report = check_bundle(tmp_path / "b", encoder=FakeEncoder(), sample=8)
    assert report.ok, report.to_dict()


def test_an_update_over_a_columnar_bundle_reuses_every_vector(columnar: None, tmp_path: Path) -> None:
    encoder = FakeEncoder()
    update_bundle(tmp_path / "b", entries(), encoder=encoder)
    encoder.calls.clear()
    changed = entries()
    changed[2] = dataclasses.replace(changed[2], answer="A new answer about returns.")
    index = update_bundle(tmp_path / "b", changed, encoder=encoder)
    assert index.report is not None and index.report.encoded == 1 and encoder.calls == [["A new answer about returns."]]
    assert answers(FaqIndex.load(tmp_path / "b", encoder=FakeEncoder())) == answers(
        FaqIndex.build(changed, encoder=FakeEncoder())
    )


def test_extra_files_of_other_features_travel_with_a_columnar_bundle(columnar: None, tmp_path: Path) -> None:
    index = FaqIndex.build(entries(), encoder=FakeEncoder())
    index.extra_files = {"future/feature.bin": b"a later feature", "encoder/model.onnx": b"onnx"}
    index.save(tmp_path / "b")
    loaded = FaqIndex.load(tmp_path / "b")
    assert loaded.extra_files == index.extra_files
    _, files = read_bundle(tmp_path / "b")
    assert bytes(files["encoder/model.onnx"]) == b"onnx"


def test_npy_columns_never_unpickle() -> None:
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BundleError, match=r"not a plain \.npy array"):
        npy_view(out.getvalue(), "rows/entry.npy")
    with pytest.raises(ValueError, match="object arrays"):
        npy_bytes(np.array([object()], dtype=object))
    with pytest.raises(BundleError, match=r"not a plain \.npy array"):
        npy_view(b"not numpy at all", "rows/entry.npy")
    assert npy_view(npy_bytes(np.arange(5, dtype=np.int64)), "x").tolist() == [0, 1, 2, 3, 4]


def test_a_row_table_that_disagrees_with_itself_is_refused(columnar: None, tmp_path: Path) -> None:
    index = FaqIndex.build(entries(), encoder=FakeEncoder())
    files = index_files.index_files(index.entries, index.store, index.row_digests, None)
    _, bundle = index.manifest.to_bundle(), files
    short = {**bundle, ROWS_FIELD: npy_bytes(np.zeros(3, dtype=np.uint8))}
    with pytest.raises(BundleError, match="inconsistent"):
        index_files.read_index_files(tmp_path, index.manifest.to_bundle(), short)
    unknown = {**bundle, ROWS_FIELD: npy_bytes(np.full(len(index.store), 7, dtype=np.uint8))}
    with pytest.raises(BundleError, match="unknown field"):
        index_files.read_index_files(tmp_path, index.manifest.to_bundle(), unknown)
