"""Labelled-query and negative-question files."""

from __future__ import annotations

from pathlib import Path

import pytest

from faq_search.errors import InputError
from faq_search.quality.queries import LabelledQuery, read_queries, read_questions
from tests.conftest import DATA
from tests.quality.test_evaluate import ENTRIES


def test_read_queries_and_unknown_ids(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("query_id,query,relevant_ids\nq1,where is it,ship|pay\nq2,refund?,returns\n", encoding="utf-8")
    queries = read_queries(path, known_ids=[e.id for e in ENTRIES])
    assert queries == [
        LabelledQuery("where is it", frozenset({"ship", "pay"})),
        LabelledQuery("refund?", frozenset({"returns"})),
    ]
    path.write_text("query,relevant_ids\nx,ship|nope|gone\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"relevant ids 'gone', 'nope' are not in the index"):
        read_queries(path, known_ids=[e.id for e in ENTRIES])


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            "question,relevant_ids\nx,ship\n",
            "no query column 'query'; the columns are 'question', 'relevant_ids'; choose one with --query-column",
        ),
        (
            "query,ids\nx,ship\n",
            "no relevant ids column 'relevant_ids'; the columns are 'query', 'ids'; choose one with --relevant-column",
        ),
        ("query,relevant_ids\nx,\n", "row 2 has an empty query or no relevant id"),
    ],
)
def test_malformed_query_files(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "q.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=needle):
        read_queries(path)


def test_read_questions_takes_the_query_column_or_the_only_one(tmp_path: Path) -> None:
    assert read_questions(DATA / "unanswerable.csv")[:1] and len(read_questions(DATA / "unanswerable.csv")) == 15
    one = tmp_path / "one.csv"
    one.write_text("text\nhello\n  \nbye\n", encoding="utf-8")
    assert read_questions(one) == ["hello", "bye"]
    two = tmp_path / "two.csv"
    two.write_text("a,b\nx,y\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no question column 'query'.*choose one with --query-column"):
        read_questions(two)
    assert read_questions(two, query_column="b") == ["y"]
