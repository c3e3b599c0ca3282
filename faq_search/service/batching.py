"""Request batching: concurrent requests share encoder calls on one model thread.

Concurrent questions are gathered into one encoder call per round (at most
``max_batch`` texts, waiting at most ``max_wait_ms`` after the oldest one
arrived) on one model thread, so throughput grows with load and the event
loop never runs model work. What it is not: a scheduler across processes
(each ``--workers`` process batches only its own requests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from faq_search.service.config import ServeConfig

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex

Kind = Literal["ask", "embed"]
_NO_THRESHOLD = float("-inf")  # the engine returns every top-k match; each request applies its own threshold


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
