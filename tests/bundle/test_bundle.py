"""Index bundles on disk: round trip, manifest, atomic replacement, corruption, encoder mismatch, no pickle."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import faq_search
from faq_search.bundle import files as bundle
from faq_search.bundle.files import ENTRIES, FORMAT_VERSION, MANIFEST, ROWS, VECTORS, read_bundle, write_bundle
from faq_search.corpus import FaqEntry
from faq_search.encoding.settings import Fields
from faq_search.errors import BundleError, InputError, SettingsMismatchError
from faq_search.index import faq_index as engine
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings, LexicalIndex
from tests.conftest import FakeEncoder, tree

DATA_FILES = (VECTORS, ROWS, ENTRIES)

ENTRIES_A = [
    FaqEntry(
        "ship-1",
        "Parcels ship within two working days.",
        ("How long does shipping take?", "When will my parcel arrive?"),
        {"category": "shipping", "url": "https://shop.test/shipping"},
    ),
    FaqEntry("ret-1", "Returns are free within 30 days.", ("Can I return an item?",), {"category": "returns"}),
    FaqEntry("pay-1", "We accept cards, PayPal and invoices.", ("Which payment methods do you accept?",)),
    FaqEntry("gift-1", "Gift cards never expire — Grüße aus Köln.", ()),
    FaqEntry("acct-1", "Reset your password from the login page.", ("I forgot my password",), {"note": "ünïcode"}),
]
ENTRIES_B = [
    FaqEntry("b-1", "Our stores open at nine.", ("When do you open?",)),
    FaqEntry("b-2", "Call us on weekdays.", ("How can I call you?",)),
]
QUESTIONS = [
    "how long does shipping take",
    "return an item",
    "payment methods paypal",
    "forgot password",
    "gift cards expire",
    "when do you open",
]


def answers(index: FaqIndex) -> list[list[tuple[str, float, int, str]]]:
    return [[(m.entry.id, round(m.score, 6), m.rank, m.field) for m in index.ask(q, k=5)] for q in QUESTIONS]


@pytest.fixture
def saved(tmp_path: Path, fake_encoder: FakeEncoder) -> tuple[FaqIndex, Path]:
    index = FaqIndex.build(ENTRIES_A, encoder=fake_encoder)
    path = index.save(tmp_path / "bundle")
    return index, path


# -- round trip -------------------------------------------------------------------


def test_save_then_load_round_trip(saved: tuple[FaqIndex, Path]) -> None:
    index, path = saved
    assert path.is_dir()
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert loaded.entries == ENTRIES_A
    assert len(loaded) == len(ENTRIES_A)
    assert answers(loaded) == answers(index)
    assert any(matches for matches in answers(loaded))
    assert loaded.store.row_entry.tolist() == index.store.row_entry.tolist()
    assert loaded.store.row_field == index.store.row_field
    assert loaded.identity == FakeEncoder().identity
    assert loaded.settings == FakeEncoder().settings


def test_save_accepts_a_string_path_and_creates_parents(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    target = tmp_path / "deep" / "er" / "bundle"
    FaqIndex.build(ENTRIES_B, encoder=fake_encoder).save(str(target))
    assert FaqIndex.load(str(target), encoder=FakeEncoder()).entries == ENTRIES_B


def test_bundle_files_and_manifest(saved: tuple[FaqIndex, Path]) -> None:
    index, path = saved
    lexical = sorted(name for name in tree(path) if name.startswith("lexical/"))
    assert "lexical/vocab.index.json" in lexical and "lexical/data.csc.index.npy" in lexical  # BM25, fusion is on
    assert sorted(tree(path)) == sorted([MANIFEST, *DATA_FILES, *lexical])
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == "faq-search bundle"
    assert manifest["format_version"] == FORMAT_VERSION == 3
    assert manifest["build"]["faq-search"] == faq_search.__version__ and "numpy" in manifest["build"]
    assert manifest["encoder"] == FakeEncoder().identity.to_dict()
    assert manifest["encoder"]["weights_sha256"] == hashlib.sha256(b"fake").hexdigest()
    assert manifest["encoder"]["dimension"] == 64
    settings = manifest["settings"]
    assert settings["layer"] == "-2"
    assert settings["pooling"] == "mean"
    assert settings["max_seq_len"] == 256
    assert settings["precision"] == "auto"
    assert settings["model"] == "fake"
    assert "precision" in manifest
    assert manifest["entry_count"] == 5
    assert manifest["vector_count"] == 5 + 5 == len(index.store)  # 5 questions + 5 answers
    assert manifest["fields"] == ["question", "answer"]
    assert manifest["index_type"] == "flat"
    assert manifest["min_score"] is None
    assert manifest["created"]
    assert set(manifest["files"]) == {*DATA_FILES, *lexical}
    for name in manifest["files"]:
        data = (path / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert index.manifest.files == manifest["files"]  # save() keeps the manifest as written


def test_bundle_files_are_json_and_faiss_not_pickle(saved: tuple[FaqIndex, Path]) -> None:
    _, path = saved
    for name in (MANIFEST, ROWS, ENTRIES, VECTORS):
        assert not (path / name).read_bytes().startswith(b"\x80")  # every pickle protocol >= 2 starts so
    json.loads((path / MANIFEST).read_bytes())
    rows = json.loads((path / ROWS).read_bytes())
    assert set(rows) == {"entry", "field", "text_digest"}
    assert rows["text_digest"] == [
        engine.text_digest(t) for t in engine.embedding_rows(ENTRIES_A, Fields.QUESTION_ANSWER)[0]
    ]
    assert rows["entry"] == [0, 0, 0, 1, 1, 2, 2, 3, 4, 4]
    q, a = "question", "answer"
    assert rows["field"] == [q, q, a, q, a, q, a, a, q, a]
    lines = (path / ENTRIES).read_text(encoding="utf-8").splitlines()
    assert [FaqEntry.from_dict(json.loads(line)) for line in lines] == ENTRIES_A
    assert "Grüße" in (path / ENTRIES).read_text(encoding="utf-8")  # readable UTF-8, not escaped
    assert (path / VECTORS).read_bytes()[:4] == b"IxFI"


def test_loading_never_unpickles(saved: tuple[FaqIndex, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = saved

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used while loading a bundle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert loaded.ask("forgot password", k=1)[0].entry.id == "acct-1"


def test_read_bundle_returns_verified_contents(saved: tuple[FaqIndex, Path]) -> None:
    _, path = saved
    manifest, files = read_bundle(path)
    assert {name: bytes(data) for name, data in files.items()} == {n: d for n, d in tree(path).items() if n != MANIFEST}
    assert set(DATA_FILES) < set(files)
    assert manifest.entry_count == 5 and manifest.fields == ("question", "answer")


def test_min_score_and_source_survive_the_round_trip(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    csv = tmp_path / "shop.csv"
    csv.write_text("id,question,answer\na,Where is it?,Tracking link.\nb,Pay how?,By card.\n", encoding="utf-8")
    index = FaqIndex.build(csv, encoder=fake_encoder)
    index.manifest = dataclasses.replace(index.manifest, min_score=0.25)
    index.save(tmp_path / "bundle")
    loaded = FaqIndex.load(tmp_path / "bundle", encoder=FakeEncoder())
    assert loaded.manifest.min_score == 0.25
    assert loaded.manifest.source == "shop.csv"


# -- atomic writes -----------------------------------------------------------------


def temp_dirs(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_crash_before_swap_keeps_the_previous_bundle(
    saved: tuple[FaqIndex, Path], fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_index, path = saved
    before = answers(FaqIndex.load(path, encoder=FakeEncoder()))
    old_bytes = tree(path)
    seen: list[Path] = []

    def crash(temp: Path) -> None:
        seen.append(temp)
        # the new bundle is complete in the temporary sibling when the crash happens
        assert temp.parent == path.parent and temp.name.startswith(".bundle.tmp-")
        assert set(tree(temp)) > {MANIFEST, *DATA_FILES}
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(engine, "write_bundle", functools.partial(write_bundle, before_swap=crash))
    new_index = FaqIndex.build(ENTRIES_B, encoder=fake_encoder)
    with pytest.raises(RuntimeError, match="simulated crash"):
        new_index.save(path)

    assert len(seen) == 1
    assert not seen[0].exists()
    assert temp_dirs(path.parent) == []  # no temporary directory left behind
    assert tree(path) == old_bytes
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert loaded.entries == ENTRIES_A
    assert answers(loaded) == before == answers(old_index)


def test_crash_on_a_first_write_leaves_nothing(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES_B, encoder=fake_encoder)

    def crash(temp: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bundle(
            tmp_path / "bundle", index.manifest.to_bundle(), {name: b"x" for name in DATA_FILES}, before_swap=crash
        )
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_bundle(saved: tuple[FaqIndex, Path], fake_encoder: FakeEncoder) -> None:
    _, path = saved
    new_index = FaqIndex.build(ENTRIES_B, encoder=fake_encoder)
    new_index.save(path)
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert loaded.entries == ENTRIES_B
    assert answers(loaded) == answers(new_index)
    assert json.loads((path / MANIFEST).read_text())["entry_count"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["bundle"]  # neither the old bundle nor a temp remains
    new_index.save(path)  # and again, over a bundle of the same content
    assert FaqIndex.load(path, encoder=FakeEncoder()).entries == ENTRIES_B


def test_overwrite_without_atomic_exchange(
    saved: tuple[FaqIndex, Path], fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = saved
    monkeypatch.setattr(bundle, "_exchange", lambda a, b: False)  # a platform without renameat2
    FaqIndex.build(ENTRIES_B, encoder=fake_encoder).save(path)
    assert FaqIndex.load(path, encoder=FakeEncoder()).entries == ENTRIES_B
    assert [p.name for p in path.parent.iterdir()] == ["bundle"]


def test_stale_temp_dirs_of_dead_writers_are_removed(saved: tuple[FaqIndex, Path], fake_encoder: FakeEncoder) -> None:
    _, path = saved
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    stale = path.parent / f".bundle.tmp-{dead_pid}-abc"
    stale.mkdir()
    (stale / "vectors.faiss").write_bytes(b"half written")
    live = path.parent / f".bundle.tmp-{os.getppid()}-def"  # a writer that is still running
    live.mkdir()
    FaqIndex.build(ENTRIES_B, encoder=fake_encoder).save(path)
    assert not stale.exists()
    assert live.exists()


def test_writing_into_an_empty_directory(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    FaqIndex.build(ENTRIES_B, encoder=fake_encoder).save(target)
    assert FaqIndex.load(target, encoder=FakeEncoder()).entries == ENTRIES_B


def test_refuses_to_overwrite_a_directory_that_is_not_a_bundle(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    target = tmp_path / "docs"
    target.mkdir()
    (target / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(InputError) as info:
        FaqIndex.build(ENTRIES_B, encoder=fake_encoder).save(target)
    assert f"{target} exists and is not a faq-search index" in str(info.value)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["docs"]


def test_refuses_to_overwrite_a_file(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    target = tmp_path / "faq.csv"
    target.write_text("id,answer\n", encoding="utf-8")
    with pytest.raises(InputError, match="is not a faq-search index"):
        FaqIndex.build(ENTRIES_B, encoder=fake_encoder).save(target)
    assert target.read_text(encoding="utf-8") == "id,answer\n"


# -- corruption -----------------------------------------------------------------------


def load_error(path: Path) -> str:
    """The BundleError's message, with the bundle's path spelled <bundle> (tmp_path holds the test's name)."""
    with pytest.raises(BundleError) as info:
        FaqIndex.load(path, encoder=FakeEncoder())
    assert not isinstance(info.value, SettingsMismatchError)
    return str(info.value).replace(str(path), "<bundle>")


@pytest.mark.parametrize("name", DATA_FILES)
@pytest.mark.parametrize("where", [0, 0.5, -1])
def test_a_flipped_byte_in_a_data_file(saved: tuple[FaqIndex, Path], name: str, where: float) -> None:
    _, path = saved
    data = bytearray((path / name).read_bytes())
    position = int(len(data) * where) if where >= 0 else len(data) - 1
    data[position] ^= 0x01
    (path / name).write_bytes(bytes(data))
    message = load_error(path)
    assert f"<bundle>/{name} is corrupt (its size or checksum differs from the manifest)" in message


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_truncated_data_file(saved: tuple[FaqIndex, Path], name: str) -> None:
    _, path = saved
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])
    assert f"<bundle>/{name} is corrupt" in load_error(path)


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_data_file_with_extra_bytes(saved: tuple[FaqIndex, Path], name: str) -> None:
    _, path = saved
    with open(path / name, "ab") as handle:
        handle.write(b"\n")
    assert f"<bundle>/{name} is corrupt" in load_error(path)


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_missing_data_file(saved: tuple[FaqIndex, Path], name: str) -> None:
    _, path = saved
    (path / name).unlink()
    assert f"<bundle>/{name} is missing" in load_error(path)


@pytest.mark.parametrize("text", ["{not json", "", '{"format": "faq-search bundle", ', "\udcff"])
def test_invalid_manifest_json(saved: tuple[FaqIndex, Path], text: str) -> None:
    _, path = saved
    (path / MANIFEST).write_bytes(text.encode("utf-8", "surrogateescape"))
    assert "<bundle>/manifest.json is not valid JSON" in load_error(path)


def write_manifest(path: Path, data: dict[str, object]) -> None:
    """Write an edited manifest with a matching checksum, so the check under test is the one that fires."""
    (path / MANIFEST).write_bytes(bundle.seal_manifest(data))


def edit_manifest(path: Path, **changes: object) -> None:
    data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    data.update(changes)
    write_manifest(path, data)


def test_a_version_1_manifest_is_upgraded_on_load(saved: tuple[FaqIndex, Path], fake_encoder: FakeEncoder) -> None:
    index, path = saved
    data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    for key in ("build", "index_type", "min_score", "adaptation", "source", "created"):
        del data[key]  # keys a version-1 manifest could lack
    write_manifest(path, {**data, "format_version": 1})
    old = FaqIndex.load(path, encoder=fake_encoder)
    assert old.manifest.format_version == 3 and old.manifest.build == {}
    assert old.manifest.index_type == "flat" and old.manifest.min_score is None and old.manifest.source is None
    question = index.entries[0].questions[0]
    assert [m.entry.id for m in old.ask(question)] == [m.entry.id for m in index.ask(question)]


def test_a_newer_format_version(saved: tuple[FaqIndex, Path]) -> None:
    _, path = saved
    edit_manifest(path, format_version=99)
    message = load_error(path)
    assert "<bundle> has bundle format 99, newer than this faq-search reads (3)" in message
    assert "upgrade faq-search" in message


@pytest.mark.parametrize("version", ["1", None, 1.5])
def test_a_format_version_that_is_not_an_integer(saved: tuple[FaqIndex, Path], version: object) -> None:
    _, path = saved
    edit_manifest(path, format_version=version)
    assert f"format {version!r}" in load_error(path)


def test_a_manifest_of_something_else(saved: tuple[FaqIndex, Path]) -> None:
    _, path = saved
    (path / MANIFEST).write_text(json.dumps({"name": "my-package", "version": "1.0"}), encoding="utf-8")
    assert "<bundle>/manifest.json is not a faq-search manifest" in load_error(path)


@pytest.mark.parametrize("field", ["encoder", "settings", "entry_count", "files", "fields", "precision"])
def test_a_manifest_missing_a_field(saved: tuple[FaqIndex, Path], field: str) -> None:
    _, path = saved
    data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    del data[field]
    write_manifest(path, data)
    message = load_error(path)
    assert "<bundle>/manifest.json is missing or has a bad field" in message
    assert repr(field) in message


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_manifest_that_does_not_list_a_file(saved: tuple[FaqIndex, Path], name: str) -> None:
    _, path = saved
    data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    del data["files"][name]
    write_manifest(path, data)
    assert f"<bundle>/manifest.json lists no {name}" in load_error(path)


@pytest.mark.parametrize(("field", "value"), [("entry_count", 4), ("vector_count", 11)])
def test_manifest_counts_must_match_the_files(saved: tuple[FaqIndex, Path], field: str, value: int) -> None:
    _, path = saved
    edit_manifest(path, **{field: value})
    assert "counts differ from the manifest" in load_error(path)


def test_loading_where_there_is_no_bundle(tmp_path: Path) -> None:
    assert "no index at <bundle>; build one" in load_error(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "<bundle> is empty; build an index there" in load_error(empty)
    other = tmp_path / "other"
    other.mkdir()
    (other / "faq.csv").write_text("x", encoding="utf-8")
    assert "<bundle> is not a faq-search index (no manifest.json)" in load_error(other)


# -- encoder identity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "words"),
    [
        (FakeEncoder(dimension=32), ["dimension 64 != 32"]),
        (FakeEncoder(name="other"), ["model 'fake' (weights", "!= 'other' (weights"]),
    ],
    ids=["dimension", "name"],
)
def test_loading_with_another_encoder(saved: tuple[FaqIndex, Path], encoder: FakeEncoder, words: list[str]) -> None:
    _, path = saved
    with pytest.raises(SettingsMismatchError) as info:
        FaqIndex.load(path, encoder=encoder)
    message = str(info.value)
    for word in words:
        assert word in message
    assert "rebuild the index" in message
    assert encoder.calls == []  # refused before any text was encoded


def test_loading_with_an_encoder_of_other_settings(saved: tuple[FaqIndex, Path]) -> None:
    _, path = saved
    encoder = FakeEncoder()
    encoder.settings = dataclasses.replace(encoder.settings, layer="-1", max_seq_len=128)
    with pytest.raises(SettingsMismatchError) as info:
        FaqIndex.load(path, encoder=encoder)
    assert "layer '-2' != '-1'" in str(info.value)
    assert "max_seq_len 256 != 128" in str(info.value)
    assert "pooling" not in str(info.value)


# -- the stored BM25 index -----------------------------------------------------------


def test_a_loaded_bundle_uses_its_stored_bm25_index(
    saved: tuple[FaqIndex, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, path = saved
    expected = answers(index)

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the BM25 index was rebuilt from the entries")

    monkeypatch.setattr(LexicalIndex, "__init__", no_rebuild)
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert answers(loaded) == expected
    assert all(m.lexical is not None for m in loaded.ask("return an item", k=3))


def test_stored_bm25_files_that_do_not_fit_are_rebuilt(saved: tuple[FaqIndex, Path]) -> None:
    index, path = saved
    files = {n[len("lexical/") :]: d for n, d in tree(path).items() if n.startswith("lexical/")}
    assert LexicalIndex.from_files(files, len(ENTRIES_A), index.hybrid) is not None
    assert LexicalIndex.from_files(files, len(ENTRIES_A) + 1, index.hybrid) is None  # other documents
    assert LexicalIndex.from_files(files, len(ENTRIES_A), HybridSettings(k1=0.9)) is None  # other parameters
    broken = {**files, "vocab.index.json": b"{not json"}
    assert LexicalIndex.from_files(broken, len(ENTRIES_A), index.hybrid) is None


def test_an_upsert_saves_a_fresh_bm25_index(saved: tuple[FaqIndex, Path]) -> None:
    _, path = saved
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    loaded.upsert([FaqEntry("new-1", "Zebra stripes are unique.", ("zebra stripes",))])
    loaded.save(path)
    again = FaqIndex.load(path, encoder=FakeEncoder())
    top = again.ask("zebra stripes", k=1)[0]
    assert top.entry.id == "new-1" and top.lexical is not None and top.lexical > 0
    assert answers(again) == answers(FaqIndex.build([*ENTRIES_A, *again.entries[5:]], encoder=FakeEncoder()))


def test_a_dense_only_bundle_stores_no_bm25_index(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    path = FaqIndex.build(ENTRIES_A, encoder=fake_encoder, hybrid=HybridSettings(weight=0)).save(tmp_path / "b")
    assert sorted(tree(path)) == sorted([MANIFEST, *DATA_FILES])
