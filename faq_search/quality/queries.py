"""Labelled queries: questions with the ids of the FAQ entries that answer them.

The layout is that of ``queries.csv``: ``query_id, query, relevant_ids`` with
ids separated by ``|``. A file of negatives (questions the FAQ cannot answer)
is a table with a query column, or a single column. Read once here for eval,
calibrate, tune and adapt, with errors that name the option to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faq_search.corpus import read_table
from faq_search.errors import InputError


@dataclass(frozen=True)
class LabelledQuery:
    """A question and the ids of the entries that answer it."""

    query: str
    relevant: frozenset[str]


def read_queries(
    path: str | Path,
    *,
    query_column: str = "query",
    relevant_column: str = "relevant_ids",
    separator: str = "|",
    known_ids: Sequence[str] | None = None,
) -> list[LabelledQuery]:
    """Read labelled queries; with ``known_ids``, ids that no entry has are an error."""
    path = Path(path)
    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    for role, name, option in (
        ("query", query_column, "--query-column"),
        ("relevant ids", relevant_column, "--relevant-column"),
    ):
        if name not in columns:
            raise InputError(
                f"{path.name}: no {role} column {name!r}; the columns are {', '.join(map(repr, columns))}; "
                f"choose one with {option}"
            )
    queries: list[LabelledQuery] = []
    for row, (text, ids) in enumerate(zip(frame[query_column], frame[relevant_column], strict=True), start=2):
        relevant = frozenset(part.strip() for part in str(ids).split(separator) if part.strip())
        if not str(text).strip() or not relevant:
            raise InputError(f"{path.name}: row {row} has an empty query or no relevant id; fill it in or remove it")
        queries.append(LabelledQuery(str(text).strip(), relevant))
    if known_ids is not None:
        known = set(known_ids)
        unknown = sorted({i for q in queries for i in q.relevant if i not in known})
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise InputError(f"{path.name}: relevant ids {shown} are not in the index; check the FAQ and query files")
    return queries


def read_questions(path: str | Path, *, query_column: str = "query") -> list[str]:
    """Plain questions (e.g. ones the FAQ cannot answer) from a table's query column, or its only column."""
    path = Path(path)
    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    column = query_column if query_column in columns else (columns[0] if len(columns) == 1 else None)
    if column is None:
        raise InputError(
            f"{path.name}: no question column {query_column!r}; the columns are {', '.join(map(repr, columns))}; "
            "choose one with --query-column"
        )
    questions = [str(v).strip() for v in frame[column].tolist() if str(v).strip()]
    if not questions:
        raise InputError(f"{path.name}: holds no questions")
    return questions


@dataclass(frozen=True)
class QueryFiles:
    """Where labelled queries (and, optionally, negatives) live and which columns hold them."""

    queries: Path
    negatives: Path | None = None
    query_column: str = "query"
    relevant_column: str = "relevant_ids"

    def read(self, known_ids: Sequence[str] | None = None) -> tuple[list[LabelledQuery], list[str]]:
        """The labelled queries (checked against ``known_ids``) and the negative questions (empty without a file)."""
        labelled = read_queries(
            self.queries, query_column=self.query_column, relevant_column=self.relevant_column, known_ids=known_ids
        )
        negatives = read_questions(self.negatives, query_column=self.query_column) if self.negatives else []
        return labelled, negatives
