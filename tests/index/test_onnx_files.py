"""A bundle with its ONNX query encoder: added, checksummed, picked by --runtime, kept by upserts, refused if stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from faq_search.corpus import FaqEntry
from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.onnx_export import GRAPH_FILE, ONNX_FILES, onnx_files
from faq_search.encoding.runtime import RUNTIME_ENV, Runtime, batch_runtime
from faq_search.encoding.settings import EncoderSettings
from faq_search.errors import BundleError, InputError, ModelError, SettingsMismatchError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.onnx_files import add_onnx
from faq_search.quality.queries import read_queries
from tests.conftest import DATA

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, real_encoder: BertEncoder) -> Path:
    """The sample FAQ indexed with the fp32 model, then given its graph by ``add_onnx``."""
    path = tmp_path_factory.mktemp("onnx") / "sample"
    FaqIndex.build(DATA / "faq.csv", encoder=real_encoder).save(path)
    report = add_onnx(path)
    assert report.added and report.checked_texts == 32
    assert report.min_cosine is not None and report.min_cosine >= 0.9999
    assert report.graph_bytes == (path / GRAPH_FILE).stat().st_size > 50_000_000
    return path


def test_the_graph_files_are_checksummed_like_every_file(bundle: Path, tmp_path: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(ONNX_FILES) <= set(manifest["files"])
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / GRAPH_FILE).read_bytes())
    data[len(data) // 2] ^= 1
    (copy / GRAPH_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError):
        FaqIndex.load(copy)


def test_onnx_and_torch_give_the_same_answers(bundle: Path) -> None:
    on_onnx = FaqIndex.load(bundle, runtime="onnx")
    on_torch = FaqIndex.load(bundle, runtime="torch")
    assert on_onnx.resolved_runtime() is Runtime.ONNX and on_torch.resolved_runtime() is Runtime.TORCH
    assert type(on_onnx.encoder).__name__ == "OnnxEncoder" and isinstance(on_torch.encoder, BertEncoder)
    questions = [q.query for q in read_queries(DATA / "queries.csv")]
    got, want = on_onnx.ask_batch(questions, k=3), on_torch.ask_batch(questions, k=3)
    assert [[m.entry.id for m in row] for row in got] == [[m.entry.id for m in row] for row in want]
    gaps = [abs(a.score - b.score) for x, y in zip(got, want, strict=True) for a, b in zip(x, y, strict=True)]
    assert max(gaps) < 0.01  # torch here may run in bf16: the scores agree to its noise
    assert on_onnx.ask(questions[0], k=1)[0].entry.id == got[0][0].entry.id


def test_auto_takes_the_graph_where_there_is_one(
    bundle: Path, tmp_path: Path, real_encoder: BertEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    assert FaqIndex.load(bundle).resolved_runtime() is Runtime.ONNX
    assert FaqIndex.load(bundle, model_path=str(DATA)).resolved_runtime() is Runtime.TORCH  # a moved torch model
    assert batch_runtime(None) is Runtime.TORCH  # batches: torch where installed (as here)
    assert batch_runtime("onnx") is Runtime.ONNX
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    assert FaqIndex.load(bundle).resolved_runtime() is Runtime.TORCH
    plain = tmp_path / "plain"
    FaqIndex.build([FaqEntry("a", "Returns are free.", ("Can I return?",))], encoder=real_encoder).save(plain)
    assert FaqIndex.load(plain).resolved_runtime() is Runtime.TORCH
    with pytest.raises(ModelError, match="faq-search onnx"):
        FaqIndex.load(plain, runtime="onnx").ask("return")
    with pytest.raises(InputError, match="unknown runtime 'tensorflow'; use one of auto, torch, onnx"):
        FaqIndex.load(plain, runtime="tensorflow")


def test_upserts_keep_the_graph_and_remove_takes_it_out(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    index = FaqIndex.load(copy, runtime="onnx")
    index.upsert([FaqEntry("new", "Gift wrapping costs two euros.", ("Do you gift wrap?",))])
    index.save(copy)
    again = FaqIndex.load(copy, runtime="onnx")
    assert again.has_onnx and again.ask("can you wrap it as a present", k=1)[0].entry.id == "new"
    report = add_onnx(copy, remove=True)
    assert not report.added and not (copy / GRAPH_FILE).exists()
    assert not FaqIndex.load(copy).has_onnx


def test_a_graph_of_another_encoder_is_refused(bundle: Path, tmp_path: Path) -> None:
    other = onnx_files(BertEncoder(EncoderSettings(precision="fp32", layer="-1")))
    index = FaqIndex.load(bundle, runtime="onnx")
    index.extra_files = {**index.extra_files, **other}
    with pytest.raises(SettingsMismatchError, match="layer '-2' != '-1'"):
        index.ask("hello")


def test_cli_adds_the_graph_and_asks_with_it(bundle: Path, tmp_path: Path) -> None:
    from tests.cli.test_cli import one_line_error, run

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    removed = run("onnx", "--index", str(copy), "--remove", "--json")
    assert removed.returncode == 0, removed.stderr
    one_line_error(run("ask", "refund", "--index", str(copy), "--runtime", "onnx"), "faq-search onnx")
    added = run("onnx", "--index", str(copy), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["min_cosine"] >= 0.9999
    result = run("ask", "i want my money back for the boots", "--index", str(copy), "--runtime", "onnx", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["matches"][0]["id"] == "returns-03"


def test_reindexing_with_the_same_encoder_keeps_the_graph(
    bundle: Path, tmp_path: Path, real_encoder: BertEncoder
) -> None:
    from faq_search.index.update import update_bundle

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    entries = [*FaqIndex.load(copy).entries, FaqEntry("new", "Gift wrapping costs two euros.", ("Gift wrap?",))]
    update_bundle(copy, entries, encoder=real_encoder)
    kept = FaqIndex.load(copy, runtime="onnx")
    assert kept.has_onnx and kept.ask("do you wrap presents", k=1)[0].entry.id == "new"
    other = BertEncoder(EncoderSettings(precision="fp32", layer="-1"))
    update_bundle(copy, entries, encoder=other)
    assert not FaqIndex.load(copy).has_onnx  # a graph of the old encoder would not match the new vectors


def test_index_onnx_builds_the_bundle_with_its_graph(sample_faq: Path, tmp_path: Path) -> None:
    from tests.cli.test_cli import run

    out = tmp_path / "with-graph"
    built = run("index", str(sample_faq), "--out", str(out), "--onnx", "--json")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["onnx"]["min_cosine"] >= 0.9999
    assert FaqIndex.load(out).has_onnx
    asked = run("ask", "i want my money back for the boots", "--index", str(out), "--runtime", "onnx", "--json")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["matches"][0]["id"] == "returns-03"
