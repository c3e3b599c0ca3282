"""Request batching: concurrent requests share encoder calls on one model thread.

Concurrent questions are gathered into one encoder call per round (at most
``max_batch`` texts and ``max_batch_chars`` characters, waiting at most
``max_wait_ms`` after the oldest one arrived) on one model thread, so
throughput grows with load and the event loop never runs model work.

Fairness: each client (its address) has its own queue and a round takes one
job from each waiting client in turn; a job larger than what is left of a
round is split and its rest waits for the next round, behind the other
clients. Long texts run one per round, apart from short questions. So one
client's heavy batches cost everyone else at most one long text's round of
waiting, and a client may hold at most ``max_pending // 4`` queued
texts before it (alone) gets 503. A job whose request was abandoned (timed
out, client gone) is dropped before it reaches the model. What it is not: a
scheduler across processes (each ``--workers`` process batches only its own
requests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from faq_search.service.config import ServeConfig

if TYPE_CHECKING:
    from faq_search.index.faq_index import FaqIndex

Kind = Literal["ask", "embed"]
_NO_THRESHOLD = float("-inf")  # the engine returns every top-k match; each request applies its own threshold


CHARS_PER_TEXT = 1024
"""Most characters one text counts for in a round's budget: the encoder's window cuts longer texts."""
LONG_TEXT = 256
"""Texts longer than this (characters) run in rounds of their own, one at a time: a round of short
questions never waits for a long text's full window, and a short question waits for at most one."""


@dataclass(eq=False)
class Job:
    """Texts one request needs from the model, and where its result goes.

    A job split across rounds runs as parts (jobs with ``parent`` set) whose
    results are put back in order before the request's future is set.
    """

    index: FaqIndex
    kind: Kind
    texts: tuple[str, ...]
    k: int = 1
    allowed: np.ndarray | None = None  # ask: the entries a filter keeps (FaqIndex.filter_mask), None = all
    future: asyncio.Future[Any] | None = None
    queued_at: float = 0.0
    client: str = ""
    parent: Job | None = None
    offset: int = 0  # of a part: where its texts start in the parent's
    parts: list[tuple[int, Any]] = dataclasses.field(default_factory=list)  # of a split job: (offset, result)
    waiting: int = -1  # of a split job: texts whose results have not come back yet; -1 until it is split

    @property
    def cost(self) -> int:
        """Characters this job counts for in a round (each text capped at :data:`CHARS_PER_TEXT`)."""
        return sum(min(len(text), CHARS_PER_TEXT) for text in self.texts)

    @property
    def abandoned(self) -> bool:
        """The request no longer waits for this (timed out, cancelled, client gone)."""
        owner = self.parent or self
        return owner.future is not None and owner.future.done()


def timed_run_jobs(jobs: Sequence[Job]) -> tuple[list[Any], float]:
    """:func:`run_jobs` and the seconds it took on its thread."""
    started = time.perf_counter()
    results = run_jobs(jobs)
    return results, time.perf_counter() - started


def run_jobs(jobs: Sequence[Job]) -> list[Any]:
    """Run jobs with one encoder call per encoder (indexes may share one); a result or an exception per job.

    Runs on the model thread. A failing group is retried job by job, so one
    bad request never fails the others gathered with it.
    """
    results: list[Any] = [None] * len(jobs)
    groups: dict[int, list[int]] = {}
    for position, job in enumerate(jobs):
        groups.setdefault(id(job.index.encoder), []).append(position)
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
    """One encoder call for jobs whose indexes share an encoder, then one ranking per (index, filter).

    ``ask`` jobs on the same index with the same filter are ranked together
    (one score matrix); ``embed`` jobs take their vectors as they are.
    """
    texts = [text.strip() for job in jobs for text in job.texts]
    vectors = jobs[0].index.encoder.encode(texts)
    starts = np.cumsum([0, *(len(job.texts) for job in jobs)])
    out: list[Any] = [vectors[starts[i] : starts[i + 1]] for i in range(len(jobs))]
    rankings: dict[tuple[int, int], list[int]] = {}
    for position, job in enumerate(jobs):
        if job.kind == "ask":
            rankings.setdefault((id(job.index), id(job.allowed)), []).append(position)
    for members in rankings.values():
        index, allowed = jobs[members[0]].index, jobs[members[0]].allowed
        rows = np.concatenate([np.arange(starts[p], starts[p + 1]) for p in members])
        questions = [text for p in members for text in jobs[p].texts]
        k = max(jobs[p].k for p in members)
        answers = index.ask_vectors(vectors[rows], questions, k=k, min_score=_NO_THRESHOLD, allowed=allowed)
        at = 0
        for p in members:
            out[p] = answers[at : at + len(jobs[p].texts)]
            at += len(jobs[p].texts)
    return out


class Overloaded(Exception):
    """More questions are queued than the server, or this client's share of it, accepts."""


@dataclass
class BatchStats:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest: int = 0
    model_seconds: float = 0.0  # time spent in engine calls; with batching off, overlapping calls add up
    split: int = 0  # jobs split across rounds (larger than a round's budget, or than what was left of it)
    dropped: int = 0  # jobs dropped unrun because their request was abandoned

    def to_dict(self) -> dict[str, Any]:
        mean = self.texts / self.batches if self.batches else 0.0
        data = {**dataclasses.asdict(self), "model_seconds": round(self.model_seconds, 3)}
        return {**data, "mean_texts_per_call": round(mean, 2)}


class Batcher:
    """Gathers concurrent requests into shared model calls on one model thread, fairly between clients.

    A round starts when a job is queued and closes when ``max_batch`` texts
    are gathered or ``max_wait`` has passed since the oldest job arrived;
    while the model works, new jobs queue for the next round. With batching
    off, each request calls the model on its own from a thread pool (the
    baseline the benchmark compares with).
    """

    def __init__(self, config: ServeConfig) -> None:
        self.enabled = config.batching
        self.max_batch = config.max_batch
        self.max_batch_chars = config.max_batch_chars
        self.max_wait = config.max_wait_ms / 1000
        self.max_pending = config.max_pending
        self.max_client_pending = max(config.max_batch, config.max_pending // 4)
        self.stats = BatchStats()
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()  # by client, in turn order
        self._queued_texts = 0
        self._client_texts: dict[str, int] = {}  # queued or running, by client
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
        for queue in self._queues.values():
            for job in queue:
                owner = job.parent or job
                if owner.future is not None and not owner.future.done():
                    owner.future.set_exception(Overloaded("the server is shutting down"))
        self._queues.clear()
        self._model.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, job: Job) -> Any:
        """The job's result (one item per text); raises its error, or :class:`Overloaded`."""
        size = len(job.texts)
        if self._queued_texts + size > self.max_pending:
            raise Overloaded(f"{self._queued_texts} questions are already waiting")
        held = self._client_texts.get(job.client, 0)
        if held + size > self.max_client_pending:
            raise Overloaded(f"this client already has {held} questions waiting; wait for their answers first")
        self.stats.requests += 1
        self._client_texts[job.client] = held + size
        try:
            result = await (self._enqueue(job) if self.enabled else self._run_alone(job))
        finally:
            left = self._client_texts[job.client] - size
            if left:
                self._client_texts[job.client] = left
            else:
                del self._client_texts[job.client]
        if isinstance(result, BaseException):
            raise result
        return result

    async def _run_alone(self, job: Job) -> Any:
        loop = asyncio.get_running_loop()
        self._queued_texts += len(job.texts)
        try:
            self._count_call(len(job.texts))
            results, seconds = await loop.run_in_executor(self._pool, timed_run_jobs, [job])
            self.stats.model_seconds += seconds
            return results[0]
        finally:
            self._queued_texts -= len(job.texts)

    def _enqueue(self, job: Job) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        job.queued_at = loop.time()
        self._queues.setdefault(job.client, deque()).append(job)
        self._queued_texts += len(job.texts)
        job.future.add_done_callback(lambda _: self._forget(job))
        self._wakeup.set()
        return job.future

    def _forget(self, owner: Job) -> None:
        """Take a finished or abandoned request's jobs out of the queue (a no-op once they ran)."""
        queue = self._queues.get(owner.client)
        if not queue:
            return
        for queued in [j for j in queue if (j.parent or j) is owner]:
            queue.remove(queued)
            self._queued_texts -= len(queued.texts)
            self.stats.dropped += 1
        if not queue:
            del self._queues[owner.client]

    def _count_call(self, texts: int) -> None:
        self.stats.batches += 1
        self.stats.texts += texts
        self.stats.largest = max(self.stats.largest, texts)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queues:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait from the later of: the oldest arrival, the model becoming free (so clients
            # answered by the last round can join this one). Bounded by max_wait either way.
            oldest = min(queue[0].queued_at for queue in self._queues.values())
            deadline = max(oldest, self._free_at) + self.max_wait
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
                _deliver(job, result)

    def _take(self) -> list[Job]:
        """The next round: one job per client in turn, within ``max_batch`` texts and ``max_batch_chars``.

        The first client in turn decides the round's kind: a long text (over
        :data:`LONG_TEXT` characters) makes a round of that one text; a short
        one a round of short texts only. A job that does not fit whole is split
        (its rest stays at the head of its client's queue). Clients served move
        to the back of the turn order.
        """
        jobs: list[Job] = []
        texts = chars = 0
        long_round = len(self._queues[next(iter(self._queues))][0].texts[0]) > LONG_TEXT if self._queues else False
        budget = CHARS_PER_TEXT if long_round else self.max_batch_chars
        progressed = True
        while progressed and self._queues:
            progressed = False
            for client in list(self._queues):
                queue = self._queues[client]
                job = queue[0]
                fit = _fit(job, self.max_batch - texts, budget - chars, first=not jobs, long_round=long_round)
                if fit == 0:
                    continue
                if fit == len(job.texts):
                    queue.popleft()
                    part = job
                else:
                    part, queue[0] = _split(job, fit)
                    self.stats.split += 1
                if not queue:
                    del self._queues[client]
                else:
                    self._queues.move_to_end(client)
                self._queued_texts -= len(part.texts)
                jobs.append(part)
                texts += len(part.texts)
                chars += part.cost
                progressed = True
        return jobs


def _fit(job: Job, room_texts: int, room_chars: int, *, first: bool, long_round: bool = False) -> int:
    """How many of ``job``'s first texts fit the room left in a round of this kind (at least one if it is empty).

    ``_fit(job of texts of 200 characters, 32, 2048, first=False)`` -> 10.
    """
    count = used = 0
    for text in job.texts[:room_texts]:
        used += min(len(text), CHARS_PER_TEXT)
        if used > room_chars or (len(text) > LONG_TEXT) != long_round:
            break
        count += 1
    return max(count, 1) if first else count


def _split(job: Job, count: int) -> tuple[Job, Job]:
    """(the first ``count`` texts of ``job`` as a part, the rest as another part) of the same request."""
    owner = job.parent or job
    if owner.waiting < 0:
        owner.waiting = len(owner.texts)
    head = dataclasses.replace(job, texts=job.texts[:count], parent=owner, future=None, parts=[], waiting=-1)
    rest = dataclasses.replace(head, texts=job.texts[count:], offset=job.offset + count)
    return head, rest


def _deliver(job: Job, result: Any) -> None:
    """Hand a round's result to its request; a part waits until its request's other parts are back."""
    owner = job.parent or job
    if owner.future is None or owner.future.done():
        return
    if job.parent is None or isinstance(result, BaseException):
        owner.future.set_result(result)
        return
    owner.parts.append((job.offset, result))
    owner.waiting -= len(job.texts)
    if owner.waiting == 0:
        ordered = [part for _, part in sorted(owner.parts, key=lambda item: item[0])]
        joined = np.concatenate(ordered) if job.kind == "embed" else [item for part in ordered for item in part]
        owner.future.set_result(joined)
