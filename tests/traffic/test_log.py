"""The question log on a real SQLite file: writing, reading, redaction, retention, migrations, processes, kills."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faq_search.corpus import FaqEntry
from faq_search.errors import InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.records import Answer, Match
from faq_search.traffic.log import DAY_S, Feedback, LoggedMatch, QuestionLog, QuestionRecord, new_question_id
from faq_search.traffic.schema import SCHEMA_VERSION, migrate
from faq_search.traffic.writer import LogWriter
from tests.conftest import REPO, FakeEncoder

PARCEL = FaqEntry("shipping-01", "Parcels arrive in 3 days.", ("Where is my parcel?",))
RETURNS = FaqEntry("returns-01", "Return within 30 days.", ("Can I return it?",))


def answer(question: str, score: float = 0.8, min_score: float | None = None) -> Answer:
    matches = [Match(PARCEL, score, 1, "question", 0.9), Match(RETURNS, score / 2, 2, "answer", 0.5)]
    return Answer.of(question, matches, 5, min_score)


def record(question: str, asked_at: float | None = None, batch: int = 0) -> QuestionRecord:
    return QuestionRecord(
        id=new_question_id(),
        asked_at=time.time() if asked_at is None else asked_at,
        question=question,
        answered=True,
        matches=(LoggedMatch("shipping-01", 0.8), LoggedMatch("returns-01", 0.4)),
        latency_ms=3.5,
        generation=batch,
    )


def test_a_question_and_its_feedback_round_trip(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log:
        qid = log.record(answer("where is my parcel", min_score=0.5), latency_ms=12.5, generation=3, index="shop")
        log.add_feedback(qid, helpful=False, entry_id="returns-01")
        [stored] = log.questions()
        assert stored.id == qid and stored.question == "where is my parcel" and stored.answered
        assert stored.matches == (LoggedMatch("shipping-01", 0.8),)  # the answer's matches: those kept at 0.5
        assert (stored.latency_ms, stored.generation, stored.index, stored.min_score) == (12.5, 3, "shop", 0.5)
        [vote] = log.feedback()
        assert (vote.question_id, vote.helpful, vote.entry_id) == (qid, False, "returns-01")
        assert log.counts() == {"questions": 1, "answered": 1, "feedback": 1}
    db = sqlite3.connect(tmp_path / "log.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_ask_logs_the_matches_before_the_threshold(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build([PARCEL, RETURNS], encoder=fake_encoder)
    with QuestionLog(tmp_path / "log.db") as log:
        logged = log.ask(index, "where is my parcel", k=2, min_score=1.0)
        [stored] = log.questions()
    assert not logged.answer.answered and logged.question_id == stored.id and not stored.answered
    assert [m.id for m in stored.matches] == ["shipping-01", "returns-01"] and stored.latency_ms is not None


def test_an_unanswered_question_is_logged_with_its_matches_below_the_threshold(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log:
        log.record(answer("do you sell bikes", score=0.2, min_score=0.5))
        [stored] = log.questions()
    assert not stored.answered and stored.top_score is None and stored.min_score == 0.5


def test_feedback_on_an_unknown_question_is_refused(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log, pytest.raises(InputError, match="no logged question"):
        log.add_feedback(new_question_id(), helpful=True)
    with QuestionLog(tmp_path / "log.db") as log:
        assert log.feedback() == []


def test_questions_are_redacted_before_they_are_written_unless_turned_off(tmp_path: Path) -> None:
    secret = "refund to ann@example.com, card 4111 1111 1111 1111"
    with QuestionLog(tmp_path / "on.db") as log:
        log.record(answer(secret))
    with QuestionLog(tmp_path / "off.db", redact=False) as log:
        log.record(answer(secret))
    on = b"".join(p.read_bytes() for p in tmp_path.glob("on.db*"))  # the database, and its WAL if left
    assert b"ann@example.com" not in on and b"4111" not in on
    with QuestionLog(tmp_path / "on.db") as log:
        assert log.questions()[0].question == "refund to [email], card [card]"
    with QuestionLog(tmp_path / "off.db") as log:
        assert log.questions()[0].question == secret


def test_retention_deletes_old_questions_and_their_feedback(tmp_path: Path) -> None:
    now = time.time()
    with QuestionLog(tmp_path / "log.db") as log:
        old, recent = record("old", now - 40 * DAY_S), record("recent", now - 2 * DAY_S)
        log.write([old, recent], [Feedback(old.id, True), Feedback(recent.id, False)])
    with QuestionLog(tmp_path / "log.db", retention_days=30) as log:
        assert [q.question for q in log.questions()] == ["recent"]
        assert [f.question_id for f in log.feedback()] == [recent.id]
        assert log.purge(1) == 1 and log.questions() == []
    with pytest.raises(InputError, match="retention"):
        QuestionLog(tmp_path / "log.db", retention_days=0)


def test_since_reads_only_newer_questions(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log:
        log.write([record("monday", 1000.0), record("tuesday", 2000.0)])
        assert [q.question for q in log.questions(since=1500.0)] == ["tuesday"]


def test_a_limit_reads_the_newest_questions_and_an_index_only_its_own(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db") as log:
        days = [dataclasses.replace(record(day, at), index=where) for day, at, where in
                [("mon", 1000.0, "a"), ("tue", 2000.0, "b"), ("wed", 3000.0, "a"), ("thu", 4000.0, "a")]]  # fmt: skip
        log.write(days)
        assert [q.question for q in log.questions(limit=2)] == ["wed", "thu"]  # the newest two, oldest first
        assert [q.question for q in log.questions(index="a")] == ["mon", "wed", "thu"]
        assert [q.question for q in log.questions(since=1500.0, limit=5, index="b")] == ["tue"]


def test_flush_returns_once_everything_queued_before_it_is_written(tmp_path: Path) -> None:
    writer = LogWriter(QuestionLog(tmp_path / "log.db"))
    for n in range(50):
        writer.submit(record(f"question {n}"))
    writer.flush()
    with QuestionLog(tmp_path / "log.db") as log:
        assert log.counts()["questions"] == 50
    writer.close()


def test_an_older_schema_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, path, upto=1) == 0
    db.execute(
        "INSERT INTO questions (id, asked_at, question, answered, matches, latency_ms, generation) "
        "VALUES ('q1', 100.0, 'where is my parcel', 1, '[[\"shipping-01\", 0.7]]', 5.0, 2)"
    )
    db.execute("INSERT INTO feedback (question_id, given_at, helpful, entry_id) VALUES ('q1', 101.0, 1, NULL)")
    assert db.execute("SELECT version FROM schema_version").fetchone() == (1,)
    db.close()
    with QuestionLog(path) as log:
        [old] = log.questions()
        assert (old.id, old.question, old.matches, old.index, old.min_score) == (
            "q1", "where is my parcel", (LoggedMatch("shipping-01", 0.7),), None, None,
        )  # fmt: skip
        assert log.feedback() == [Feedback("q1", True, None, 101.0)]
        log.record(answer("new question"), index="shop")
        assert [q.index for q in log.questions()] == [None, "shop"]
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'questions_asked_at'").fetchone() is not None


def test_a_newer_schema_or_a_foreign_file_is_refused(tmp_path: Path) -> None:
    with QuestionLog(tmp_path / "log.db"):
        pass
    db = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(InputError, match="newer than this faq-search knows"):
        QuestionLog(tmp_path / "log.db")
    other = sqlite3.connect(tmp_path / "other.db", isolation_level=None)
    other.execute("CREATE TABLE invoices (id INTEGER)")
    other.close()
    with pytest.raises(InputError, match="not a faq-search question log"):
        QuestionLog(tmp_path / "other.db")
    (tmp_path / "text.db").write_text("hello, I am not a database" * 100)
    with pytest.raises(InputError, match="SQLite"):
        QuestionLog(tmp_path / "text.db")


def test_the_background_writer_writes_everything_and_orders_feedback_after_its_question(tmp_path: Path) -> None:
    writer = LogWriter(QuestionLog(tmp_path / "log.db"))
    refused = []
    for n in range(200):
        rec = record(f"question {n}")
        writer.submit(rec)
        refused.append(writer.feedback(Feedback(rec.id, n % 2 == 0)))
    unknown = writer.feedback(Feedback(new_question_id(), True))
    assert [f.result(timeout=30) for f in refused] == [None] * 200
    assert "no logged question" in str(unknown.result(timeout=30))
    writer.close()
    with QuestionLog(tmp_path / "log.db") as log:
        assert log.counts() == {"questions": 200, "answered": 200, "feedback": 200}
    assert writer.written == 200 and writer.dropped == 0


def _write_from_process(path: str, worker: int, count: int) -> None:
    """One writer process: ``count`` questions in small transactions, with feedback on each."""
    with QuestionLog(path, busy_timeout_s=60) as log:
        for n in range(0, count, 5):
            records = [record(f"worker {worker} question {n + i}", batch=worker) for i in range(5)]
            log.write(records, [Feedback(r.id, True) for r in records])


def test_several_processes_write_one_file_safely(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_from_process, args=(path, w, 100)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with QuestionLog(path) as log:
        questions = log.questions()
        assert log.counts() == {"questions": 400, "answered": 400, "feedback": 400}
    for worker in range(4):
        texts = {q.question for q in questions if q.generation == worker}
        assert texts == {f"worker {worker} question {n}" for n in range(100)}
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


KILLED_WRITER = """
import sys, time
from faq_search.traffic.log import Feedback, QuestionLog
from tests.traffic.test_log import record
log = QuestionLog(sys.argv[1])
batch = 0
while True:
    records = [record(f"batch {batch} item {i}", batch=batch) for i in range(200)]
    log.write(records, [Feedback(r.id, True) for r in records])
    print(batch, flush=True)
    batch += 1
"""


def test_a_writer_killed_mid_stream_leaves_a_consistent_file(tmp_path: Path) -> None:
    """SIGKILL lands inside a 200-row transaction or between two: either way whole batches or none."""
    path = tmp_path / "log.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert child.stdout is not None
    committed = [int(child.stdout.readline()) for _ in range(8)]
    time.sleep(0.013)  # somewhere inside a later batch
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with QuestionLog(path) as log:
        questions, feedback = log.questions(), log.feedback()
    sizes: dict[int, int] = {}
    for q in questions:
        assert q.generation is not None and len(q.matches) == 2
        sizes[q.generation] = sizes.get(q.generation, 0) + 1
    assert set(committed) <= set(sizes) and set(sizes.values()) == {200}
    assert sorted(sizes) == list(range(len(sizes)))
    assert {f.question_id for f in feedback} == {q.id for q in questions}


def test_reading_needs_an_existing_log(tmp_path: Path) -> None:
    from faq_search.traffic.gaps import find_gaps
    from faq_search.traffic.labels import feedback_queries

    with pytest.raises(InputError, match="no question log there"):
        feedback_queries(tmp_path / "missing.db")
    with pytest.raises(InputError, match="no question log there"):
        find_gaps(tmp_path / "missing.db", index=None)  # type: ignore[arg-type]  # never reached
    assert not (tmp_path / "missing.db").exists()
