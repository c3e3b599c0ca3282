"""The ``embed`` command: options, errors, files, and other models through ``--model``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faq_search.cli import app
from faq_search.export.embeddings import token_embeddings
from tests.export.samples import LONG_TEXT

model = pytest.mark.model


def invoke(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["embed", *args], input=stdin)


def one_line_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("faq-search: error:")
    for needle in needles:
        assert needle in lines[0]


def test_embed_help_lists_the_choices_and_does_not_load_torch() -> None:
    result = CliRunner().invoke(app, ["embed", "--help"])
    assert result.exit_code == 0
    for option in ["--level", "--layer", "--pooling", "--merge", "--out", "--show-tokens", "--truncate", "--model"]:
        assert option in result.output
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom faq_search.cli import app\n"
        "assert CliRunner().invoke(app, ['embed', '--help']).exit_code == 0\n"
        "sys.exit(1 if {'torch', 'transformers', 'numpy'} & set(sys.modules) else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ([], ["no text to embed"]),
        (["  "], ["text 1 is empty"]),
        (["x", "--level", "token", "--out", "t.npy"], [".npy", "write .jsonl or .parquet"]),
        (["x", "--level", "word", "--pooling", "max"], ["--pooling applies to --level sentence only"]),
        (["x", "--merge", "first"], ["--merge applies to --level word only"]),
        (["x", "--truncate"], ["sentence level always cuts"]),
        (["x", "--layer", "top"], ["layer spec 'top'"]),
    ],
)
def test_embed_bad_input_is_one_line_exit_2(args: list[str], needles: list[str]) -> None:
    one_line_error(invoke(*args), *needles)


def test_embed_unknown_level_exit_2() -> None:
    result = invoke("x", "--level", "paragraph")
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # typer's own choice check, in a box
    assert "'paragraph' is not one of 'sentence', 'token', 'word'" in message


@model
def test_embed_command_sentence_npy_and_summary(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "s.npy"
    result = invoke("How can I cancel my order?", "hi", "--out", str(out), "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert "Wrote 2 sentence vectors of 384 dims for 2 texts" in result.stdout
    np.testing.assert_allclose(np.load(out), real_encoder.encode(["How can I cancel my order?", "hi"]), atol=1e-5)

    shown = invoke("-", "--show-tokens", "--pooling", "cls", stdin="first text\nsecond text\n")
    assert shown.exit_code == 0, shown.output
    assert "cls pooling: 2 sentence vectors of 384 dims (unit length)" in shown.stdout
    assert "tokens: [CLS] first text [SEP]" in shown.stdout


@model
def test_embed_command_token_and_word_files(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("id,text\n1,Tokenization is fun.\n2," + LONG_TEXT.replace(",", "") + "\n", encoding="utf-8")
    out = tmp_path / "w.parquet"
    result = invoke(
        "--file", str(texts), "--level", "word", "--merge", "first", "--layer", "concat-last-4",
        "--max-seq-len", "32", "--truncate", "--out", str(out), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["level"] == "word" and meta["merge"] == "first" and meta["dimension"] == 4 * 384
    assert meta["truncated_texts"] == 1
    assert "faq-search: warning: 1 of 2 texts were cut at the 32-piece window" in result.stderr
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    assert rows[0]["words"] == ["Tokenization", "is", "fun", "."] and rows[1]["dropped_words"]
    assert len(rows[0]["vectors"]) == 4 and len(rows[0]["vectors"][0]) == 4 * 384

    shown = invoke("Tokenization is fun.", "--level", "token", "--show-tokens", "--no-special", "--json")
    data = json.loads(shown.stdout)
    record = data["records"][0]
    assert record["tokens"] == ["token", "##ization", "is", "fun", "."]
    assert record["offsets"][1] == [5, 12] and len(record["vectors"][0]) == 384
    assert data["normalized"] is False


@model
def test_embed_command_layer_out_of_range(tmp_path: Path) -> None:
    one_line_error(invoke("x", "--level", "token", "--layer", "-9"), "layer -9 is out of range", "6 layers")


@model
def test_embed_command_with_a_copied_model_directory(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    from faq_search.encoding.encoder import resolve_model

    copy = tmp_path / "my-minilm"
    shutil.copytree(resolve_model("default")[0], copy)
    out = tmp_path / "t.jsonl"
    result = invoke(
        "Where is my parcel?", "--model", str(copy), "--level", "token", "--out", str(out), "--precision", "fp32"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    expected = token_embeddings(real_encoder, ["Where is my parcel?"])[0]
    assert tuple(record["tokens"]) == expected.tokens
    np.testing.assert_allclose(np.array(record["vectors"], np.float32), expected.vectors, atol=1e-4)


@model
def test_embed_command_with_another_bert_family_directory(tmp_path: Path) -> None:
    """A tiny randomly initialised BERT (3 layers, 32 wide) works at every level through --model."""
    import torch
    import transformers

    from faq_search.encoding.encoder import resolve_model

    tiny = tmp_path / "tiny-bert"
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tiny)
    transformers.AutoTokenizer.from_pretrained(resolve_model("default")[0]).save_pretrained(tiny)

    words = json.loads(invoke("unbelievably tiny", "--model", str(tiny), "--level", "word", "--json").stdout)
    assert words["dimension"] == 32 and words["model"] == "tiny-bert"
    assert words["records"][0]["words"] == ["unbelievably", "tiny"]
    summed = json.loads(
        invoke("x y", "--model", str(tiny), "--level", "token", "--layer", "sum-last-4", "--json").stdout
    )
    assert summed["dimension"] == 32 and len(summed["records"][0]["vectors"]) == 4
    sentence = json.loads(invoke("x y", "--model", str(tiny), "--pooling", "mean_max", "--json").stdout)
    assert sentence["dimension"] == 64
    one_line_error(invoke("x", "--model", str(tiny), "--layer", "5"), "layer 5 is out of range", "3 layers")
