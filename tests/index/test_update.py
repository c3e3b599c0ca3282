"""Index lifecycle: upsert and delete, incremental re-indexing, resuming after a kill, extra files, `check`.

The contract under test: after any update, the index answers exactly as a full
build of its new entry list would (same ids in the same order, scores within
1e-5), while only texts no vector is known for are encoded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from faq_search.bundle import files as bundle
from faq_search.bundle.files import MANIFEST, VECTORS, read_bundle
from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.settings import EncoderSettings, Fields
from faq_search.errors import BundleError, InputError
from faq_search.index.cache import EmbeddingCache
from faq_search.index.confidence import ConfidenceModel
from faq_search.index.faq_index import FaqIndex, Match, compare_entries, text_digest
from faq_search.index.lexical import HybridSettings
from faq_search.index.update import update_bundle
from faq_search.index.verify import check_bundle
from tests.conftest import DATA, FakeEncoder

QUESTIONS = [
    "my parcel never showed up",
    "can I pay with paypal",
    "how do I return a jacket",
    "delete my account",
    "do you ship to switzerland",
    "gift card expired",
    "reset password",
    "warranty on kayaks",
]


def base_entries() -> list[FaqEntry]:
    return read_faq(DATA / "faq.csv")


def edited(entries: list[FaqEntry]) -> list[FaqEntry]:
    """The FAQ a week later: two answers edited, one question reworded, one entry gone, two new ones."""
    out = list(entries)
    out[3] = dataclasses.replace(out[3], answer=out[3].answer + " Updated this week.")
    out[10] = dataclasses.replace(out[10], questions=("Reworded: " + (out[10].question or ""),))
    out[20] = dataclasses.replace(out[20], answer="A completely new answer about gift cards and vouchers.")
    del out[30]
    out.insert(5, FaqEntry("new-1", "We now ship kayaks to Norway.", ("Do you ship kayaks to Norway?",)))
    out.append(FaqEntry("new-2", "Our stores close at eight on Fridays.", ("When do you close on Friday?",)))
    return out


def results(index: FaqIndex, k: int = 10) -> list[list[Match]]:
    return index.ask_batch(QUESTIONS, k=k, min_score=-1e9)


def assert_same_answers(got: FaqIndex, expected: FaqIndex, k: int = 10, tolerance: float = 1e-5) -> None:
    """Same ids, ranks and fields for every question; scores (fused and cosine) within ``tolerance``."""
    for ours, theirs in zip(results(got, k), results(expected, k), strict=True):
        assert [m.entry.id for m in ours] == [m.entry.id for m in theirs]
        assert [m.field for m in ours] == [m.field for m in theirs]
        np.testing.assert_allclose([m.score for m in ours], [m.score for m in theirs], atol=tolerance, rtol=0)
        np.testing.assert_allclose([m.cosine for m in ours], [m.cosine for m in theirs], atol=tolerance, rtol=0)
    assert got.entries == expected.entries
    assert got.store.row_entry.tolist() == expected.store.row_entry.tolist()
    assert got.store.row_field == expected.store.row_field


def encoded(encoder: FakeEncoder) -> list[str]:
    return [text for call in encoder.calls for text in call]


# -- upsert and delete -------------------------------------------------------------------


def test_upsert_replaces_in_place_appends_new_and_encodes_only_new_texts() -> None:
    encoder = FakeEncoder()
    index = FaqIndex.build(base_entries(), encoder=encoder)
    encoder.calls.clear()
    changed = dataclasses.replace(index.entries[2], answer="Returns are now free for 60 days.")
    unchanged = index.entries[7]
    added = FaqEntry("new-1", "We now ship kayaks to Norway.", ("Do you ship kayaks to Norway?",))
    report = index.upsert([changed, unchanged, added])

    assert encoded(encoder) == ["Returns are now free for 60 days.", "Do you ship kayaks to Norway?", added.answer]
    assert report.encoded == 3 and report.resumed == 0
    assert report.changes is not None
    assert report.changes.counts() == {"added": 1, "changed": 1, "removed": 0, "unchanged": 47}
    assert report.changes.added == ("new-1",) and report.changes.changed == (changed.id,)
    assert index.entries[2] == changed and index.entries[-1] == added and len(index) == 49
    assert_same_answers(index, FaqIndex.build(index.entries, encoder=FakeEncoder()))


def test_delete_encodes_nothing_and_equals_a_rebuild() -> None:
    encoder = FakeEncoder()
    index = FaqIndex.build(base_entries(), encoder=encoder)
    encoder.calls.clear()
    gone = [index.entries[0].id, index.entries[17].id, index.entries[-1].id]
    report = index.delete(gone)
    assert encoder.calls == []
    assert report.encoded == 0 and report.changes is not None and report.changes.removed == tuple(gone)
    assert not {m.entry.id for ms in results(index) for m in ms} & set(gone)
    assert_same_answers(index, FaqIndex.build([e for e in base_entries() if e.id not in gone], encoder=FakeEncoder()))


def test_upsert_and_delete_persist_with_save(tmp_path: Path) -> None:
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    index.set_min_score(0.25)
    index.upsert([FaqEntry("new-1", "Kayak paddles are sold separately.", ("Are paddles included?",))])
    index.delete([index.entries[4].id])
    index.save(tmp_path / "bundle")
    loaded = FaqIndex.load(tmp_path / "bundle", encoder=FakeEncoder())
    assert loaded.entries == index.entries
    assert loaded.row_digests == index.row_digests
    assert loaded.manifest.min_score == 0.25 and loaded.manifest.entry_count == 48
    assert_same_answers(loaded, FaqIndex.build(index.entries, encoder=FakeEncoder()))


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_a_sequence_of_updates_equals_a_rebuild_dense_and_hybrid(weight: float) -> None:
    hybrid = HybridSettings(weight=weight)
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder(), hybrid=hybrid)
    final = edited(base_entries())
    index.delete([e.id for e in index.entries if e.id not in {f.id for f in final}])
    index.upsert(final)
    expected = FaqIndex.build(index.entries, encoder=FakeEncoder(), hybrid=hybrid)
    assert_same_answers(index, expected)
    assert (index.manifest.to_dict()["hybrid"] is None) == (weight == 0.0)


def test_an_answer_only_index_stays_answer_only() -> None:
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder(), fields=Fields.ANSWER)
    index.upsert([FaqEntry("new-1", "Kayak paddles are sold separately.", ("Are paddles included?",))])
    assert set(index.store.row_field) == {"answer"} and index.fields_policy is Fields.ANSWER
    assert_same_answers(index, FaqIndex.build(index.entries, encoder=FakeEncoder(), fields=Fields.ANSWER))


def test_an_index_without_questions_embeds_questions_of_new_entries() -> None:
    entries = [FaqEntry("a", "Parcels ship in two days."), FaqEntry("b", "Returns are free.")]
    index = FaqIndex.build(entries, encoder=FakeEncoder())
    index.upsert([FaqEntry("c", "We accept PayPal.", ("Can I pay with PayPal?",))])
    assert index.store.row_field == ["answer", "answer", "question", "answer"]


def test_update_errors_change_nothing() -> None:
    encoder = FakeEncoder()
    index = FaqIndex.build(base_entries(), encoder=encoder)
    before = (list(index.entries), index.store, index.manifest)
    with pytest.raises(InputError, match="no entry with id 'nope' in the index; nothing was deleted"):
        index.delete([index.entries[0].id, "nope"])
    with pytest.raises(InputError, match="delete takes a list of ids"):
        index.delete(index.entries[0].id)
    with pytest.raises(InputError, match="would leave the index empty"):
        index.delete([e.id for e in index.entries])
    with pytest.raises(InputError, match="upsert got id 'x' more than once"):
        index.upsert([FaqEntry("x", "one"), FaqEntry("x", "two")])
    with pytest.raises(InputError, match="upsert takes FaqEntry records"):
        index.upsert([{"id": "x", "answer": "y"}])  # type: ignore[list-item]
    with pytest.raises(InputError, match="not valid text"):
        index.upsert([FaqEntry("x", "broken \ud800 text")])
    assert (index.entries, index.store, index.manifest) == before


def test_upsert_of_a_single_entry_record() -> None:
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    index.upsert(FaqEntry("solo", "A single record works too."))  # type: ignore[arg-type]
    assert index.entries[-1].id == "solo"


def test_reuse_is_refused_for_another_encoder() -> None:
    old = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    other = FakeEncoder(name="other")
    rebuilt = FaqIndex.build(base_entries(), encoder=other, reuse=old)
    assert rebuilt.report is not None
    assert rebuilt.report.reused == 0 and rebuilt.report.encoded == rebuilt.report.unique_texts
    assert rebuilt.report.reuse_note is not None and "encoder settings changed" in rebuilt.report.reuse_note
    assert "'fake'" in rebuilt.report.reuse_note and "'other'" in rebuilt.report.reuse_note


def test_a_bundle_without_text_digests_is_still_reused(tmp_path: Path) -> None:
    """Bundles written before digests existed: rows are recomputed and matched to the stored layout."""
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    index.row_digests = None
    index.save(tmp_path / "bundle")
    assert "text_digest" not in json.loads((tmp_path / "bundle" / "rows.json").read_bytes())
    encoder = FakeEncoder()
    report = update_bundle(tmp_path / "bundle", edited(base_entries()), encoder=encoder).report
    assert report is not None and report.reuse_note is None
    assert report.encoded == 7 and report.reused == report.unique_texts - 7


def test_compare_entries() -> None:
    old = [FaqEntry("a", "1"), FaqEntry("b", "2"), FaqEntry("c", "3", metadata={"k": "v"})]
    new = [FaqEntry("c", "3", metadata={"k": "w"}), FaqEntry("a", "1"), FaqEntry("d", "4")]
    changes = compare_entries(old, new)
    assert (changes.added, changes.changed, changes.removed, changes.unchanged) == (("d",), ("c",), ("b",), 1)


# -- update_bundle: what `faq-search index` does over an existing bundle ------------------------


def test_update_bundle_reindexes_only_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    update_bundle(path, base_entries(), encoder=FakeEncoder())
    encoder = FakeEncoder()
    final = edited(base_entries())
    index = update_bundle(path, final, encoder=encoder, source_name="faq.csv")
    report = index.report
    assert report is not None and report.changes is not None
    assert report.changes.counts() == {"added": 2, "changed": 3, "removed": 1, "unchanged": 44}
    # the three edited texts and the two new entries' question and answer
    assert len(encoded(encoder)) == report.encoded == 7
    assert report.reused == report.unique_texts - 7
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert loaded.manifest.source == "faq.csv"
    assert_same_answers(loaded, FaqIndex.build(final, encoder=FakeEncoder()))
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no cache or temp left behind


def test_update_bundle_refuses_a_directory_that_is_not_a_bundle_before_embedding(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me", encoding="utf-8")
    encoder = FakeEncoder()
    with pytest.raises(InputError, match="exists and is not a faq-search index"):
        update_bundle(tmp_path / "docs", base_entries(), encoder=encoder)
    assert encoder.calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_update_bundle_with_nothing_changed_encodes_nothing(tmp_path: Path) -> None:
    update_bundle(tmp_path / "bundle", base_entries(), encoder=FakeEncoder())
    encoder = FakeEncoder()
    report = update_bundle(tmp_path / "bundle", base_entries(), encoder=encoder).report
    assert encoder.calls == [] and report is not None and report.encoded == 0
    assert report.changes is not None and report.changes.unchanged == 48


def test_update_bundle_full_reembeds_everything(tmp_path: Path) -> None:
    update_bundle(tmp_path / "bundle", base_entries(), encoder=FakeEncoder())
    encoder = FakeEncoder()
    report = update_bundle(tmp_path / "bundle", base_entries(), encoder=encoder, full=True).report
    assert report is not None and report.encoded == report.unique_texts == len(set(encoded(encoder)))
    assert report.reuse_note == "--full: every text was embedded again"


def test_update_bundle_keeps_a_calibrated_threshold_only_for_the_same_encoder(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    index = update_bundle(path, base_entries(), encoder=FakeEncoder())
    model = ConfidenceModel((3.0, 2.0), -2.0, fitted_on="test")
    index.revise(min_score=0.4, confidence=model)
    index.save(path)
    kept = update_bundle(path, edited(base_entries()), encoder=FakeEncoder()).manifest
    assert (kept.min_score, kept.confidence) == (0.4, model)  # the threshold travels with its model
    other = update_bundle(path, base_entries(), encoder=FakeEncoder(name="other")).manifest
    assert (other.min_score, other.confidence) == (None, None)


def test_update_bundle_over_a_damaged_bundle_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    update_bundle(path, base_entries(), encoder=FakeEncoder())
    (path / VECTORS).write_bytes(b"garbage")
    report = update_bundle(path, base_entries(), encoder=FakeEncoder()).report
    assert report is not None and report.reuse_note is not None
    assert "cannot be read" in report.reuse_note and "vectors.faiss is corrupt" in report.reuse_note
    assert report.encoded == report.unique_texts
    FaqIndex.load(path, encoder=FakeEncoder())
    (path / MANIFEST).unlink()  # even a bundle that lost its manifest can be rebuilt in place
    update_bundle(path, base_entries(), encoder=FakeEncoder())
    FaqIndex.load(path, encoder=FakeEncoder())


class KilledError(Exception):
    """Stands in for SIGKILL in-process: raised by the encoder after some calls."""


class DyingEncoder(FakeEncoder):
    def __init__(self, calls_before_death: int) -> None:
        super().__init__()
        self.left = calls_before_death

    def encode(self, texts):  # type: ignore[no-untyped-def]
        if self.left == 0:
            raise KilledError
        self.left -= 1
        return super().encode(texts)


def many_entries(count: int) -> list[FaqEntry]:
    return [
        FaqEntry(f"e{i}", f"answer number {i} about topic {i % 7}", (f"question {i} on {i % 5}",)) for i in range(count)
    ]


def test_a_killed_run_resumes_from_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    update_bundle(path, many_entries(10), encoder=FakeEncoder())
    before = FaqIndex.load(path, encoder=FakeEncoder())
    target = many_entries(400)  # 780 new texts: 7 cache chunks of 128

    with pytest.raises(KilledError):
        update_bundle(path, target, encoder=DyingEncoder(calls_before_death=3))
    cache = tmp_path / ".bundle.cache"
    assert cache.is_dir() and len(list(cache.rglob("chunk-*.npz"))) == 3
    after_kill = FaqIndex.load(path, encoder=FakeEncoder())  # the old bundle, untouched
    assert_same_answers(after_kill, before)

    encoder = FakeEncoder()
    index = update_bundle(path, target, encoder=encoder)
    report = index.report
    assert report is not None
    assert report.resumed == 3 * 128 and report.reused == 20
    assert report.encoded == report.unique_texts - 20 - 3 * 128 == len(encoded(encoder))
    assert_same_answers(FaqIndex.load(path, encoder=FakeEncoder()), FaqIndex.build(target, encoder=FakeEncoder()))
    assert not cache.exists()


def test_the_cache_is_per_encoder_and_ignores_damaged_chunks(tmp_path: Path) -> None:
    identity = FakeEncoder().identity.to_dict()
    cache = EmbeddingCache.beside(tmp_path / "bundle", identity, "n/a", 64)
    other = EmbeddingCache.beside(tmp_path / "bundle", {**identity, "layer": "-1"}, "n/a", 64)
    assert cache.directory != other.directory and cache.root == other.root == tmp_path / ".bundle.cache"
    vectors = FakeEncoder().encode(["a", "b"])
    cache.put([text_digest("a"), text_digest("b")], vectors)
    assert set(cache.load()) == {text_digest("a"), text_digest("b")}
    assert other.load() == {}

    good = cache.chunk_files()[0]
    (cache.directory / "chunk-1-000001.npz").write_bytes(good.read_bytes()[:100])  # truncated
    np.savez(cache.directory / "chunk-2-000001.npz", digests=np.array([b"x" * 32]), vectors=np.zeros((1, 3)))
    np.savez(  # an object array would need pickle to load: refused, never unpickled
        cache.directory / "chunk-3-000001.npz",
        digests=np.array([text_digest("c")], dtype=object),
        vectors=np.zeros((1, 64), dtype=np.float32),
    )
    loaded = cache.load()
    assert set(loaded) == {text_digest("a"), text_digest("b")}
    np.testing.assert_array_equal(loaded[text_digest("a")], vectors[0])
    assert cache.chunk_files() == [good]  # the damaged ones were removed
    cache.clear()
    assert not (tmp_path / ".bundle.cache").exists()


def test_an_unwritable_cache_does_not_stop_indexing(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "file-not-dir" / "x", 64)
    (tmp_path / "file-not-dir").write_text("x")
    cache.put([text_digest("a")], FakeEncoder().encode(["a"]))
    assert cache.disabled and cache.load() == {}


# -- extra files (e.g. adapted encoder weights) ------------------------------------------------


def test_extra_files_in_subdirectories_are_verified_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    index.extra_files = {"adapter/weights.bin": b"\x00\x01weights", "adapter/config.json": b"{}"}
    index.save(path)
    manifest, files = read_bundle(path)
    assert files["adapter/weights.bin"] == b"\x00\x01weights" and "adapter/config.json" in manifest.files
    loaded = FaqIndex.load(path, encoder=FakeEncoder())
    assert loaded.extra_files == index.extra_files
    loaded.upsert([FaqEntry("new", "New answer.")])
    loaded.save(path)  # kept through an update and a save
    assert FaqIndex.load(path, encoder=FakeEncoder()).extra_files == index.extra_files
    (path / "adapter" / "weights.bin").write_bytes(b"\x00\x01weightz")
    with pytest.raises(BundleError, match=r"adapter/weights\.bin is corrupt"):
        FaqIndex.load(path, encoder=FakeEncoder())
    (path / "adapter" / "weights.bin").unlink()
    with pytest.raises(BundleError, match=r"adapter/weights\.bin is missing"):
        FaqIndex.load(path, encoder=FakeEncoder())


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../b", "manifest.json", "a//b", ""])
def test_a_manifest_listing_a_file_outside_the_bundle_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "bundle"
    FaqIndex.build(base_entries(), encoder=FakeEncoder()).save(path)
    data = json.loads((path / MANIFEST).read_bytes())
    data["files"][name] = {"sha256": "0" * 64, "bytes": 0}
    (path / MANIFEST).write_bytes(bundle.seal_manifest(data))
    with pytest.raises(BundleError, match="which a bundle cannot hold"):
        read_bundle(path)


# -- check ----------------------------------------------------------------------------------


def test_check_passes_a_good_bundle(tmp_path: Path) -> None:
    FaqIndex.build(base_entries(), encoder=FakeEncoder()).save(tmp_path / "bundle")
    report = check_bundle(tmp_path / "bundle", encoder=FakeEncoder(), sample=16)
    assert report.ok, report.findings
    names = [f.name for f in report.findings]
    assert names[:2] == ["manifest", "file entries.jsonl"] and "re-embedded sample" in names
    assert "its own SHA-256 matches" in report.findings[0].detail
    sample = next(f for f in report.findings if f.name == "re-embedded sample")
    assert "16 rows re-embedded" in sample.detail


def test_check_finds_a_vector_that_does_not_match_its_text(tmp_path: Path) -> None:
    """Checksums all valid (the bundle was rewritten consistently), yet one row holds another text's vector."""
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    vectors = index.stored_vectors()
    assert vectors is not None
    vectors[5] = FakeEncoder().encode(["something else entirely"])[0]
    from faq_search.index.store import VectorStore

    index.store = VectorStore.build(vectors, index.store.row_entry.tolist(), index.store.row_field)
    index.save(tmp_path / "bundle")
    FaqIndex.load(tmp_path / "bundle", encoder=FakeEncoder())  # loads: only re-embedding can tell
    report = check_bundle(tmp_path / "bundle", encoder=FakeEncoder(), sample=1000)
    assert not report.ok
    failed = [f for f in report.findings if not f.ok]
    assert [f.name for f in failed] == ["re-embedded sample"]


def test_check_reports_a_corrupt_file_and_wrong_digests(tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    index = FaqIndex.build(base_entries(), encoder=FakeEncoder())
    index.save(path)
    data = bytearray((path / "entries.jsonl").read_bytes())
    data[10] ^= 0x20
    (path / "entries.jsonl").write_bytes(bytes(data))
    report = check_bundle(path, encoder=FakeEncoder())
    assert not report.ok and report.findings[0].name == "files"
    assert "entries.jsonl is corrupt" in report.findings[0].detail

    assert index.row_digests is not None
    index.row_digests[0] = text_digest("not this text")
    index.save(path)
    report = check_bundle(path, encoder=FakeEncoder())
    assert [f.name for f in report.findings if not f.ok] == ["rows"]


# -- the real model ------------------------------------------------------------------------


@pytest.mark.model
def test_real_model_incremental_equals_a_full_rebuild(tmp_path: Path) -> None:
    """With BERT at default precision (bf16 where the CPU has it, the noisier case): texts are encoded
    unpadded, in groups of equal length, so a vector does not depend on its batch and reuse is exact."""
    from faq_search.encoding.encoder import BertEncoder

    encoder = BertEncoder(EncoderSettings())
    long_answer = " ".join(e.answer for e in base_entries()[:6])  # several windows
    start = base_entries()[:14]
    start[0] = dataclasses.replace(start[0], answer=long_answer)
    path = tmp_path / "bundle"
    update_bundle(path, start, encoder=encoder)
    final = list(start)
    final[0] = dataclasses.replace(final[0], answer=long_answer + " Edited at the end.")
    final[5] = dataclasses.replace(final[5], questions=("Reworded: " + (final[5].question or ""),))
    del final[9]
    final.insert(2, FaqEntry("new-1", "We now ship kayaks to Norway.", ("Do you ship kayaks to Norway?",)))
    updated = update_bundle(path, final, encoder=encoder)
    assert updated.report is not None and 0 < updated.report.encoded < updated.report.unique_texts // 3
    full = FaqIndex.build(final, encoder=encoder)
    assert_same_answers(FaqIndex.load(path, encoder=encoder), full, k=14)
    reused = updated.stored_vectors()
    assert reused is not None
    rebuilt = full.stored_vectors()
    assert rebuilt is not None
    np.testing.assert_allclose(reused, rebuilt, atol=1e-6)  # not just close: the same vectors


# -- the command line ----------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    from tests.cli.test_cli import CLI

    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_check_command_has_help() -> None:
    from typer.testing import CliRunner

    from faq_search.cli import app

    result = CliRunner().invoke(app, ["check", "--help"])
    assert result.exit_code == 0 and "--index" in result.output and "--sample" in result.output


@pytest.mark.model
def test_cli_index_is_incremental_and_check_verifies(tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    lines = (DATA / "faq.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    faq.write_text("".join(lines[:21]), encoding="utf-8")  # header + 20 entries
    first = run_cli("index", str(faq), "--out", "idx", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["update"] == {"encoded": 40, "reused": 0, "resumed": 0, "note": None}

    faq.write_text("".join(lines[:24]), encoding="utf-8")  # three entries more
    second = run_cli("index", str(faq), "--out", "idx", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Changes: 3 added, 0 changed, 0 removed, 20 unchanged; encoded 6 texts, reused 40 embeddings." in (
        second.stdout
    )

    checked = run_cli("check", "--index", "idx", "--sample", "8", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "idx: OK" in checked.stdout and "8 rows re-embedded" in checked.stdout

    vectors = tmp_path / "idx" / VECTORS
    data = bytearray(vectors.read_bytes())
    data[len(data) // 2] ^= 0x01
    vectors.write_bytes(bytes(data))
    broken = run_cli("check", "--index", "idx", cwd=tmp_path)
    assert broken.returncode == 1 and "FAIL" in broken.stdout and "vectors.faiss is corrupt" in broken.stdout
    assert "Traceback" not in broken.stderr


def test_build_options_are_one_record_for_every_way_in(tmp_path: Path) -> None:
    from faq_search.index.build import BuildOptions
    from faq_search.index.store import IndexType

    options = BuildOptions(index_type="hnsw", fields=Fields.ANSWER, hybrid=HybridSettings(weight=0.0))
    updated = update_bundle(tmp_path / "b", base_entries(), options, encoder=FakeEncoder())
    built = FaqIndex.build(base_entries(), options, encoder=FakeEncoder())
    keywords = FaqIndex.build(
        base_entries(), encoder=FakeEncoder(), index_type="hnsw", fields="answer", hybrid=HybridSettings(weight=0.0)
    )
    for index in (updated, built, keywords, FaqIndex.load(tmp_path / "b")):
        assert index.manifest.index_type is IndexType.HNSW
        assert index.manifest.fields == ("answer",)
        assert not index.hybrid.enabled
    assert options.revised(index_type="ivf").index_type == "ivf" and options.index_type == "hnsw"
    with pytest.raises(TypeError, match="colour"):
        FaqIndex.build(base_entries(), encoder=FakeEncoder(), colour="red")
