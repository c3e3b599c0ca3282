"""``GET /gaps`` and ``GET /indexes/{name}/gaps``: the gaps report of a logging server, for the agent page.

Only a server started with ``--log`` has these routes (like ``/feedback``);
the search page shows its "Gaps" view only when the OpenAPI schema lists them. A request
reads the newest ``limit`` logged questions of that index (at most
:data:`MAX_READ`: the report is bounded whatever the log's size), from
``since`` on, and clusters its gap questions as ``faq-search gaps`` does
(:func:`faq_search.traffic.gaps.find_gaps`). Scoped tokens: both routes are
behind the gate's scope check, and every report reads only the
questions logged for its own index, so a token limited to some indexes
never sees another index's questions.

The work runs on a worker thread, one report at a time per process (a
second request waits its turn), so the event loop keeps answering
questions meanwhile. The topic encoder and the FAQ's reference vectors are
built once per index generation and kept (a reload builds them again).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel

from faq_search.errors import FaqSearchError
from faq_search.service.http_errors import HttpError
from faq_search.traffic.gaps import GapsOptions
from faq_search.traffic.settings import DEFAULT_REVIEW_SCORE, TopicEncoder

if TYPE_CHECKING:
    from fastapi import FastAPI

    from faq_search.encoding.protocol import Encoder
    from faq_search.encoding.settings import EncoderSettings
    from faq_search.index.faq_index import FaqIndex
    from faq_search.service.reload import IndexHolder
    from faq_search.traffic.topics import TopicSpace

SERVER_ENCODER = TopicEncoder.SENTENCE
"""The topic encoder the server tries first; it falls back to the index's own when that cannot load."""
DEFAULT_READ = 5000
MAX_READ = 20_000
MAX_TOP = 100


class ClosestEntry(BaseModel):
    id: str | None
    question: str | None
    score: float | None


class GapTopic(BaseModel):
    rank: int
    need: float
    volume: int
    distinct: int
    unanswered: int
    unhelpful: int
    novelty: float
    representatives: list[str]
    closest: ClosestEntry


class GapsResponse(BaseModel):
    index: str
    logged: int
    gap_askings: int
    gap_questions: int
    min_score: float | None
    review_score: float | None
    weight: str
    gap_need: float
    similarity: float
    encoder: str
    ranking: str
    read_limit: int
    clusters: list[GapTopic]


def install(app: FastAPI, bearer: list[Any], single: bool) -> None:
    """Add the gaps routes (call only for a server with a question log)."""
    app.state.gaps = _Spaces()
    options: dict[str, Any] = {
        "methods": ["GET"], "response_model": GapsResponse, "dependencies": bearer, "tags": ["gaps"],
        "responses": {422: {"description": "`since` is not a date, or a number is out of range."}},
    }  # fmt: skip
    if single:
        app.add_api_route("/gaps", get_gaps, **options)
    app.add_api_route("/indexes/{name}/gaps", get_named_gaps, **options)


Since = Annotated[
    str | None, Query(description="Only questions asked from this date on (2026-11-01, UTC, or a full ISO time).")
]
Limit = Annotated[int, Query(ge=1, le=MAX_READ, description="Read at most this many of the newest questions.")]
Top = Annotated[int, Query(ge=0, le=MAX_TOP, description="How many topics, largest first (0: counts only).")]
MinScore = Annotated[
    float | None, Query(ge=0.0, le=1.0, description="A gap is below this confidence (default: the server's).")
]
ReviewScore = Annotated[
    float | None,
    Query(
        ge=0.0,
        le=1.0,
        description=f"Answered questions below this confidence are gaps too (default {DEFAULT_REVIEW_SCORE}).",
    ),
]


async def get_gaps(
    request: Request,
    since: Since = None,
    limit: Limit = DEFAULT_READ,
    top: Top = 10,
    min_score: MinScore = None,
    review_score: ReviewScore = DEFAULT_REVIEW_SCORE,
) -> dict[str, Any]:
    """The topics of questions the index could not answer confidently (or marked unhelpful), by volume and novelty.

    Reads only the questions logged for this index (the newest `limit`), clusters them on a worker thread.
    """
    options = GapsOptions(min_score=min_score, review_score=review_score, top=top)
    return await _report(request, request.app.state.service.holder, since, limit, options)


async def get_named_gaps(
    name: str,
    request: Request,
    since: Since = None,
    limit: Limit = DEFAULT_READ,
    top: Top = 10,
    min_score: MinScore = None,
    review_score: ReviewScore = DEFAULT_REVIEW_SCORE,
) -> dict[str, Any]:
    """The gaps report of index `name`: only the questions logged for it."""
    holder = request.app.state.service.named(name)
    options = GapsOptions(min_score=min_score, review_score=review_score, top=top)
    return await _report(request, holder, since, limit, options)


async def _report(
    request: Request, holder: IndexHolder, since: str | None, limit: int, options: GapsOptions
) -> dict[str, Any]:
    from faq_search.traffic.gaps import find_gaps, parse_since

    writer = request.app.state.question_log
    if writer is None:
        raise HttpError(503, "the question log is closing; retry in a moment", {"Retry-After": "1"})
    try:
        since_s = parse_since(since) if since else None
    except FaqSearchError as exc:
        raise HttpError(422, str(exc)) from None
    served = holder.current
    where = str(served.index.path or holder.index_dir)
    spaces: _Spaces = request.app.state.gaps

    def work() -> Any:
        with spaces.turn:
            writer.flush()  # the report includes every question answered before it was asked
            space = spaces.get(holder.name, served.generation, served.index) if options.top else None
            encoder = TopicEncoder.SENTENCE if space is None else space.kind
            return find_gaps(
                writer.log, served.index, options.revised(encoder=encoder), since=since_s, space=space, limit=limit,
                index_name=where,
            )  # fmt: skip

    report = await asyncio.to_thread(work)
    body = report.to_dict()
    for cluster in body["clusters"]:
        cluster.pop("questions", None)
    return {**body, "index": holder.name, "read_limit": limit}


class _Spaces:
    """One topic space per index generation, built on first use; ``turn`` lets one report run at a time.

    The sentence encoder (the model at its last layer) is loaded once per model and shared by every index
    and generation that reads the same model; an adapted bundle's own weights can change on reload under the
    same path, so its encoder is loaded again with each generation. Sharing is safe: reports take turns.
    """

    def __init__(self) -> None:
        self.turn = threading.Lock()
        self._spaces: dict[str, tuple[int, TopicSpace]] = {}
        self._encoders: dict[EncoderSettings, Encoder] = {}

    def get(self, name: str, generation: int, index: FaqIndex) -> TopicSpace:
        """The space for ``name`` at ``generation``: the sentence encoder, or the index's own when it cannot load."""
        from faq_search.traffic.topics import sentence_encoder, sentence_settings, topic_space

        kept = self._spaces.get(name)
        if kept is not None and kept[0] == generation:
            return kept[1]
        try:
            if index.own_encoder_dir() is not None:
                encoder = sentence_encoder(index)
            else:
                settings = sentence_settings(index)
                encoder = self._encoders.get(settings) or sentence_encoder(index)
                self._encoders[settings] = encoder
            space = topic_space(index, SERVER_ENCODER, encoder)
        except FaqSearchError:  # e.g. an ONNX-only install without torch
            space = topic_space(index, TopicEncoder.INDEX)
        self._spaces[name] = (generation, space)
        return space

    def encoders(self) -> int:
        """How many sentence encoders are loaded and shared (for tests)."""
        return len(self._encoders)
