"""How ``faq-search serve`` runs: one frozen record of its settings and the API's fixed limits.

Every limit has a safe default; the record travels to ``--workers N``
processes as JSON in ``$FAQ_SEARCH_SERVE_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from faq_search.errors import InputError

TOKEN_ENV = "FAQ_SEARCH_TOKEN"
CONFIG_ENV = "FAQ_SEARCH_SERVE_CONFIG"  # how `--workers N` hands the config to its worker processes
MAX_QUESTION_CHARS = 2000
MAX_TEXTS = 64  # questions per /ask/batch, texts per /embed
MAX_K = 100


@dataclass(frozen=True)
class ServeConfig:
    """How ``faq-search serve`` runs; every limit has a safe default."""

    index_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    model_path: str | None = None  # where the bundle's model lives now, if it moved
    threads: int | None = None  # torch threads per process
    batching: bool = True
    max_batch: int = 32  # most texts per encoder call
    max_wait_ms: float = 5.0  # longest a question waits for others to join its batch
    max_batch_chars: int = 2048  # most characters per encoder call (each text counts for at most 1,024)
    max_pending: int = 1024  # questions queued beyond this get 503 (one client: beyond a quarter of it)
    max_body_bytes: int = 1 << 20
    timeout_s: float = 30.0  # per request: reading the body, and waiting for the answer
    watch_s: float = 1.0  # seconds between checks of the bundle on disk; 0 turns watching off
    access_log: bool = True
    max_connections: int = 1000  # open connections; past it the one waiting longest for its headers is closed
    header_timeout_s: float = 10.0  # a connection must send a request's headers within this, or it is closed
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    log_path: str | None = None  # the SQLite question log (--log); None: nothing is logged
    redact: bool = True  # mask e-mail addresses, phone and card numbers in logged questions
    retention_days: float | None = None  # delete logged questions older than this

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_dir", Path(self.index_dir))  # accept a str from library callers
        checks = [
            (self.workers >= 1, f"--workers {self.workers} must be at least 1"),
            (0 <= self.port <= 65535, f"--port {self.port} must be between 0 and 65535"),
            (self.max_batch >= 1, f"--max-batch {self.max_batch} must be at least 1"),
            (self.max_wait_ms >= 0, f"--max-wait-ms {self.max_wait_ms} must not be negative"),
            (self.max_batch_chars >= 1, f"max_batch_chars {self.max_batch_chars} must be at least 1"),
            (self.max_connections >= 1, f"max_connections {self.max_connections} must be at least 1"),
            (self.header_timeout_s > 0, f"header_timeout_s {self.header_timeout_s} must be positive"),
            (self.keep_alive_s > 0, f"keep_alive_s {self.keep_alive_s} must be positive"),
            (self.max_pending >= 1, f"max_pending {self.max_pending} must be at least 1"),
            (self.max_body_bytes >= 1024, f"max_body_bytes {self.max_body_bytes} must be at least 1024"),
            (self.timeout_s > 0, f"--timeout {self.timeout_s} must be positive"),
            (self.watch_s >= 0, f"--watch {self.watch_s} must be 0 (off) or a number of seconds"),
            (self.retention_days is None or self.retention_days > 0, "--retention-days must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "index_dir": str(self.index_dir)})

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = json.loads(text)
        return cls(**{**data, "index_dir": Path(data["index_dir"])})
