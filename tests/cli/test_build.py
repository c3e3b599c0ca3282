"""``index``, ``info`` and ``check`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import one_line_error, run, write


@pytest.mark.parametrize(
    ("name", "content", "extra", "needles"),
    [
        ("missing.csv", None, [], ["file not found"]),
        ("faq.docx", "x", [], ["unknown FAQ file format", ".csv"]),
        ("faq.csv", "question,reply\nq,a\n", [], ["no answer column", "'reply'", "--answer-column"]),
        ("faq.csv", "question,answer\nq1,a\nq2,  \n", [], ["empty answer", "row 3"]),
        ("faq.csv", "id,answer\nx,a\nx,b\n", [], ["duplicate ids", "'x'"]),
        ("faq.csv", b"answer\ncaf\xe9 au lait\n", [], ["UTF-8"]),
        ("faq.csv", "", [], ["empty"]),
        ("faq.csv", "answer\nfine\n", ["--question-column", "nope"], ["no question column", "'nope'"]),
        ("faq.csv", "answer\nfine\n", ["--layer", "banana"], ["layer spec"]),
        ("faq.csv", "answer\nfine\n", ["--layer", "-12"], ["out of range"]),
        ("faq.csv", "answer\nfine\n", ["--model", "./no-such-model"], ["not found"]),
    ],
)
def test_index_bad_input_is_one_line_exit_2(
    tmp_path: Path, name: str, content: str | bytes | None, extra: list[str], needles: list[str]
) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    one_line_error(run("index", str(path), "--out", str(tmp_path / "idx"), *extra), *needles)
    assert not (tmp_path / "idx").exists()


@pytest.mark.model
def test_info(sample_index: Path) -> None:
    data = json.loads(run("info", "--index", str(sample_index), "--json").stdout)
    assert data["entry_count"] == 48
    assert data["vector_count"] == 96
    assert data["settings"]["layer"] == "-2"
    assert data["settings"]["pooling"] == "mean"
    text = run("info", "--index", str(sample_index)).stdout
    assert "all-MiniLM-L6-v2" in text and "entries" in text


@pytest.mark.model
def test_index_with_column_options_and_a_model_directory(tmp_path: Path) -> None:
    import shutil

    from faq_search.encoding.encoder import resolve_model

    model_dir = tmp_path / "model"
    shutil.copytree(resolve_model("default")[0], model_dir)
    faq = write(
        tmp_path / "faq.tsv",
        "Ref\tTopic\tTitle\tBody\n"
        "r1\tdelivery\tWhen will my parcel arrive?\tParcels arrive within three working days.\n"
        "r2\tpayment\tWhich cards do you take?\tWe accept Visa, Mastercard and American Express.\n",
    )
    out = tmp_path / "idx"
    result = run(
        "index",
        str(faq),
        "--out",
        str(out),
        "--id-column",
        "Ref",
        "--question-column",
        "Title",
        "--answer-column",
        "Body",
        "--model",
        str(model_dir),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(run("ask", "can i pay with amex", "--index", str(out), "--json", "-k", "1").stdout)
    top = data["matches"][0]
    assert top["id"] == "r2"
    assert top["metadata"] == {"Topic": "payment"}


@pytest.mark.model
def test_index_merges_duplicate_answers_unless_kept_apart(tmp_path: Path) -> None:
    faq = write(
        tmp_path / "faq.csv",
        "id,question,answer\n"
        "a,Where is my parcel?,Track it with the link in your shipping email.\n"
        "b,How do I track my order?,Track it with the link in your shipping email.\n"
        "c,Can I pay by invoice?,Yes: choose invoice at checkout.\n",
    )
    merged = json.loads(run("index", str(faq), "--out", str(tmp_path / "merged"), "--json", "-q").stdout)
    kept = json.loads(
        run("index", str(faq), "--out", str(tmp_path / "kept"), "--keep-duplicate-answers", "--json", "-q").stdout
    )
    assert (merged["entry_count"], kept["entry_count"]) == (2, 3)
    answer = json.loads(run("ask", "where is my parcel", "--index", str(tmp_path / "merged"), "--json").stdout)
    top = answer["matches"][0]
    assert top["ids"] == ["a", "b"] and 0.0 <= top["score"] <= 1.0 and "cosine" in top
