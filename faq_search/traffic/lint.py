"""The FAQ health check behind ``faq-search lint``: what in the FAQ file itself makes answers less sure.

It reads the FAQ row by row (:func:`read_rows`), before the index would merge
rows that repeat an answer, so it sees what the author wrote:

- ``conflict``: questions that say the same thing (cosine at least
  ``similarity`` with the encoder, or equal text) but carry different answers;
  rows linked through such pairs form one group;
- ``duplicate_answer``: one answer text (case and spacing aside) under several ids;
- ``unreachable``: an entry whose own question does not bring it into the
  index's top 3 (needs ``--index``: it asks the served index);
- ``empty``: an empty answer, or no question where the rest of the FAQ has them;
- ``too_long``: a question or an answer longer than the limits.

What it is not: a judge of answer quality. Two answers to one question may
both be right (then merge them or tell the questions apart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.corpus import FaqEntry, detect_format, entries_from_frame, read_table
from faq_search.errors import InputError

if TYPE_CHECKING:
    from faq_search.encoding.protocol import Encoder
    from faq_search.index.faq_index import FaqIndex

KINDS = ("conflict", "duplicate_answer", "unreachable", "empty", "too_long")
TOP = 3


@dataclass(frozen=True)
class LintSettings:
    similarity: float = 0.9  # questions at least this alike (cosine) count as the same question
    max_question_chars: int = 300
    max_answer_chars: int = 4000

    def __post_init__(self) -> None:
        if not 0.0 < self.similarity <= 1.0:
            raise InputError(f"--similarity {self.similarity} must be in (0, 1]")
        if self.max_question_chars < 1 or self.max_answer_chars < 1:
            raise InputError("--max-question-chars and --max-answer-chars must be at least 1")


@dataclass(frozen=True)
class LintIssue:
    """One finding: its kind, the ids involved and one line saying what to do."""

    kind: str
    ids: tuple[str, ...]
    detail: str
    score: float | None = None  # conflicts: the highest question cosine in the group

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ids": list(self.ids), "detail": self.detail, "score": self.score}


@dataclass(frozen=True)
class LintReport:
    rows: int
    issues: tuple[LintIssue, ...]
    skipped: tuple[str, ...]  # checks that did not run, and why

    def counts(self) -> dict[str, int]:
        return {kind: sum(issue.kind == kind for issue in self.issues) for kind in KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "counts": self.counts(),
            "skipped": list(self.skipped),
            "issues": [issue.to_dict() for issue in self.issues],
        }


def read_rows(
    path: str | Path, *, answer_column: str = "answer", question_column: str | Sequence[str] | None = None,
    id_column: str | None = None,
) -> tuple[list[FaqEntry], list[LintIssue]]:  # fmt: skip
    """The FAQ's rows as entries, unmerged, and the rows with an empty answer (which reading would refuse)."""
    path = Path(path)
    frame = read_table(path)
    columns = {str(c).strip().lower(): c for c in frame.columns}
    answer = columns.get(answer_column.strip().lower())
    issues: list[LintIssue] = []
    if answer is not None:
        empty = frame[answer].isna() | (frame[answer].astype(str).str.strip() == "")
        offset = 1 if detect_format(path) in ("json", "jsonl") else 2
        for position in np.flatnonzero(empty.to_numpy()):
            issues.append(
                LintIssue("empty", (f"row {position + offset}",), "empty answer: fill it in or remove the row")
            )
        frame = frame[~empty.to_numpy()]
    entries = entries_from_frame(
        frame, source=path.name, answer_column=answer_column, question_column=question_column, id_column=id_column
    )
    return entries, issues


def lint_entries(
    entries: Sequence[FaqEntry],
    encoder: Encoder,
    index: FaqIndex | None = None,
    settings: LintSettings | None = None,
    found: Sequence[LintIssue] = (),
) -> LintReport:
    """Every check on unmerged ``entries``; ``found`` are issues already met while reading them."""
    settings = settings or LintSettings()
    issues = [*found, *_field_issues(entries, settings)]
    issues += _duplicate_answers(entries)
    issues += _conflicts(entries, encoder, settings.similarity)
    skipped: list[str] = []
    if index is None:
        skipped.append("unreachable: pass --index DIR (the index built from this FAQ) to check it")
    else:
        issues += _unreachable(entries, index)
    return LintReport(len(entries) + len(found), tuple(issues), tuple(skipped))


def _field_issues(entries: Sequence[FaqEntry], settings: LintSettings) -> list[LintIssue]:
    issues = []
    with_questions = any(e.questions for e in entries)
    for e in entries:
        if with_questions and not e.questions:
            issues.append(LintIssue("empty", (e.id,), "no question: add the question customers ask for this answer"))
        long_questions = [q for q in e.questions if len(q) > settings.max_question_chars]
        if long_questions:
            issues.append(LintIssue(
                "too_long", (e.id,),
                f"question of {len(long_questions[0])} characters (limit {settings.max_question_chars}): "
                "shorten it to what a customer would type",
            ))  # fmt: skip
        if len(e.answer) > settings.max_answer_chars:
            issues.append(LintIssue(
                "too_long", (e.id,),
                f"answer of {len(e.answer)} characters (limit {settings.max_answer_chars}): split it into entries",
            ))  # fmt: skip
    return issues


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _duplicate_answers(entries: Sequence[FaqEntry]) -> list[LintIssue]:
    groups: dict[str, list[str]] = {}
    for e in entries:
        groups.setdefault(_normal(e.answer), []).append(e.id)
    return [
        LintIssue("duplicate_answer", tuple(ids), f"the same answer under {len(ids)} ids: keep one, move the questions")
        for ids in groups.values()
        if len(ids) > 1
    ]


def _conflicts(entries: Sequence[FaqEntry], encoder: Encoder, similarity: float) -> list[LintIssue]:
    """Groups of rows linked by near-identical questions that hold more than one distinct answer."""
    owners = [i for i, e in enumerate(entries) for _ in e.questions]
    texts = [q for e in entries for q in e.questions]
    if len(texts) < 2:
        return []
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    parent = list(range(len(entries)))
    links: list[tuple[int, float]] = []  # (a row of the pair, the pair's question similarity)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    normal = [_normal(t) for t in texts]
    for start in range(0, len(texts), 1024):
        sims = vectors[start : start + 1024] @ vectors.T
        for row, col in zip(*np.nonzero(sims >= similarity - 1e-6), strict=True):
            a, b = start + int(row), int(col)
            if b <= a or owners[a] == owners[b]:
                continue
            ra, rb = root(owners[a]), root(owners[b])
            if ra != rb:
                parent[rb] = ra
            links.append((owners[a], 1.0 if normal[a] == normal[b] else float(sims[row, col])))
    best: dict[int, float] = {}
    for row_of_pair, score in links:
        best[root(row_of_pair)] = max(best.get(root(row_of_pair), 0.0), score)
    groups: dict[int, list[int]] = {}
    for i in range(len(entries)):
        groups.setdefault(root(i), []).append(i)
    issues = []
    for members in groups.values():
        answers = {_normal(entries[i].answer) for i in members}
        if len(members) < 2 or len(answers) < 2:
            continue
        score = best.get(root(members[0]), 0.0)
        issues.append(LintIssue(
            "conflict", tuple(entries[i].id for i in members),
            f"{len(members)} rows ask the same question ({entries[members[0]].question!r}) with {len(answers)} "
            "different answers: merge them into one answer or make the questions say what differs",
            round(score, 4),
        ))  # fmt: skip
    return issues


def _unreachable(entries: Sequence[FaqEntry], index: FaqIndex) -> list[LintIssue]:
    """Entries none of whose own questions brings them into the index's top 3."""
    asked = [(e, q) for e in entries for q in e.questions]
    if not asked:
        return []
    results = index.ask_batch([q for _, q in asked], k=TOP, min_score=-math.inf)
    reached: dict[str, bool] = {}
    for (entry, _), matches in zip(asked, results, strict=True):
        hit = any(entry.id in m.entry.ids for m in matches)
        reached[entry.id] = reached.get(entry.id, False) or hit
    known = {i for e in index.entries for i in e.ids}
    issues = []
    for entry in entries:
        if entry.id not in known:
            issues.append(LintIssue("unreachable", (entry.id,), "not in the index: rebuild it from this FAQ"))
        elif entry.id in reached and not reached[entry.id]:
            issues.append(LintIssue(
                "unreachable", (entry.id,),
                f"its own question {entry.question!r} does not bring it into the top {TOP}: "
                "reword the question or add the words customers use",
            ))  # fmt: skip
    return issues
