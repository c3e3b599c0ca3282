"""The fast paths give the same answers as the plain ones: approximate indexes, the lean BERT, the bare tokenizer.

No timing here (speed is measured in benchmarks/); these tests pin down that
each shortcut is exact, or as close as it claims, and falls back where it must.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faq_search.corpus import FaqEntry
from faq_search.encoding.settings import EncoderSettings, Precision
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.store import INDEX_TYPES, AnnSettings, IndexType, VectorStore
from tests.conftest import FakeEncoder

# -- approximate index types -------------------------------------------------------


def clustered(rng: np.random.Generator, n: int, dim: int, clusters: int) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(0, clusters, size=n)] + 0.35 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(store: VectorStore, queries: np.ndarray, truth: np.ndarray) -> float:
    found = store.search(queries, 10)
    return float(
        np.mean([len({h.entry for h in hits} & set(t.tolist())) / 10 for hits, t in zip(found, truth, strict=True)])
    )


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_find_nearly_what_exact_search_finds(index_type: str) -> None:
    rng = np.random.default_rng(0)
    data = clustered(rng, 4100, 48, 60)
    vectors, queries = data[:4000], data[4000:]
    rows = np.arange(len(vectors))
    flat = VectorStore.build(vectors, rows, ["answer"] * len(vectors))
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert recall_at_10(flat, queries, truth) == 1.0
    approximate = VectorStore.build(vectors, rows, ["answer"] * len(vectors), index_type)
    assert approximate.index_type is IndexType(index_type)
    assert recall_at_10(approximate, queries, truth) >= 0.95
    # the scores are exact cosines of the rows found, whatever found them
    for query, hits in zip(queries, approximate.search(queries, 5), strict=True):
        np.testing.assert_allclose([h.score for h in hits], vectors[[h.row for h in hits]] @ query, atol=1e-5)


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_every_index_type_returns_each_entry_once_best_first(index_type: str) -> None:
    rng = np.random.default_rng(1)
    vectors = clustered(rng, 600, 16, 12)
    row_entry = rng.integers(0, 150, size=600)
    row_entry[:150] = np.arange(150)
    store = VectorStore.build(vectors, row_entry, ["question"] * 600, index_type)
    for hits in store.search(vectors[:20], 8):
        assert len(hits) == 8
        assert len({h.entry for h in hits}) == 8
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        assert all(row_entry[h.row] == h.entry for h in hits)


@pytest.mark.parametrize("rows", [1, 5, 80])
def test_ivf_on_tiny_collections_is_exact(rows: int) -> None:
    rng = np.random.default_rng(rows)
    vectors = clustered(rng, rows, 8, 3)
    store = VectorStore.build(vectors, np.arange(rows), ["answer"] * rows, "ivf")
    exact = VectorStore.build(vectors, np.arange(rows), ["answer"] * rows)
    k = min(rows, 4)
    got = [[h.entry for h in hits] for hits in store.search(vectors, k)]
    assert got == [[h.entry for h in hits] for hits in exact.search(vectors, k)]


def test_search_settings_travel_inside_the_faiss_file() -> None:
    import faiss

    rng = np.random.default_rng(2)
    vectors = clustered(rng, 3000, 16, 20)
    settings = AnnSettings(hnsw_ef_search=77, ivf_lists=40, ivf_probe=9)
    for index_type, read in [
        ("hnsw", lambda index: index.hnsw.efSearch),
        ("ivf", lambda index: (index.nlist, index.nprobe)),
    ]:
        store = VectorStore.build(vectors, np.arange(3000), ["answer"] * 3000, index_type, settings)
        loaded = faiss.downcast_index(VectorStore.index_from_bytes(store.to_bytes()))
        assert read(loaded) == read(faiss.downcast_index(store.index))
        assert read(loaded) in (77, (40, 9))


def test_ann_defaults_scale_with_the_collection() -> None:
    settings = AnnSettings()
    assert settings.lists_for(10) == 1
    assert settings.lists_for(10_000) == 100
    assert settings.lists_for(1_000_000) == 1000
    assert settings.probe_for(1) == 1
    assert 1 <= settings.probe_for(1000) <= 1000


def test_unknown_index_type_names_the_choices() -> None:
    with pytest.raises(InputError, match="unknown index type 'lsh'; use one of flat, hnsw, ivf"):
        VectorStore.build(np.eye(4, dtype=np.float32), [0, 1, 2, 3], ["answer"] * 4, "lsh")


ENTRIES = [
    FaqEntry("ship", "Standard parcels ship within two working days.", ("How long does shipping take?",)),
    FaqEntry("returns", "Returns are free within thirty days of delivery.", ("Can I return an item?",)),
    FaqEntry("payment", "We accept credit cards, PayPal and invoices.", ("Which payment methods do you accept?",)),
    FaqEntry("password", "Click 'forgot password' on the login page to reset it.", ("How do I reset my password?",)),
    FaqEntry("hours", "Our stores open at nine and close at six.", ("When do your stores open?",)),
]


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_bundles_with_approximate_indexes_save_load_and_answer(tmp_path: Path, index_type: str) -> None:
    encoder = FakeEncoder()
    flat = FaqIndex.build(ENTRIES, encoder=encoder)
    built = FaqIndex.build(ENTRIES, encoder=encoder, index_type=index_type)
    assert built.manifest.index_type == index_type
    built.save(tmp_path / "bundle")
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["index_type"] == index_type
    loaded = FaqIndex.load(tmp_path / "bundle", encoder=encoder)
    assert loaded.store.index_type is IndexType(index_type)
    for question in ["how long does shipping take", "reset my password", "when do stores open"]:
        expected = flat.ask(question, k=len(ENTRIES))
        got = loaded.ask(question, k=len(ENTRIES))
        assert got[0].entry.id == expected[0].entry.id
        # the same entries and scores (the order of equal scores is the index's own)
        assert sorted((-round(m.score, 5), m.entry.id) for m in got) == sorted(
            (-round(m.score, 5), m.entry.id) for m in expected
        )


def test_cli_index_passes_the_index_type_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import faq_search.index.update
    from faq_search.cli import app
    from faq_search.index.build import BuildOptions

    seen: list[BuildOptions] = []

    def fake_update_bundle(path: object, entries: object, options: BuildOptions, **update: object) -> FaqIndex:
        seen.append(options)
        raise InputError("stop here")

    monkeypatch.setattr(faq_search.index.update, "update_bundle", fake_update_bundle)
    faq = tmp_path / "faq.csv"
    faq.write_text("question,answer\nWhere is my parcel?,It ships in two days.\n")
    result = CliRunner().invoke(app, ["index", str(faq), "--out", str(tmp_path / "out"), "--index-type", "hnsw"])
    assert result.exit_code == 2
    assert seen[0].index_type == "hnsw"
    bad = CliRunner().invoke(app, ["index", str(faq), "--index-type", "annoy"])
    assert bad.exit_code != 0


# -- the lean BERT and the bare tokenizer (real model) -----------------------------

TRICKY = [
    "How can I cancel my order?",
    "Ünïcödé ÀÉÎ naïve café \u2013 \u201cquotes\u201d and \ufb01 ligatures",
    "中文字符 日本語 한국어 emoji 😀",
    "",
    "   ",
    "tab\tnew\nline\u200b zero width",
    "word " * 400,
    "x" * 700,
]


@pytest.mark.model
def test_the_bare_tokenizer_equals_transformers(real_encoder) -> None:  # type: ignore[no-untyped-def]
    from faq_search.encoding.encoder import BertEncoder

    assert real_encoder._fast is not None
    ids, special = BertEncoder(EncoderSettings(include_special=False, precision="fp32")).tokenize(TRICKY)
    reference = real_encoder.tokenizer(
        TRICKY, truncation=True, max_length=256, return_special_tokens_mask=True, return_attention_mask=False
    )
    assert ids == reference["input_ids"]
    assert special == reference["special_tokens_mask"]
    assert max(len(row) for row in ids) == 256


@pytest.mark.model
def test_the_weights_hash_is_transformers_state_dict_hash(real_encoder) -> None:  # type: ignore[no-untyped-def]
    import transformers

    from faq_search.encoding.loading import loaded_weights_digest, resolve_model

    model = transformers.AutoModel.from_pretrained(resolve_model("default")[0], local_files_only=True)
    assert real_encoder.weights_sha256 == loaded_weights_digest(model)
    assert type(real_encoder.model).__name__ == "LeanBert"


# Three texts take torch's fused attention kernel; thirty short ones the batched-matmul path (bert._short_attention).
_FEW = ["short", "a somewhat longer sentence about parcels and refunds", "hi there"]
_MANY_SHORT = [f"question {n}: where is parcel number {n * 7919}?" + " please" * (n % 5) for n in range(30)]


@pytest.mark.model
@pytest.mark.parametrize("texts", [_FEW, _MANY_SHORT], ids=["fused-kernel", "batched-matmuls"])
def test_hidden_states_equal_transformers_layer_by_layer(real_encoder, texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    import torch
    import transformers

    from faq_search.encoding.bert import _SHORT_ATTENTION_BATCH
    from faq_search.encoding.encoder import resolve_model

    assert (len(texts) >= _SHORT_ATTENTION_BATCH) == (texts is _MANY_SHORT)
    ids, _ = real_encoder.tokenize(texts)
    states, mask = real_encoder.hidden_states(ids)
    assert len(states) == real_encoder.blocks_run + 1
    assert all(state.dtype == torch.float32 for state in states)
    path = resolve_model("default")[0]
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    with torch.no_grad():
        reference = model(input_ids=torch.tensor(_pad(ids)), attention_mask=mask, output_hidden_states=True)
    real = mask.bool()
    for ours, theirs in zip(states, reference.hidden_states, strict=False):
        np.testing.assert_allclose(ours[real].numpy(), theirs[real].numpy(), atol=2e-5)
        assert float(ours[~real].abs().max()) == 0.0  # padding positions hold zeros


def _pad(ids: list[list[int]]) -> list[list[int]]:
    width = max(len(row) for row in ids)
    return [row + [0] * (width - len(row)) for row in ids]


@pytest.mark.model
def test_packed_batches_equal_single_texts_in_fp32(real_encoder) -> None:  # type: ignore[no-untyped-def]
    texts = ["one", "two words", "a sentence of a medium length, with punctuation!", "x " * 60, "hello"]
    together = real_encoder.encode(texts)
    alone = np.concatenate([real_encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-6)


@pytest.mark.model
def test_plain_torch_ops_equal_the_fused_ones(real_encoder) -> None:  # type: ignore[no-untyped-def]
    import torch

    texts = ["where is my parcel", "refunds take five business days after the return arrives"]
    fused = real_encoder.encode(texts)
    assert real_encoder.lean.fused
    try:
        real_encoder.lean.prepare(torch.float32, fused=False)
        assert not real_encoder.lean.fused
        np.testing.assert_allclose(real_encoder.encode(texts), fused, atol=1e-5)
    finally:
        real_encoder.lean.prepare(torch.float32)


@pytest.mark.model
def test_auto_precision_is_fp32_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import faq_search.encoding.loading as loading_module
    from faq_search.encoding.encoder import BertEncoder, resolve_precision

    monkeypatch.setattr(loading_module, "native_bf16", lambda: False)
    assert resolve_precision(Precision.AUTO) is Precision.FP32
    encoder = BertEncoder(EncoderSettings())
    assert encoder.precision is Precision.FP32
    assert encoder.lean.dtype == torch.float32


@pytest.mark.model
def test_other_weight_files_and_architectures_fall_back_to_transformers(tmp_path: Path) -> None:
    import torch
    import transformers

    from faq_search.encoding.encoder import BertEncoder, resolve_model

    source, _ = resolve_model("default")
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    bert = transformers.BertModel(
        transformers.BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64)
    )
    bert.save_pretrained(tmp_path / "safetensors")
    bert.save_pretrained(tmp_path / "pickle", safe_serialization=False)  # pytorch_model.bin: transformers reads it
    distil = transformers.DistilBertModel(
        transformers.DistilBertConfig(dim=32, n_layers=3, n_heads=2, hidden_dim=64)
    )  # not a BERT layout: runs on transformers' own classes
    distil.save_pretrained(tmp_path / "distil")
    for name in ("safetensors", "pickle", "distil"):
        tokenizer.save_pretrained(tmp_path / name)

    texts = ["where is my parcel", "a refund takes five days"]
    lean = BertEncoder(EncoderSettings(model=str(tmp_path / "safetensors"), precision="fp32"))
    from_pickle = BertEncoder(EncoderSettings(model=str(tmp_path / "pickle"), precision="fp32"))
    assert lean.lean is not None and from_pickle.lean is not None
    assert from_pickle.weights_sha256 == lean.weights_sha256
    np.testing.assert_allclose(from_pickle.encode(texts), lean.encode(texts), atol=1e-6)
    other = BertEncoder(EncoderSettings(model=str(tmp_path / "distil"), precision="fp32"))
    assert other.lean is None and other.blocks_run == 2
    vectors = other.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_asking_needs_neither_transformers_nor_pandas(tmp_path: Path) -> None:
    """A cold ``ask`` imports only what it uses: transformers alone costs seconds."""
    index = FaqIndex.build(ENTRIES, settings=EncoderSettings(), fields="answer")
    index.save(tmp_path / "bundle")
    code = (
        "import sys\n"
        "from faq_search.index.faq_index import FaqIndex\n"
        f"index = FaqIndex.load({str(tmp_path / 'bundle')!r})\n"
        "assert index.ask('where is my parcel', k=1)\n"
        "print(sorted(m for m in ('transformers', 'pandas', 'sentence_transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
