"""How ``faq-search serve`` runs: one frozen record of its settings and the API's fixed limits.

Every limit has a safe default; the record travels to ``--workers N``
processes as JSON in ``$FAQ_SEARCH_SERVE_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from faq_search.errors import InputError

TOKEN_ENV = "FAQ_SEARCH_TOKEN"
TOKENS_ENV = "FAQ_SEARCH_TOKENS"
"""A JSON file mapping tokens to the index names they may read: ``{"t1": ["shop"], "t2": "*"}``."""
INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What an index name served under ``/indexes/{name}/`` may be."""
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
    runtime: str | None = None  # torch, onnx or auto (None: $FAQ_SEARCH_RUNTIME, else auto); see encoding.runtime
    named: tuple[tuple[str, Path], ...] = ()  # `--index NAME=DIR`: indexes served under /indexes/NAME/
    log_path: str | None = None  # the SQLite question log (--log); None: nothing is logged
    redact: bool = True  # mask e-mail addresses, phone and card numbers in logged questions
    retention_days: float | None = None  # delete logged questions older than this

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_dir", Path(self.index_dir))  # accept a str from library callers
        object.__setattr__(self, "named", tuple((str(n), Path(d)) for n, d in self.named))
        names = [name for name, _ in self.named]
        for name in names:
            if not INDEX_NAME.fullmatch(name):
                raise InputError(
                    f"index name {name!r} is not allowed; use letters, digits, '_', '-' and '.' (at most 64)"
                )
        if len(set(names)) != len(names):
            raise InputError(f"index names must differ; got {', '.join(names)}")
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

    @property
    def served(self) -> tuple[tuple[str, Path], ...]:
        """``(name, directory)`` of every index served: the named ones, or ``index_dir`` under its folder's name."""
        return self.named or ((self.index_dir.name or "default", self.index_dir),)

    @property
    def single(self) -> str | None:
        """The name of the one index also served at ``/ask``, ``/index``, ... (None when there are several)."""
        return self.served[0][0] if len(self.served) == 1 else None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        named = [[name, str(path)] for name, path in self.named]
        return json.dumps({**data, "index_dir": str(self.index_dir), "named": named})

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = json.loads(text)
        named = tuple((name, Path(path)) for name, path in data.get("named", ()))
        return cls(**{**data, "index_dir": Path(data["index_dir"]), "named": named})


def parse_index_option(values: list[str]) -> tuple[Path, tuple[tuple[str, Path], ...]]:
    """``serve --index`` values -> ``(index_dir, named)``: ``DIR`` alone, or ``NAME=DIR`` each.

    ``["indexes/default"]`` -> ``(Path("indexes/default"), ())``;
    ``["shop=indexes/shop", "de=indexes/de"]`` -> ``(Path("indexes/shop"), (("shop", ...), ("de", ...)))``.
    """
    named: list[tuple[str, Path]] = []
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            if len(values) > 1:
                raise InputError(f"--index {value!r}: give each of several indexes as NAME=DIR (shop=indexes/shop)")
            return Path(value), ()
        named.append((name.strip(), Path(folder.strip())))
    return named[0][1], tuple(named)


def read_tokens(path: str | Path) -> dict[str, frozenset[str] | None]:
    """The token file named by ``$FAQ_SEARCH_TOKENS``: token -> index names it may read (None: every index).

    The file is a JSON object ``{"token": ["shop", "support-de"], "admin-token": "*"}``.
    """
    where = f"${TOKENS_ENV} ({path})"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror or exc}); point it at a JSON file") from None
    except ValueError as exc:
        raise InputError(f"{where} is not valid JSON ({exc}); write an object of token: [index names]") from None
    if not isinstance(data, Mapping) or not data:
        raise InputError(f'{where} must be a JSON object of token: [index names], e.g. {{"s3cret": ["shop"]}}')
    tokens: dict[str, frozenset[str] | None] = {}
    for position, (token, names) in enumerate(data.items(), start=1):
        if not isinstance(token, str) or len(token) < 8 or token != token.strip():
            raise InputError(f"{where}: token #{position} is shorter than 8 characters or padded; use a long secret")
        if names == "*":
            tokens[token] = None
        elif isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            tokens[token] = frozenset(names)
        else:
            raise InputError(f'{where}: token #{position} must map to a list of index names or "*"')
    return tokens
