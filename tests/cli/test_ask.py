"""``ask`` as a user runs it: JSON and table output, no confident answer, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import one_line_error, run


def test_ask_without_an_index_names_the_fix(tmp_path: Path) -> None:
    one_line_error(run("ask", "hello", "--index", str(tmp_path / "none")), "no index at", "faq-search index")


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
    assert {"id", "ids", "question", "answer", "score", "cosine", "lexical", "field", "metadata"} <= set(
        data["matches"][0]
    )
    assert all(0.0 <= m["score"] <= 1.0 for m in data["matches"])

    table = run("ask", "how long do i have to send something back", "--index", str(sample_index), "-k", "2")
    assert table.returncode == 0
    assert table.stdout.lstrip().startswith("1. ")
    assert data["matches"][0]["id"] in table.stdout


@pytest.mark.model
def test_ask_says_when_no_answer_is_confident(sample_index: Path) -> None:
    result = run("ask", "do you sell bicycles", "--index", str(sample_index), "--min-score", "0.99")
    assert result.returncode == 0
    assert "No confident answer" in result.stdout
    data = json.loads(
        run("ask", "do you sell bicycles", "--index", str(sample_index), "--min-score", "0.99", "--json").stdout
    )
    assert data["answered"] is False and data["matches"] == []
