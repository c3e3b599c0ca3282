"""The HTTP service behind ``faq-search serve``: FastAPI over :class:`~faq_search.index.faq_index.FaqIndex`.

A helpdesk bot in another process or language calls ``POST /ask``; a support
agent uses the search page at ``/``. The server is a thin edge: it validates,
hands questions to the engine and renders ``Match.to_dict()`` (the same JSON
as ``faq-search ask --json``). Three things are its own:

- **Request batching.** Concurrent questions are gathered into one encoder
  call per round (at most ``max_batch`` texts, waiting at most ``max_wait_ms``
  after the oldest one arrived) on one model thread, so throughput grows with
  load and the event loop never runs model work.
- **Hot reload.** A watcher notices when the bundle directory is replaced
  (``faq-search index`` swaps it in atomically), loads and warms the new
  bundle in the background, reusing the loaded encoder when its identity is
  unchanged, and swaps it in with one assignment. Requests in flight keep the
  index they started with; a bundle that fails to load is reported and the
  old one keeps serving. ``POST /reload`` does the same on demand.
- **Safety.** Binds to 127.0.0.1 by default; when ``$FAQ_SEARCH_TOKEN`` is set,
  every API endpoint but ``/health`` needs ``Authorization: Bearer <token>``;
  bodies, questions and batch sizes are bounded; every request has a time
  limit; every error is a JSON object with a one-line ``error`` naming the fix.

What it is not: a load balancer. ``--workers N`` starts N processes, each
loading its own model and batching only its own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from faq_search.errors import FaqSearchError, InputError, SettingsMismatchError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from faq_search.index.faq_index import FaqIndex, Match

log = logging.getLogger("faq_search.service.app")

TOKEN_ENV = "FAQ_SEARCH_TOKEN"
CONFIG_ENV = "FAQ_SEARCH_SERVE_CONFIG"  # how `--workers N` hands the config to its worker processes
MAX_QUESTION_CHARS = 2000
MAX_TEXTS = 64  # questions per /ask/batch, texts per /embed
MAX_K = 100
PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Served without the token: the health probe, and the page and API docs, which hold no FAQ data."""
_NO_THRESHOLD = float("-inf")  # the engine returns every top-k match; each request applies its own threshold


# -- configuration --------------------------------------------------------------


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
    max_pending: int = 1024  # questions queued beyond this get 503
    max_body_bytes: int = 1 << 20
    timeout_s: float = 30.0  # per request: reading the body, and waiting for the answer
    watch_s: float = 1.0  # seconds between checks of the bundle on disk; 0 turns watching off
    access_log: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_dir", Path(self.index_dir))  # accept a str from library callers
        checks = [
            (self.workers >= 1, f"--workers {self.workers} must be at least 1"),
            (0 <= self.port <= 65535, f"--port {self.port} must be between 0 and 65535"),
            (self.max_batch >= 1, f"--max-batch {self.max_batch} must be at least 1"),
            (self.max_wait_ms >= 0, f"--max-wait-ms {self.max_wait_ms} must not be negative"),
            (self.max_pending >= 1, f"max_pending {self.max_pending} must be at least 1"),
            (self.max_body_bytes >= 1024, f"max_body_bytes {self.max_body_bytes} must be at least 1024"),
            (self.timeout_s > 0, f"--timeout {self.timeout_s} must be positive"),
            (self.watch_s >= 0, f"--watch {self.watch_s} must be 0 (off) or a number of seconds"),
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


# -- the index being served, and its hot reload -----------------------------------


@dataclass(frozen=True)
class Loaded:
    """One loaded bundle: requests capture this record once and use it to the end."""

    index: FaqIndex
    generation: int
    loaded_at: float
    content: str  # fingerprint of the manifest it was loaded from


def bundle_fingerprint(manifest_data: dict[str, Any]) -> str:
    """Identity of a bundle's content: its creation time and the checksums of its files."""
    files = manifest_data.get("files") or {}
    key = [manifest_data.get("created"), sorted((name, dict(info).get("sha256")) for name, info in files.items())]
    return hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()


def disk_state(index_dir: Path) -> tuple[int, ...] | None:
    """A cheap signature of the bundle directory: changes when it is swapped or its manifest rewritten."""
    try:
        folder = os.stat(index_dir)
        manifest = os.stat(index_dir / "manifest.json")
    except OSError:
        return None  # absent for a moment (non-atomic replace) or not there yet
    return (folder.st_dev, folder.st_ino, manifest.st_ino, manifest.st_mtime_ns, manifest.st_size)


def disk_fingerprint(index_dir: Path) -> str | None:
    try:
        return bundle_fingerprint(json.loads((index_dir / "manifest.json").read_bytes()))
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def open_index(config: ServeConfig, previous: FaqIndex | None = None) -> FaqIndex:
    """Load the bundle and warm its encoder, reusing ``previous``'s encoder when the bundle allows it."""
    from faq_search.index.faq_index import FaqIndex

    index: FaqIndex | None = None
    if previous is not None:
        try:
            index = FaqIndex.load(config.index_dir, encoder=previous.encoder)
        except SettingsMismatchError:
            log.info("the new bundle needs another encoder; loading it")
    if index is None:
        index = FaqIndex.load(config.index_dir, model_path=config.model_path, threads=config.threads)
    warm_up(index)
    return index


def warm_up(index: FaqIndex) -> None:
    """Load the model (if new) and run one question through everything, before any request waits on it."""
    index.ask_batch(["warm up"], k=1)


class IndexHolder:
    """The current :class:`Loaded` bundle, replaced whole on reload; never mutated in place."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._current: Loaded | None = None
        self._seen_disk: tuple[int, ...] | None = None
        self._lock = asyncio.Lock()
        self.reloads = 0
        self.last_error: str | None = None

    @property
    def current(self) -> Loaded:
        if self._current is None:
            raise FaqSearchError("the index is not loaded yet; wait for the server to finish starting")
        return self._current

    async def start(self, index: FaqIndex | None) -> None:
        """Load (or adopt) the first index and warm it, off the event loop."""
        self._seen_disk = await asyncio.to_thread(disk_state, self.config.index_dir)
        if index is None:
            index = await asyncio.to_thread(open_index, self.config)
        else:
            await asyncio.to_thread(warm_up, index)
        self._install(index)

    def _install(self, index: FaqIndex) -> None:
        generation = 1 if self._current is None else self._current.generation + 1
        content = bundle_fingerprint(index.manifest.to_dict())
        self._current = Loaded(index=index, generation=generation, loaded_at=time.time(), content=content)

    async def reload(self, *, only_if_changed: bool = False) -> bool:
        """Load the bundle on disk and swap it in; False when skipped because nothing changed.

        Raises the library error when the new bundle cannot be loaded; the old
        index keeps serving either way.
        """
        async with self._lock:
            previous = self.current
            if only_if_changed:
                found = await asyncio.to_thread(disk_fingerprint, self.config.index_dir)
                if found is None or found == previous.content:
                    return False
            try:
                try:
                    index = await asyncio.to_thread(open_index, self.config, previous.index)
                except FaqSearchError:
                    raise
                except Exception as exc:  # not a library error: still keep serving, and say what happened
                    log.exception("unexpected error while loading %s", self.config.index_dir)
                    raise FaqSearchError(f"{type(exc).__name__}: {exc}; see the server log") from exc
            except FaqSearchError as exc:
                self.last_error = str(exc)
                log.error(
                    "reload of %s failed, still serving generation %d: %s",
                    self.config.index_dir,
                    previous.generation,
                    exc,
                )
                raise
            self._install(index)
            self.reloads += 1
            self.last_error = None
            log.info(
                "reloaded %s: generation %d, %d entries", self.config.index_dir, self.current.generation, len(index)
            )
            return True

    async def watch(self) -> None:
        """Poll the bundle directory and reload when it was replaced; runs until cancelled."""
        while True:
            await asyncio.sleep(self.config.watch_s)
            state = await asyncio.to_thread(disk_state, self.config.index_dir)
            if state is None or state == self._seen_disk:
                continue
            self._seen_disk = state
            with contextlib.suppress(FaqSearchError):  # logged and kept in last_error; the next change retries
                await self.reload(only_if_changed=True)


# -- request batching --------------------------------------------------------------


Kind = Literal["ask", "embed"]


@dataclass
class Job:
    """Texts one request needs from the model, and where its result goes."""

    index: FaqIndex
    kind: Kind
    texts: tuple[str, ...]
    k: int = 1
    future: asyncio.Future[Any] | None = None
    queued_at: float = 0.0


def timed_run_jobs(jobs: Sequence[Job]) -> tuple[list[Any], float]:
    """:func:`run_jobs` and the seconds it took on its thread."""
    started = time.perf_counter()
    results = run_jobs(jobs)
    return results, time.perf_counter() - started


def run_jobs(jobs: Sequence[Job]) -> list[Any]:
    """Run jobs with one model call per (index, kind) group; a result or an exception per job.

    Runs on the model thread. A failing group is retried job by job, so one
    bad request never fails the others gathered with it.
    """
    results: list[Any] = [None] * len(jobs)
    groups: dict[tuple[int, str], list[int]] = {}
    for position, job in enumerate(jobs):
        groups.setdefault((id(job.index), job.kind), []).append(position)
    for positions in groups.values():
        members = [jobs[p] for p in positions]
        try:
            values = _run_group(members)
        except Exception as exc:
            values = [exc] if len(members) == 1 else [_run_one(job) for job in members]
        for position, value in zip(positions, values, strict=True):
            results[position] = value
    return results


def _run_one(job: Job) -> Any:
    try:
        return _run_group([job])[0]
    except Exception as exc:
        return exc


def _run_group(jobs: Sequence[Job]) -> list[Any]:
    """One engine call for jobs sharing an index and a kind, split back per job."""
    index = jobs[0].index
    texts = [text for job in jobs for text in job.texts]
    if jobs[0].kind == "ask":
        answers: Any = index.ask_batch(texts, k=max(job.k for job in jobs), min_score=_NO_THRESHOLD)
    else:
        answers = index.encoder.encode(texts)
    out, start = [], 0
    for job in jobs:
        out.append(answers[start : start + len(job.texts)])
        start += len(job.texts)
    return out


class Overloaded(Exception):
    """More questions are queued than the server accepts."""


@dataclass
class BatchStats:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest: int = 0
    model_seconds: float = 0.0  # time spent in engine calls; with batching off, overlapping calls add up

    def to_dict(self) -> dict[str, Any]:
        mean = self.texts / self.batches if self.batches else 0.0
        data = {**dataclasses.asdict(self), "model_seconds": round(self.model_seconds, 3)}
        return {**data, "mean_texts_per_call": round(mean, 2)}


class Batcher:
    """Gathers concurrent requests into shared model calls on one model thread.

    A round starts when a job is queued and closes when ``max_batch`` texts
    are gathered or ``max_wait`` has passed since the oldest job arrived;
    while the model works, new jobs queue for the next round. With batching
    off, each request calls the model on its own from a thread pool (the
    baseline the benchmark compares with).
    """

    def __init__(self, config: ServeConfig) -> None:
        self.enabled = config.batching
        self.max_batch = config.max_batch
        self.max_wait = config.max_wait_ms / 1000
        self.max_pending = config.max_pending
        self.stats = BatchStats()
        self._pending: deque[Job] = deque()
        self._queued_texts = 0
        self._wakeup = asyncio.Event()
        self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faq-model")
        self._pool = ThreadPoolExecutor(thread_name_prefix="faq-request")
        self._worker: asyncio.Task[None] | None = None
        self._free_at = 0.0

    def start(self) -> None:
        if self.enabled:
            self._worker = asyncio.create_task(self._run(), name="faq-search batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._pending:
            job = self._pending.popleft()
            if job.future is not None and not job.future.done():
                job.future.set_exception(Overloaded("the server is shutting down"))
        self._model.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, job: Job) -> Any:
        """The job's result (one list per text); raises its error, or :class:`Overloaded`."""
        loop = asyncio.get_running_loop()
        if self._queued_texts + len(job.texts) > self.max_pending:
            raise Overloaded(f"{self._queued_texts} questions are already waiting")
        self.stats.requests += 1
        if not self.enabled:
            self._queued_texts += len(job.texts)
            try:
                self._count_call(len(job.texts))
                results, seconds = await loop.run_in_executor(self._pool, timed_run_jobs, [job])
                self.stats.model_seconds += seconds
                result = results[0]
            finally:
                self._queued_texts -= len(job.texts)
        else:
            job.future = loop.create_future()
            job.queued_at = loop.time()
            self._pending.append(job)
            self._queued_texts += len(job.texts)
            self._wakeup.set()
            result = await job.future
        if isinstance(result, BaseException):
            raise result
        return result

    def _count_call(self, texts: int) -> None:
        self.stats.batches += 1
        self.stats.texts += texts
        self.stats.largest = max(self.stats.largest, texts)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait from the later of: the oldest arrival, the model becoming free (so clients
            # answered by the last round can join this one). Bounded by max_wait either way.
            deadline = max(self._pending[0].queued_at, self._free_at) + self.max_wait
            while self._queued_texts < self.max_batch and (remaining := deadline - loop.time()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            jobs = self._take()
            if not jobs:
                continue
            self._count_call(sum(len(job.texts) for job in jobs))
            try:
                results, seconds = await loop.run_in_executor(self._model, timed_run_jobs, jobs)
                self.stats.model_seconds += seconds
            except Exception as exc:  # the executor itself failed: tell every waiting request
                results = [exc] * len(jobs)
            self._free_at = loop.time()
            for job, result in zip(jobs, results, strict=True):
                if job.future is not None and not job.future.done():
                    job.future.set_result(result)

    def _take(self) -> list[Job]:
        """The next round: queued jobs up to ``max_batch`` texts (at least one job), skipping abandoned ones."""
        jobs: list[Job] = []
        size = 0
        while self._pending and (not jobs or size + len(self._pending[0].texts) <= self.max_batch):
            job = self._pending.popleft()
            self._queued_texts -= len(job.texts)
            if job.future is not None and job.future.done():
                continue  # timed out or the client went away: do not spend the model on it
            jobs.append(job)
            size += len(job.texts)
        return jobs


# -- the HTTP schema -------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskRequest(_Body):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The customer's question.")
    k: int = Field(5, ge=1, le=MAX_K, description="How many answers to return.")
    min_score: float | None = Field(
        None, allow_inf_nan=False, description="Leave out answers scoring below this (default: the index's threshold)."
    )


class AskBatchRequest(_Body):
    questions: list[str] = Field(min_length=1, max_length=MAX_TEXTS)
    k: int = Field(5, ge=1, le=MAX_K)
    min_score: float | None = Field(None, allow_inf_nan=False)


class EmbedRequest(_Body):
    texts: list[str] = Field(min_length=1, max_length=MAX_TEXTS)


class MatchOut(BaseModel):
    """``Match.to_dict()``: ``score`` ranks (cosine, plus BM25 evidence when the index fuses it)."""

    model_config = ConfigDict(extra="allow")

    rank: int
    score: float
    cosine: float | None = None
    lexical: float | None = None
    field: str
    id: str
    question: str | None
    answer: str
    metadata: dict[str, Any]


class AskResponse(BaseModel):
    question: str
    answered: bool
    min_score: float | None
    matches: list[MatchOut]


class AskBatchResponse(BaseModel):
    results: list[AskResponse]


class EmbedResponse(BaseModel):
    model: str
    layer: str
    pooling: str
    dimension: int
    vectors: list[list[float]]


class ErrorResponse(BaseModel):
    error: str


# -- the application -------------------------------------------------------------


class HttpError(Exception):
    """An error for the client: a status code and one line naming the fix."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def create_app(config: ServeConfig, index: FaqIndex | None = None) -> FastAPI:
    """The ASGI app serving ``config.index_dir`` (or ``index``, an already loaded copy of it).

    The index is loaded and warmed when the app starts (its lifespan), not on
    the first request. ``$FAQ_SEARCH_TOKEN`` is read here.
    """
    from fastapi import FastAPI, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.security import HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from faq_search.index.faq_index import Answer

    holder = IndexHolder(config)
    batcher = Batcher(config)
    token = os.environ.get(TOKEN_ENV) or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await holder.start(index)
        batcher.start()
        watcher = asyncio.create_task(holder.watch()) if config.watch_s > 0 else None
        loaded = holder.current
        batching = "on" if config.batching else "off"
        log.info(
            "serving %s: %d entries, %s; batching %s",
            config.index_dir,
            len(loaded.index),
            _describe(loaded.index),
            batching,
        )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            await batcher.stop()

    app = FastAPI(
        title="faq-search",
        summary="Semantic FAQ retrieval over HTTP: ranked answers with cosine scores.",
        version=_version(),
        lifespan=lifespan,
        responses={
            400: {"model": ErrorResponse},
            401: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
        },
    )
    app.state.holder = holder
    app.state.batcher = batcher
    app.add_middleware(Guard, token=token, max_body_bytes=config.max_body_bytes, timeout_s=config.timeout_s)
    # Documents the scheme in /docs; the Guard middleware enforces it before any body is read.
    bearer = [] if token is None else [Security(HTTPBearer(auto_error=False))]

    async def answer(kind: Kind, texts: Sequence[str], k: int = 1) -> tuple[Loaded, Any]:
        loaded = holder.current
        job = Job(index=loaded.index, kind=kind, texts=tuple(texts), k=k)
        try:
            result = await asyncio.wait_for(batcher.submit(job), config.timeout_s)
        except TimeoutError:
            raise HttpError(
                504, f"no answer within {config.timeout_s:g} s; retry, add --workers, or raise --timeout"
            ) from None
        except Overloaded as exc:
            raise HttpError(
                503, f"the server is overloaded ({exc}); retry in a moment or add --workers", {"Retry-After": "1"}
            ) from None
        return loaded, result

    def shape(
        question: str, matches: Sequence[Match], k: int, min_score: float | None, loaded: Loaded
    ) -> dict[str, Any]:
        threshold = loaded.index.manifest.min_score if min_score is None else min_score
        return Answer.of(question, matches, k, threshold).to_dict()

    def reply(content: Any, loaded: Loaded) -> JSONResponse:
        return JSONResponse(content, headers={"X-Faq-Index-Generation": str(loaded.generation)})

    @app.post("/ask", response_model=AskResponse, dependencies=bearer, tags=["search"])
    async def ask(body: AskRequest) -> Response:
        """Ranked answers to one question (the JSON of `faq-search ask --json`)."""
        text = _question(body.question, "question")
        loaded, result = await answer("ask", [text], body.k)
        return reply(shape(body.question, result[0], body.k, body.min_score, loaded), loaded)

    @app.post("/ask/batch", response_model=AskBatchResponse, dependencies=bearer, tags=["search"])
    async def ask_batch(body: AskBatchRequest) -> Response:
        """Ranked answers to several questions, in order; they share model calls with other requests."""
        texts = [_question(q, f"questions.{i}") for i, q in enumerate(body.questions)]
        loaded, result = await answer("ask", texts, body.k)
        results = [shape(q, m, body.k, body.min_score, loaded) for q, m in zip(body.questions, result, strict=True)]
        return reply({"results": results}, loaded)

    @app.post("/embed", response_model=EmbedResponse, dependencies=bearer, tags=["search"])
    async def embed(body: EmbedRequest) -> Response:
        """Sentence vectors (unit length) computed with the bundle's encoder settings."""
        texts = [_question(t, f"texts.{i}") for i, t in enumerate(body.texts)]
        loaded, vectors = await answer("embed", texts)
        settings = loaded.index.settings
        return reply(
            {
                "model": loaded.index.identity.model_name,
                "layer": str(settings.layer),
                "pooling": settings.pooling.value,
                "dimension": int(vectors.shape[1]),
                "vectors": vectors.tolist(),
            },
            loaded,
        )

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness and readiness; needs no token."""
        loaded = holder.current
        return {"status": "ok", "generation": loaded.generation, "entries": len(loaded.index)}

    @app.get("/index", dependencies=bearer, tags=["service"])
    async def index_summary() -> dict[str, Any]:
        """What is being served: the bundle's manifest (less file checksums), reload state and batching counters."""
        return _summary(holder, batcher, config)

    @app.post("/reload", dependencies=bearer, tags=["service"])
    async def reload() -> dict[str, Any]:
        """Load the bundle on disk now and swap it in (the watcher does this by itself when it changes)."""
        try:
            await holder.reload()
        except FaqSearchError as exc:
            raise HttpError(
                500, f"reload failed, still serving generation {holder.current.generation}: {exc}"
            ) from None
        return {"reloaded": True, **_summary(holder, batcher, config)}

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in _ASSET_TYPES:
            raise HttpError(404, f"no static file {name!r}")
        return Response(_asset(name), media_type=_ASSET_TYPES[name], headers=_PAGE_HEADERS)

    @app.exception_handler(HttpError)
    async def on_http_error(request: Request, exc: HttpError) -> Response:
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        status, message = _validation_message(errors)
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")} for e in errors]
        return JSONResponse({"error": message, "detail": detail}, status)

    @app.exception_handler(StarletteHTTPException)
    async def on_starlette_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {
            404: f"no endpoint {request.url.path}; see /docs for the API",
            405: f"{request.method} is not allowed on {request.url.path}; see /docs for the API",
        }.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": message}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(FaqSearchError)
    async def on_library_error(request: Request, exc: FaqSearchError) -> Response:
        return JSONResponse({"error": str(exc)}, 422 if isinstance(exc, InputError) else 500)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:  # uvicorn logs the traceback
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, 500)

    return app


def app_from_env() -> FastAPI:
    """App factory for ``--workers N``: each worker process rebuilds the app from ``$FAQ_SEARCH_SERVE_CONFIG``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise InputError(f"${CONFIG_ENV} is not set; start the server with `faq-search serve`")
    return create_app(ServeConfig.from_json(text))


def _question(text: str, where: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise HttpError(422, f"{where} is empty; type a question")
    return stripped


def _validation_message(errors: list[Any]) -> tuple[int, str]:
    """(status, one line naming the fix) for pydantic's errors on a request body."""
    if not errors:
        return 422, "the request is invalid; see /docs for the request schema"
    first = errors[0]
    kind = first.get("type")
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "decode error")
        return 400, f"the body is not valid JSON ({reason}); send a JSON object, see /docs"
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if kind in {"model_attributes_type", "dict_type"} and not loc:
        return 422, "the body must be a JSON object sent with 'Content-Type: application/json'; see /docs"
    where = ".".join(loc) or "body"
    if kind == "missing":
        return 422, f"{where} is required; see /docs for the request schema"
    if kind == "extra_forbidden":
        return 422, f"{where} is not a known field; see /docs for the request schema"
    if kind == "string_too_long":
        return 422, f"{where} is too long: {first.get('msg', '').lower()}; shorten it"
    return 422, f"{where}: {first.get('msg', 'invalid')}; see /docs for the request schema"


def _summary(holder: IndexHolder, batcher: Batcher, config: ServeConfig) -> dict[str, Any]:
    loaded = holder.current
    manifest = loaded.index.manifest.to_dict()
    manifest.pop("files", None)
    return {
        "index": str(config.index_dir),
        "generation": loaded.generation,
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(loaded.loaded_at)),
        "reloads": holder.reloads,
        "last_reload_error": holder.last_error,
        **manifest,
        "server": {
            "pid": os.getpid(),
            "batching": config.batching,
            "max_batch": config.max_batch,
            "max_wait_ms": config.max_wait_ms,
            "timeout_s": config.timeout_s,
            "watch_s": config.watch_s,
            **batcher.stats.to_dict(),
        },
    }


def _describe(index: FaqIndex) -> str:
    settings = index.settings
    return f"{index.identity.model_name}, layer {settings.layer}, {settings.pooling.value} pooling"


def _version() -> str:
    from faq_search import __version__

    return __version__


# -- the page --------------------------------------------------------------------

_ASSET_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_assets: dict[str, bytes] = {}


def _asset(name: str) -> bytes:
    if name not in _assets:
        _assets[name] = resources.files("faq_search.service").joinpath("static", name).read_bytes()
    return _assets[name]


# -- the guard: token and body limits, before the app reads anything ---------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Guard:
    """ASGI middleware: the bearer token (when set) and the body size and read-time limits.

    Runs before routing, so a request without the token is refused before its
    body is read, and every new endpoint is protected unless listed in
    :data:`PUBLIC_PATHS`.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        token: str | None,
        max_body_bytes: int,
        timeout_s: float,
    ) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {bytes(name).lower(): bytes(value) for name, value in scope.get("headers", [])}
        path = str(scope.get("path", ""))
        if self.token is not None and path not in PUBLIC_PATHS and not path.startswith("/static/"):
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(credential.strip(), self.token):
                what = "a wrong" if given else "no"
                fix = f"send 'Authorization: Bearer <token>' with the server's ${TOKEN_ENV}"
                await _send_json(send, 401, f"{what} bearer token; {fix}", [(b"www-authenticate", b"Bearer")])
                return
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _send_json(send, 413, self._too_large())
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except TimeoutError:
            await _send_json(send, 408, f"the body did not arrive within {self.timeout_s:g} s; send it at once")
            return
        if body is None:
            await _send_json(send, 413, self._too_large())
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the body is larger than {self.max_body_bytes} bytes; send fewer or shorter questions"

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # client went away; the app will see the disconnect
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _send_json(send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps({"error": message}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# -- running ---------------------------------------------------------------------


def check_port(host: str, port: int) -> None:
    """Fail fast, with the fix, when the address cannot be bound."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or stop the other server"
        ) from None


def log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging setup plus this module's logger, on stderr."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["faq_search"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if not access_log:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    return config


def serve(config: ServeConfig) -> None:
    """Run the service until interrupted; the index is loaded and warmed before the port opens."""
    import uvicorn

    check_port(config.host, config.port)
    if not os.environ.get(TOKEN_ENV) and config.host not in {"127.0.0.1", "localhost", "::1"}:
        log.warning("listening on %s without a token: set $%s to require one", config.host, TOKEN_ENV)
    common: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_config": log_config(config.access_log),
        "access_log": config.access_log,
        "timeout_graceful_shutdown": int(config.timeout_s) + 5,
        "server_header": False,
    }
    if config.workers == 1:
        index = open_index(config)  # errors surface here, as one line from the CLI
        uvicorn.run(create_app(config, index), **common)
        return
    from faq_search.bundle.files import read_bundle

    read_bundle(config.index_dir)  # each worker loads it itself; check it once here for a one-line error
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run("faq_search.service.app:app_from_env", factory=True, workers=config.workers, **common)
