"""Feedback as labelled queries: what ``adapt --feedback`` trains on and ``calibrate --feedback`` fits to.

A customer who says an answer helped confirms a question -> entry pair: the
entry they chose, or else the top answer they were shown. Votes on the same
(question, entry) are summed, helpful +1 and unhelpful -1, and a pair counts
only when the sum is positive. Questions compare case and spacing aside;
entries no longer in the index are left out (the FAQ moved on).

``feedback_queries`` gives :class:`~faq_search.quality.queries.LabelledQuery`
records (what ``adapt_index`` takes); :func:`write_queries_csv` writes them in
the labelled-queries layout (``query_id, query, relevant_ids``) for the
file-based ``calibrate``, merged with the user's own query file if any.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from pathlib import Path

from faq_search.errors import InputError
from faq_search.quality.queries import LabelledQuery, QueryFiles
from faq_search.traffic.log import QuestionLog, existing_log


def feedback_queries(
    log: QuestionLog | str | Path, known_ids: Collection[str] | None = None, since: float | None = None
) -> list[LabelledQuery]:
    """The confirmed question -> entry pairs of a log, one labelled query per distinct question."""
    opened = log if isinstance(log, QuestionLog) else QuestionLog(existing_log(log))
    try:
        questions = {r.id: r for r in opened.questions(since)}
        feedback = opened.feedback(since)
    finally:
        if opened is not log:
            opened.close()
    votes: dict[tuple[str, str], int] = {}
    texts: dict[str, str] = {}
    for item in feedback:
        record = questions.get(item.question_id)
        entry = item.entry_id or (record.matches[0].id if record and record.matches else None)
        if record is None or entry is None:
            continue
        key = " ".join(record.question.split()).casefold()
        texts.setdefault(key, " ".join(record.question.split()))
        votes[(key, entry)] = votes.get((key, entry), 0) + (1 if item.helpful else -1)
    relevant: dict[str, set[str]] = {}
    for (key, entry), total in votes.items():
        if total > 0 and (known_ids is None or entry in known_ids):
            relevant.setdefault(key, set()).add(entry)
    return [LabelledQuery(texts[key], frozenset(ids)) for key, ids in relevant.items()]


def write_queries_csv(
    queries: Sequence[LabelledQuery],
    out: str | Path,
    *,
    merge_with: QueryFiles | None = None,
    known_ids: Sequence[str] | None = None,
) -> QueryFiles:
    """Write ``queries`` (after the labelled queries of ``merge_with``) as ``query_id,query,relevant_ids``.

    Returns the files to hand ``calibrate_index``: the written file, with
    ``merge_with``'s negatives. Raises when there is nothing to write.
    """
    rows = list(merge_with.read(known_ids)[0]) if merge_with else []
    rows += list(queries)
    if not rows:
        raise InputError("no labelled queries: the log holds no helpful feedback yet; pass a query file as well")
    with Path(out).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_id", "query", "relevant_ids"])
        for number, query in enumerate(rows, start=1):
            writer.writerow([f"q{number}", query.query, "|".join(sorted(query.relevant))])
    return QueryFiles(Path(out), merge_with.negatives if merge_with else None)


def with_feedback(files: QueryFiles | None, log: str | Path, index_dir: str | Path, scratch: Path) -> QueryFiles:
    """``calibrate --feedback``: the labelled queries of ``files`` plus the log's confirmed pairs, as one file.

    The file is written into ``scratch`` (the caller's temporary folder);
    ids are checked against the index at ``index_dir``.
    """
    from faq_search.index.faq_index import FaqIndex

    known = [i for entry in FaqIndex.load(index_dir).entries for i in entry.ids]
    confirmed = feedback_queries(log, known_ids=set(known))
    return write_queries_csv(confirmed, scratch / "queries.csv", merge_with=files, known_ids=known)
