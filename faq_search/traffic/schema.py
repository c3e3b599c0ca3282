"""The question log's SQLite schema: its version and the migrations that bring an older file up to date.

The version lives in the ``schema_version`` table. :func:`migrate` is the one
place that knows older schemas: it runs inside one write transaction, so two
processes opening an old file at once migrate it once, and it refuses a file
written by a newer faq-search rather than guessing at it. A new version is a
new script appended to :data:`MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from faq_search.errors import InputError

SCHEMA_VERSION = 2
MIGRATIONS: tuple[str, ...] = (
    # 1: questions with their top matches, and feedback on them.
    """
    CREATE TABLE questions (
        id TEXT PRIMARY KEY,
        asked_at REAL NOT NULL,
        question TEXT NOT NULL,
        answered INTEGER NOT NULL,
        matches TEXT NOT NULL,
        latency_ms REAL,
        generation INTEGER
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        question_id TEXT NOT NULL,
        given_at REAL NOT NULL,
        helpful INTEGER NOT NULL,
        entry_id TEXT
    );
    CREATE INDEX feedback_question ON feedback(question_id);
    """,
    # 2: which index answered (a service may serve several) and the threshold it applied; time index for --since.
    """
    ALTER TABLE questions ADD COLUMN index_name TEXT;
    ALTER TABLE questions ADD COLUMN min_score REAL;
    CREATE INDEX questions_asked_at ON questions(asked_at);
    """,
)


def migrate(db: sqlite3.Connection, path: Path, upto: int = SCHEMA_VERSION) -> int:
    """Bring the file's schema to version ``upto`` in one write transaction; returns the version it had.

    The one place that knows older schemas. A file of a newer version than
    this code knows is refused with the fix.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = _version(db)
        if found > SCHEMA_VERSION:
            raise InputError(
                f"{path}: question log schema version {found} is newer than this faq-search knows "
                f"({SCHEMA_VERSION}); upgrade faq-search or choose another --log file"
            )
        if found == 0 and _has_other_tables(db):
            raise InputError(f"{path}: is an SQLite file but not a faq-search question log; choose another file")
        for version in range(found + 1, upto + 1):
            for statement in _statements(MIGRATIONS[version - 1]):
                db.execute(statement)
        if found == 0:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (upto,))
        elif upto > found:
            db.execute("UPDATE schema_version SET version = ?", (upto,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found


def _version(db: sqlite3.Connection) -> int:
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if exists is None:
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _has_other_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone() is not None


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script (``executescript`` would commit the open transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            yield statement.strip()
