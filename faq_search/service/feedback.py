"""The question log in the HTTP service: ``serve --log FILE.db`` logs every answer and takes ``POST /feedback``.

Opt-in: without ``--log`` nothing is written, no log file is opened and
``/feedback`` does not exist (404), so a server without a log publishes the
same API as before. With it:

- every question answered by ``/ask`` and ``/ask/batch`` is logged (the
  top matches before the threshold, whether it was answered, the latency and
  the index generation), and its answer carries the ``question_id`` the log
  keeps it under;
- ``POST /feedback`` with that id records whether the answer helped, and
  optionally which entry the customer chose;
- ``GET /gaps`` and ``/indexes/{name}/gaps`` report the topics it could not
  answer (:mod:`~faq_search.service.gaps`).

The route handlers never touch the disk: records go to a
:class:`~faq_search.traffic.writer.LogWriter` thread that commits whatever
has queued in one transaction (see ``benchmarks/bench_gaps.py`` for the
cost). :func:`install` is the one hook :func:`~faq_search.service.app.create_app`
calls; :func:`log_answers` the one the ask routes call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Request
from pydantic import BaseModel, Field

from faq_search.service.config import ServeConfig
from faq_search.service.http_errors import HttpError
from faq_search.service.schema import _Body
from faq_search.traffic.log import Feedback, LoggedMatch, QuestionLog, QuestionRecord, new_question_id
from faq_search.traffic.writer import LogWriter

if TYPE_CHECKING:
    from fastapi import FastAPI

    from faq_search.index.records import Match
    from faq_search.service.reload import ServedIndex

ID_PATTERN = r"^[0-9a-f]{32}$"


class FeedbackRequest(_Body):
    question_id: str = Field(pattern=ID_PATTERN, description="The `question_id` an /ask answer carried.")
    helpful: bool = Field(description="Whether the answer helped the customer.")
    entry_id: str | None = Field(
        None, min_length=1, max_length=200, description="The entry the customer chose, if they chose one."
    )


class FeedbackResponse(BaseModel):
    recorded: bool
    question_id: str


def install(app: FastAPI, config: ServeConfig, with_token: bool) -> None:
    """With ``config.log_path``: open the log when the app starts, close it when it stops, add ``/feedback``."""
    app.state.question_log = None
    path = config.log_path
    if path is None:
        return
    from fastapi import Security
    from fastapi.security import HTTPBearer

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        question_log = QuestionLog(path, redact=config.redact, retention_days=config.retention_days)
        writer = LogWriter(question_log)
        app.state.question_log = writer
        try:
            async with inner(started) as state:
                yield state
        finally:
            app.state.question_log = None
            await asyncio.to_thread(writer.close)

    app.router.lifespan_context = lifespan
    bearer = [Security(HTTPBearer(auto_error=False))] if with_token else []
    app.add_api_route(
        "/feedback",
        post_feedback,
        methods=["POST"],
        response_model=FeedbackResponse,
        dependencies=bearer,
        tags=["search"],
        responses={404: {"description": "No logged question has this id."}},
    )
    from faq_search.service import gaps

    gaps.install(app, bearer, config.single is not None)


def log_answers(
    request: Request, served: ServedIndex, matches: Sequence[Sequence[Match]], answers: Sequence[dict[str, Any]],
    k: int, started: float,
) -> None:  # fmt: skip
    """Log each answered question (when the server keeps a log) and put its ``question_id`` into its answer.

    ``matches`` are the engine's ranked matches before the threshold (what
    the gaps report reads); ``answers`` the JSON bodies being returned. The
    logged index is the served bundle's folder (with several indexes, the
    one asked).
    """
    writer: LogWriter | None = request.app.state.question_log
    if writer is None:
        return
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    config: ServeConfig = request.app.state.service.config
    index = str(served.index.path or config.index_dir)
    now = time.time()
    for ranked, answer in zip(matches, answers, strict=True):
        record = QuestionRecord(
            id=new_question_id(),
            asked_at=now,
            question=str(answer["question"]),
            answered=bool(answer["answered"]),
            matches=tuple(LoggedMatch(m.entry.id, round(float(m.score), 6)) for m in ranked[:k]),
            latency_ms=latency_ms,
            generation=served.generation,
            index=index,
            min_score=answer["min_score"],
        )
        answer["question_id"] = record.id
        writer.submit(record)


async def post_feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    """Record whether the answer to a logged question helped (and which entry the customer chose).

    Refer to the question by the `question_id` its /ask answer carried; 404 when the log holds no such question.
    """
    writer: LogWriter | None = request.app.state.question_log
    if writer is None:  # the app is stopping
        raise HttpError(503, "the question log is closing; retry in a moment", {"Retry-After": "1"})
    done = writer.feedback(Feedback(body.question_id, body.helpful, body.entry_id, time.time()))
    problem = await asyncio.wrap_future(done)
    if problem is not None:
        raise HttpError(404, problem)
    return {"recorded": True, "question_id": body.question_id}
