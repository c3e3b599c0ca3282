"""The question log: every question a bot or the server answered, and the feedback on it, in one SQLite file.

Why SQLite: one file, no server, in the standard library, and safe for
several writers. The log runs in WAL mode (readers never block the writer),
each write is one transaction (a process killed mid-write leaves the file as
it was before that write: no partial rows), and a busy timeout lets the
processes of ``faq-search serve --workers N`` take turns on the write lock
instead of failing.

The schema carries its version and is brought up to date in one place,
:func:`faq_search.traffic.schema.migrate`, when the log opens.

Questions are redacted (:mod:`faq_search.traffic.redact`) before they are
written, unless the caller turns that off. ``retention_days`` deletes rows
older than that, when the log opens and then at most once an hour.

What it is not: an analytics store. It keeps what the gaps report, the
feedback loop and a person reading it need, and nothing about the customer
beyond the (redacted) question.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faq_search.errors import InputError
from faq_search.traffic.redact import redact as mask
from faq_search.traffic.schema import migrate

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex
    from faq_search.index.records import Answer, Match

PURGE_EVERY_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True)
class LoggedMatch:
    """One of a logged question's top matches: the entry id and its confidence."""

    id: str
    score: float


@dataclass(frozen=True)
class QuestionRecord:
    """One answered question as the log stores it (already redacted when the log redacts)."""

    id: str
    asked_at: float  # Unix seconds
    question: str
    answered: bool
    matches: tuple[LoggedMatch, ...]
    latency_ms: float | None = None
    generation: int | None = None
    index: str | None = None
    min_score: float | None = None

    @classmethod
    def of(
        cls,
        answer: Answer,
        *,
        latency_ms: float | None = None,
        generation: int | None = None,
        index: str | None = None,
        ranked: Sequence[Match] | None = None,
    ) -> QuestionRecord:
        """The record of an :class:`~faq_search.index.records.Answer`, with a new id.

        ``ranked``: the matches before the threshold, to log instead of the
        answer's kept ones (the gaps report reads the best score, kept or not).
        """
        shown = answer.matches if ranked is None else ranked
        return cls(
            id=new_question_id(),
            asked_at=time.time(),
            question=answer.question,
            answered=answer.answered,
            matches=tuple(LoggedMatch(m.entry.id, round(float(m.score), 6)) for m in shown),
            latency_ms=latency_ms,
            generation=generation,
            index=index,
            min_score=answer.min_score,
        )

    @property
    def top_score(self) -> float | None:
        return self.matches[0].score if self.matches else None


@dataclass(frozen=True)
class LoggedAnswer:
    """An answer and the id its question is logged under (for :meth:`QuestionLog.add_feedback`)."""

    question_id: str
    answer: Answer


@dataclass(frozen=True)
class Feedback:
    """A customer's verdict on a logged question's answer; ``entry_id`` is the entry they chose, if any."""

    question_id: str
    helpful: bool
    entry_id: str | None = None
    given_at: float = 0.0


def existing_log(path: str | Path) -> Path:
    """``path`` if a log is there: reading (gaps, feedback) never creates one, a missing file is a wrong path."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no question log there; pass the file `faq-search serve --log` wrote")
    return path


def new_question_id() -> str:
    """A random id, unique across processes without asking the database (so a reply never waits for it)."""
    return uuid.uuid4().hex


class QuestionLog:
    """The question log in one SQLite file; safe to share between threads and between processes.

    ``QuestionLog("traffic.db").record(index_answer)`` returns the question's
    id, which :meth:`add_feedback` takes later. Writes are synchronous; the
    HTTP service puts them on a background thread
    (:class:`faq_search.traffic.writer.LogWriter`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        redact: bool = True,
        retention_days: float | None = None,
        busy_timeout_s: float = 30.0,
    ) -> None:
        if retention_days is not None and retention_days <= 0:
            raise InputError(f"--retention-days {retention_days} must be positive")
        self.path = Path(path)
        self.redact = redact
        self.retention_days = retention_days
        if self.path.parent and not self.path.parent.is_dir():
            raise InputError(f"{self.path}: its folder does not exist; create it or choose another --log file")
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable SQLite question log ({exc}); choose another file") from None
        self._lock = threading.Lock()
        self._purged_at = 0.0
        migrate(self._db, self.path)
        self.purge_if_due()

    # -- writing ------------------------------------------------------------

    def ask(self, index: FaqIndex, question: str, k: int = 5, min_score: float | None = None) -> LoggedAnswer:
        """``index.ask`` for a bot, logged: the answer (kept at the threshold) and its question id.

        The log keeps the top ``k`` matches before the threshold, so the gaps
        report can use another threshold later.
        """
        import math

        from faq_search.index.records import Answer

        started = time.perf_counter()
        ranked = index.ask_batch([question], k=k, min_score=-math.inf)[0]
        answer = Answer.of(question, ranked, k, index.manifest.min_score if min_score is None else min_score)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        where = None if index.path is None else str(index.path)
        record = QuestionRecord.of(answer, latency_ms=latency_ms, index=where, ranked=ranked)
        self.write([record])
        return LoggedAnswer(record.id, answer)

    def record(
        self,
        answer: Answer,
        *,
        latency_ms: float | None = None,
        generation: int | None = None,
        index: str | None = None,
    ) -> str:
        """Log one answered question; returns its id (for :meth:`add_feedback`)."""
        record = QuestionRecord.of(answer, latency_ms=latency_ms, generation=generation, index=index)
        self.write([record])
        return record.id

    def write(self, records: Sequence[QuestionRecord], feedback: Sequence[Feedback] = ()) -> list[str | None]:
        """Write questions, then feedback, in one transaction; per feedback, None or why it was refused.

        Feedback on a question the log does not hold (a wrong id, or one already
        deleted by retention) is refused, not stored.
        """
        rows = [
            (
                r.id,
                r.asked_at,
                mask(r.question) if self.redact else r.question,
                int(r.answered),
                json.dumps([[m.id, m.score] for m in r.matches], separators=(",", ":")),
                r.latency_ms,
                r.generation,
                r.index,
                r.min_score,
            )
            for r in records
        ]
        refused: list[str | None] = []
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO questions (id, asked_at, question, answered, matches, latency_ms, generation, "
                "index_name, min_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            for item in feedback:
                if db.execute("SELECT 1 FROM questions WHERE id = ?", (item.question_id,)).fetchone() is None:
                    refused.append(f"no logged question has the id {item.question_id!r}; use the id /ask returned")
                    continue
                db.execute(
                    "INSERT INTO feedback (question_id, given_at, helpful, entry_id) VALUES (?, ?, ?, ?)",
                    (item.question_id, item.given_at or time.time(), int(item.helpful), item.entry_id),
                )
                refused.append(None)
        return refused

    def add_feedback(self, question_id: str, helpful: bool, entry_id: str | None = None) -> None:
        """Record whether the answer to a logged question helped (and which entry the customer chose)."""
        [problem] = self.write([], [Feedback(question_id, helpful, entry_id, time.time())])
        if problem is not None:
            raise InputError(problem)

    def purge(self, older_than_days: float) -> int:
        """Delete questions (and their feedback) older than ``older_than_days``; returns how many questions."""
        cutoff = time.time() - older_than_days * DAY_S
        with self._transaction() as db:
            db.execute(
                "DELETE FROM feedback WHERE question_id IN (SELECT id FROM questions WHERE asked_at < ?)", (cutoff,)
            )
            deleted = db.execute("DELETE FROM questions WHERE asked_at < ?", (cutoff,)).rowcount
        return int(deleted)

    def purge_if_due(self) -> int:
        """Apply the retention (if any) when it has not run for an hour in this process."""
        now = time.monotonic()
        if self.retention_days is None or (self._purged_at and now - self._purged_at < PURGE_EVERY_S):
            return 0
        self._purged_at = now
        return self.purge(self.retention_days)

    # -- reading ------------------------------------------------------------

    def questions(
        self, since: float | None = None, *, limit: int | None = None, index: str | None = None
    ) -> list[QuestionRecord]:
        """Logged questions (asked at or after ``since``, Unix seconds), oldest first.

        ``limit``: only the newest ``limit`` of them (a bound on what a report
        reads from a large log); ``index``: only those logged for that index.
        """
        where = "asked_at >= ?"
        params: list[float | str | int] = [since if since is not None else float("-inf")]
        if index is not None:
            where, params = where + " AND index_name = ?", [*params, index]
        query = (
            "SELECT id, asked_at, question, answered, matches, latency_ms, generation, index_name, min_score "
            f"FROM questions WHERE {where} ORDER BY asked_at DESC, id DESC"
        )
        if limit is not None:
            query, params = query + " LIMIT ?", [*params, int(limit)]
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        rows.reverse()
        return [
            QuestionRecord(
                id=row[0],
                asked_at=row[1],
                question=row[2],
                answered=bool(row[3]),
                matches=tuple(LoggedMatch(str(i), float(s)) for i, s in json.loads(row[4])),
                latency_ms=row[5],
                generation=row[6],
                index=row[7],
                min_score=row[8],
            )
            for row in rows
        ]

    def feedback(self, since: float | None = None) -> list[Feedback]:
        """Every feedback row (given at or after ``since``), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT question_id, helpful, entry_id, given_at FROM feedback WHERE given_at >= ? ORDER BY id",
                (since if since is not None else float("-inf"),),
            ).fetchall()
        return [Feedback(row[0], bool(row[1]), row[2], row[3]) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many questions, answered questions and feedback rows the log holds."""
        with self._lock:
            questions, answered = self._db.execute(
                "SELECT count(*), coalesce(sum(answered), 0) FROM questions"
            ).fetchone()
            feedback = self._db.execute("SELECT count(*) FROM feedback").fetchone()[0]
        return {"questions": int(questions), "answered": int(answered), "feedback": int(feedback)}

    # -- plumbing -----------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> QuestionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) under the log's lock."""

    def __init__(self, log: QuestionLog) -> None:
        self._log = log

    def __enter__(self) -> sqlite3.Connection:
        self._log._lock.acquire()
        try:
            self._log._db.execute("BEGIN IMMEDIATE")  # take the write lock now: waits out other writers
        except BaseException:
            self._log._lock.release()
            raise
        return self._log._db

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            self._log._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self._log._lock.release()
