"""The command line as a user runs it: help, errors, and the README's main job end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faq_search.cli import app
from tests.conftest import DATA, REPO

BIN = Path(sys.executable).parent
CLI = str(BIN / "faq-search")
COMMANDS = ["index", "ask", "info", "embed", "eval", "tune", "calibrate", "serve"]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"}
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    for option in {"index": ["--out", "--layer", "--pooling", "--precision"], "ask": ["--index", "--json"]}.get(
        command[0] if command else "", []
    ):
        assert option in result.output


def test_help_and_import_do_not_load_torch() -> None:
    code = (
        "import sys, faq_search\n"
        "from typer.testing import CliRunner\n"
        "from faq_search.cli import app\n"
        "for args in (['--help'], ['index', '--help'], ['ask', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("faq-search: error:")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


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


def test_ask_without_an_index_names_the_fix(tmp_path: Path) -> None:
    one_line_error(run("ask", "hello", "--index", str(tmp_path / "none")), "no index at", "faq-search index")


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "sample"
    result = run("index", str(DATA / "faq.csv"), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Indexed 48 entries" in result.stdout
    return out


@pytest.mark.model
def test_ask_empty_question_is_refused(sample_index: Path) -> None:
    one_line_error(run("ask", "   ", "--index", str(sample_index)), "question is empty")


@pytest.mark.model
def test_ask_json_and_table(sample_index: Path) -> None:
    result = run("ask", "how long do i have to send something back", "--index", str(sample_index), "--json", "-k", "3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answered"] is True
    assert [m["rank"] for m in data["matches"]] == [1, 2, 3]
    scores = [m["score"] for m in data["matches"]]
    assert scores == sorted(scores, reverse=True)
    assert len({m["id"] for m in data["matches"]}) == 3
    assert {"id", "question", "answer", "score", "field", "metadata"} <= set(data["matches"][0])

    table = run("ask", "how long do i have to send something back", "--index", str(sample_index), "-k", "2")
    assert table.returncode == 0
    assert table.stdout.lstrip().startswith("1. ")
    assert data["matches"][0]["id"] in table.stdout


@pytest.mark.model
def test_ask_says_when_no_answer_is_confident(sample_index: Path) -> None:
    result = run("ask", "do you sell bicycles", "--index", str(sample_index), "--min-score", "5")
    assert result.returncode == 0
    assert "No confident answer" in result.stdout
    data = json.loads(
        run("ask", "do you sell bicycles", "--index", str(sample_index), "--min-score", "5", "--json").stdout
    )
    assert data["answered"] is False and data["matches"] == []


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


def test_readme_main_job_end_to_end() -> None:
    """The README's first command (make demo) indexes data/ and prints ranked answers."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    venv = Path(sys.prefix)
    result = subprocess.run(
        ["make", "-s", "demo", f"VENV={venv}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        env={**os.environ, "FAQ_SEARCH_NO_PROGRESS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Indexed 48 entries" in result.stdout
    assert " 1. " in result.stdout
    assert "shipping-05" in result.stdout.split(" 2. ")[0]  # the lost-parcel answer ranks first
