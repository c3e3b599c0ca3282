"""Retrieval quality on labelled queries: MRR@10, Recall@k, nDCG@10.

A labelled query file has one question per row and the ids of the FAQ entries
that answer it (the layout of ``queries.csv``: ``query_id, query,
relevant_ids`` with ids separated by ``|``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faq_search.corpus import read_table
from faq_search.errors import InputError

if TYPE_CHECKING:
    from faq_search.engine import FaqIndex


@dataclass(frozen=True)
class LabelledQuery:
    """A question and the ids of the entries that answer it."""

    query: str
    relevant: frozenset[str]


@dataclass(frozen=True)
class Metrics:
    """Mean metrics over a query set (Recall@k is normalised by the number of relevant entries)."""

    queries: int
    mrr_at_10: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    ndcg_at_10: float


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
    for role, name in (("query", query_column), ("relevant ids", relevant_column)):
        if name not in columns:
            raise InputError(f"{path.name}: no {role} column {name!r}; the columns are {', '.join(map(repr, columns))}")
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


def score_ranking(ranked_ids: Sequence[str], relevant: frozenset[str]) -> dict[str, float]:
    """Per-query metrics for one ranked list of entry ids."""
    top = list(ranked_ids[:10])
    reciprocal = next((1.0 / (i + 1) for i, entry_id in enumerate(top) if entry_id in relevant), 0.0)
    dcg = sum(1.0 / math.log2(i + 2) for i, entry_id in enumerate(top) if entry_id in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return {
        "mrr_at_10": reciprocal,
        "recall_at_1": len(set(top[:1]) & relevant) / len(relevant),
        "recall_at_5": len(set(top[:5]) & relevant) / len(relevant),
        "recall_at_10": len(set(top) & relevant) / len(relevant),
        "ndcg_at_10": dcg / ideal if ideal else 0.0,
    }


def evaluate(index: FaqIndex, queries: Sequence[LabelledQuery], batch_size: int = 64) -> Metrics:
    """Ask every query (in batches) and average the metrics."""
    if not queries:
        raise InputError("no labelled queries to evaluate")
    totals: dict[str, float] = {}
    for start in range(0, len(queries), batch_size):
        chunk = queries[start : start + batch_size]
        results = index.ask_batch([q.query for q in chunk], k=10, min_score=-1.0)
        for query, matches in zip(chunk, results, strict=True):
            for name, value in score_ranking([m.entry.id for m in matches], query.relevant).items():
                totals[name] = totals.get(name, 0.0) + value
    n = len(queries)
    return Metrics(queries=n, **{name: value / n for name, value in totals.items()})
