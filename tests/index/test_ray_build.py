"""Indexing on Ray: the bundle equals a local run's, whatever the block order, node count or a worker's death.

One Ray cluster serves the whole module: two nodes of one CPU each
(``ray.cluster_utils.Cluster``), so every Ray build here runs its two encoder
actors on two nodes. Builds use the real bundled model at its default
precision (bf16 where the CPU has it, where a vector depends on its batch:
the hardest case for equality) on a few hundred synthetic entries, so the
last encoder call of most length groups is a partial one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from faq_search.bundle.files import MANIFEST
from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.settings import EncoderSettings
from faq_search.errors import InputError, ModelError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.ray_build import (
    INSTALL_HINT,
    RayEngine,
    ReadOptions,
    bert_encoder,
    import_ray,
    read_faq_shards,
    shard_paths,
)
from faq_search.index.update import update_bundle
from faq_search.index.verify import check_bundle
from tests.conftest import FakeEncoder, tree

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'faq-search[ray]'")

pytestmark = pytest.mark.model

WORDS = [
    *("account", "password", "reset", "billing", "refund", "order", "shipping", "delivery", "invoice", "card"),
    *("login", "email", "phone", "support", "store", "return", "warranty", "gift", "voucher", "parcel"),
    *("address", "change", "cancel", "subscription", "plan", "upgrade"),
]
GLUE = ["the", "a", "to", "of", "is", "how", "can", "i", "my", "do", "you", "we", "our", "for", "with", "on", "in"]


def synthetic_faq(count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` entries of varied length (one question, one answer each), all distinct."""
    rng = np.random.default_rng(seed)
    vocabulary = WORDS + GLUE
    rows = []
    for i in range(count):
        question = " ".join(rng.choice(vocabulary, int(rng.integers(3, 14)))) + f" {WORDS[i % len(WORDS)]}?"
        answer = " ".join(rng.choice(vocabulary, int(rng.integers(4, 40)))) + f" case {i}."
        rows.append({"id": f"faq-{i:04d}", "question": question, "answer": answer, "topic": WORDS[i % 5]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cluster() -> Any:
    """Two one-CPU Ray nodes, connected for the module, shut down (with every worker) at its end."""
    import cloudpickle
    from ray.cluster_utils import Cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors need this module's helpers
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
    nodes.wait_for_nodes()
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def faq_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray-faq") / "faq.csv"
    synthetic_faq(200).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def local_bundle(faq_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "bundle"
    update_bundle(out, faq_file)
    return out


def manifest_without_times(path: Path) -> dict[str, Any]:
    data = json.loads((path / MANIFEST).read_text())
    for key in ("created", "build", "manifest_sha256"):
        data.pop(key)
    return data


def assert_same_bundle(ray_bundle: Path, local_bundle: Path) -> None:
    """Every file byte for byte, and the manifest apart from its creation time and build record."""
    ray_files, local_files = tree(ray_bundle), tree(local_bundle)
    assert sorted(ray_files) == sorted(local_files)
    for name, data in local_files.items():
        if name != MANIFEST:
            assert ray_files[name] == data, name
    assert manifest_without_times(ray_bundle) == manifest_without_times(local_bundle)


def test_the_cluster_has_two_nodes(cluster: Any) -> None:
    assert len([node for node in ray.nodes() if node["Alive"]]) == 2
    assert ray.cluster_resources()["CPU"] == 2


def test_shuffled_block_order_gives_the_same_vectors(cluster: Any, faq_file: Path, local_bundle: Path) -> None:
    local = FaqIndex.load(local_bundle)
    shuffled = FaqIndex.build(faq_file, engine=RayEngine(block_order_seed=7))
    np.testing.assert_array_equal(shuffled.stored_vectors(), local.stored_vectors())
    assert shuffled.row_digests == local.row_digests


class _DiesOnce:
    """An encoder recipe whose first actor to encode kills its own worker process (once per marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self) -> Any:
        encoder = bert_encoder(EncoderSettings().to_dict(), batch_size=64, threads=1)
        original = encoder.encode
        marker = self.marker

        def encode(texts: Any) -> np.ndarray:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return original(texts)
            os.close(fd)
            os._exit(1)  # the worker dies mid-run, holding a call

        encoder.encode = encode  # type: ignore[method-assign]
        return encoder


def test_a_worker_killed_mid_run_still_gives_the_same_bundle(
    cluster: Any, faq_file: Path, local_bundle: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    out = tmp_path / "ray"
    engine = RayEngine(recipe=_DiesOnce(marker))
    update_bundle(out, read_faq(faq_file), engine=engine, source_name=faq_file.name)
    assert marker.exists()  # a worker did die
    assert_same_bundle(out, local_bundle)


def test_an_update_on_ray_encodes_only_the_changed_texts(cluster: Any, faq_file: Path, tmp_path: Path) -> None:
    fake = FakeEncoder()
    engine = RayEngine(recipe=functools.partial(FakeEncoder))
    entries = read_faq(faq_file)
    update_bundle(tmp_path / "b", entries, encoder=fake, engine=engine)
    edited = [dataclasses.replace(entries[0], answer="A new answer."), *entries[1:]]
    index = update_bundle(tmp_path / "b", edited, encoder=fake, engine=engine)
    assert index.report is not None and (index.report.encoded, index.report.changes.changed) == (1, ("faq-0000",))
    local = FaqIndex.build(edited, encoder=FakeEncoder())
    np.testing.assert_array_equal(FaqIndex.load(tmp_path / "b").stored_vectors(), local.stored_vectors())


def test_a_worker_encoder_that_differs_is_refused(cluster: Any) -> None:
    engine = RayEngine(recipe=functools.partial(FakeEncoder, name="other"))
    with pytest.raises(ModelError, match="differs from the driver's"):
        FaqIndex.build([FaqEntry("a", "An answer.")], encoder=FakeEncoder(), engine=engine)


def test_shards_read_as_one_faq_in_name_order(cluster: Any, tmp_path: Path) -> None:
    frame = synthetic_faq(30, seed=3)
    shards = tmp_path / "shards"
    shards.mkdir()
    frame[:10].to_csv(shards / "part-0.csv", index=False)
    frame[10:20].to_json(shards / "part-1.jsonl", orient="records", lines=True)
    frame[20:].to_parquet(shards / "part-2.parquet")
    (shards / "notes.txt").write_text("not an FAQ")
    expected = [e for name in ("part-0.csv", "part-1.jsonl", "part-2.parquet") for e in read_faq(shards / name)]
    assert read_faq_shards(shards) == expected
    assert read_faq_shards(str(shards / "part-*")) == expected
    assert [p.name for p in shard_paths(shards)] == ["part-0.csv", "part-1.jsonl", "part-2.parquet"]


def test_a_bad_shard_is_reported_as_the_readers_own_error(cluster: Any, tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a", "b"], "answer": ["fine", ""]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="empty answer in row 3"):
        read_faq_shards(tmp_path / "bad.csv")
    pd.DataFrame({"id": ["a"], "answer": ["one"]}).to_csv(tmp_path / "x1.csv", index=False)
    pd.DataFrame({"id": ["a"], "answer": ["two"]}).to_csv(tmp_path / "x2.csv", index=False)
    with pytest.raises(InputError, match="more than one row or shard"):
        read_faq_shards(str(tmp_path / "x*.csv"))
    with pytest.raises(InputError, match="no FAQ file there"):
        read_faq_shards(tmp_path / "nothing-*.csv", ReadOptions())


def test_the_ray_bundle_equals_the_local_bundle_file_by_file(
    cluster: Any, faq_file: Path, local_bundle: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from faq_search.cli.app import app

    out = tmp_path / "ray"
    result = CliRunner().invoke(app, ["index", str(faq_file), "--out", str(out), "--engine", "ray", "-q", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["update"]["encoded"] == report["vector_count"] == 400  # every text encoded, on Ray
    assert_same_bundle(out, local_bundle)
    assert check_bundle(out, sample=4).ok


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from faq_search.cli.app import app

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match="pip install 'faq-search\\[ray\\]'"):
        import_ray()
    (tmp_path / "faq.csv").write_text("answer\nHello.\n")
    result = CliRunner().invoke(
        app, ["index", str(tmp_path / "faq.csv"), "--out", str(tmp_path / "b"), "--engine", "ray"]
    )
    assert result.exit_code != 0
    assert INSTALL_HINT in result.output and "Traceback" not in result.output
