"""The HTTP service behind ``faq-search serve``: FastAPI over :class:`~faq_search.index.faq_index.FaqIndex`.

A helpdesk bot in another process or language calls ``POST /ask``; a support
agent uses the search page at ``/``. The server is a thin edge: it validates,
hands questions to the engine and renders ``Answer.to_dict()`` (the same JSON
as ``faq-search ask --json``). Its parts, one module each:

- :mod:`~faq_search.service.config`: :class:`ServeConfig`, the limits;
- :mod:`~faq_search.service.reload`: the served indexes, their shared encoders and hot reload;
- :mod:`~faq_search.service.batching`: concurrent requests share model calls;
- :mod:`~faq_search.service.schema`: request and response bodies;
- :mod:`~faq_search.service.middleware`: the token, body and JSON limits, disconnects;
- :mod:`~faq_search.service.routes` and :mod:`~faq_search.service.http_errors`;
- :mod:`~faq_search.service.page` and :mod:`~faq_search.service.docs`: the search page, offline API docs;
- :mod:`~faq_search.service.connections`: header deadline and connection bound under HTTP;
- :mod:`~faq_search.service.runner`: :func:`serve` with uvicorn.

This module wires them into one app. What it is not: a load balancer.
``--workers N`` starts N processes, each loading its own model and batching
only its own requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from faq_search.service.config import TOKEN_ENV, TOKENS_ENV, ServeConfig, read_tokens
from faq_search.service.runner import app_from_env, serve

if TYPE_CHECKING:
    from fastapi import FastAPI

    from faq_search.index.faq_index import FaqIndex

__all__ = ["TOKEN_ENV", "ServeConfig", "app_from_env", "create_app", "serve"]

log = logging.getLogger("faq_search.service.app")

DESCRIPTION = (
    "Every error is a JSON object whose `error` is one line naming the fix. "
    "Every index is served under `/indexes/{name}/` (`GET /indexes` lists them); with one index, `/ask`, "
    "`/ask/batch`, `/embed`, `/index` and `/reload` serve it too. `filter` restricts the answers to entries "
    "whose metadata pass it. "
    "With `$FAQ_SEARCH_TOKEN` set (or `$FAQ_SEARCH_TOKENS` naming a JSON file of token: [index names]), "
    "every endpoint needs `Authorization: Bearer <token>` except `/health`, "
    "the search page (`/`, `/static/...`) and these docs (`/docs`, `/redoc`, `/openapi.json`, `/static-docs/...`), "
    "which hold no FAQ data and stay open. Limits: body 1 MiB (`/ask` 32 KiB), texts 1-2,000 characters with "
    "some non-space character, 64 texts per request, JSON objects of at most 32 keys nested at most 16 deep; "
    "types are strict."
)
ERRORS = {
    400: "The body is not UTF-8 JSON, or its JSON has too many keys or levels.",
    401: "The token is set and the request lacks it.",
    403: "The token may not read this index (its `$FAQ_SEARCH_TOKENS` entry names others).",
    404: "No such endpoint, or no index of that name.",
    405: "The method is not allowed on this path.",
    408: "The body did not arrive within the timeout.",
    413: "The body is larger than 1 MiB (32 KiB for /ask, 1 KiB for /reload).",
    422: "A field is missing, unknown, of the wrong type or out of range.",
    500: "Reload failed (the old index keeps serving), or an unexpected error.",
    503: "Too many questions waiting (in all, or from this client); retry after `Retry-After` seconds.",
    504: "No answer within the timeout.",
}


def create_app(config: ServeConfig, index: FaqIndex | None = None) -> FastAPI:
    """The ASGI app serving ``config.served`` (``index``: an already loaded copy of the first).

    Indexes are loaded and warmed when the app starts (its lifespan), not on
    the first request; those whose encoder settings are equal share one
    loaded encoder, and all share one batch queue. ``$FAQ_SEARCH_TOKEN`` and
    ``$FAQ_SEARCH_TOKENS`` are read here.
    """
    from fastapi import FastAPI

    from faq_search.service import docs, feedback, http_errors
    from faq_search.service.batching import Batcher
    from faq_search.service.middleware import RequestGate
    from faq_search.service.reload import IndexHolder, SharedEncoders
    from faq_search.service.routes import Service
    from faq_search.service.schema import ErrorResponse

    shared = SharedEncoders()
    holders = {name: IndexHolder(config, folder, name, shared) for name, folder in config.served}
    service = Service(config=config, holder=next(iter(holders.values())), batcher=Batcher(config), holders=holders)
    token = os.environ.get(TOKEN_ENV) or None
    tokens_file = os.environ.get(TOKENS_ENV) or None
    tokens = read_tokens(tokens_file) if tokens_file else None
    for names in (tokens or {}).values():
        for name in sorted((names or set()) - set(holders)):
            log.warning("$%s names index %r, which this server does not serve", TOKENS_ENV, name)
    app = FastAPI(
        title="faq-search",
        summary="Semantic FAQ retrieval over HTTP: ranked answers with cosine scores.",
        description=DESCRIPTION,
        version=_version(),
        lifespan=_lifespan(service, index),
        responses={status: {"model": ErrorResponse, "description": why} for status, why in ERRORS.items()},
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.holder = service.holder
    app.state.batcher = service.batcher
    app.add_middleware(
        RequestGate,
        token=token,
        max_body_bytes=config.max_body_bytes,
        timeout_s=config.timeout_s,
        tokens=tokens,
        single=config.single,
    )
    _add_routes(app, token is not None or tokens is not None, config.single is not None)
    feedback.install(app, config, token is not None or tokens is not None)  # the question log and POST /feedback
    docs.add_routes(app)
    http_errors.install(app)
    return app


def _lifespan(service: Any, index: FaqIndex | None) -> Any:
    """Start-up: load and warm the indexes, start the batcher and a watcher per index; shut-down: stop them."""
    from faq_search.service.routes import describe

    config = service.config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for position, holder in enumerate(service.holders.values()):  # in turn: later ones reuse encoders
            await holder.start(index if position == 0 else None)
        service.batcher.start()
        watchers = [asyncio.create_task(h.watch()) for h in service.holders.values()] if config.watch_s > 0 else []
        batching = "on" if config.batching else "off"
        for name, holder in service.holders.items():
            served = holder.current
            log.info(
                "serving %s: %d entries, %s; batching %s; at /indexes/%s/",
                holder.index_dir,
                len(served.index),
                describe(served.index),
                batching,
                name,
            )
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await service.batcher.stop()

    return lifespan


def _add_routes(app: FastAPI, with_token: bool, single: bool) -> None:
    from fastapi import Security
    from fastapi.security import HTTPBearer

    from faq_search.service import routes
    from faq_search.service.schema import AskBatchResponse, AskResponse, EmbedResponse

    # Documents the scheme in /docs; the RequestGate middleware enforces it before any body is read.
    bearer = [Security(HTTPBearer(auto_error=False))] if with_token else []
    search: dict[str, Any] = {"dependencies": bearer, "tags": ["search"]}
    service: dict[str, Any] = {"tags": ["service"]}
    if single:
        app.add_api_route("/ask", routes.ask, methods=["POST"], response_model=AskResponse, **search)
        app.add_api_route("/ask/batch", routes.ask_batch, methods=["POST"], response_model=AskBatchResponse, **search)
        app.add_api_route("/embed", routes.embed, methods=["POST"], response_model=EmbedResponse, **search)
    app.add_api_route("/health", routes.health, methods=["GET"], **service)
    if single:
        app.add_api_route("/index", routes.index_summary, methods=["GET"], dependencies=bearer, **service)
        app.add_api_route("/reload", routes.reload, methods=["POST"], dependencies=bearer, **service)
    _add_named_routes(app, bearer)
    app.add_api_route("/", routes.page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/static/{name}", routes.static, methods=["GET"], include_in_schema=False)


def _add_named_routes(app: FastAPI, bearer: list[Any]) -> None:
    """``/indexes`` and every index's own endpoints under ``/indexes/{name}/``."""
    from faq_search.service import routes
    from faq_search.service.schema import AskBatchResponse, AskResponse, EmbedResponse, IndexesResponse

    named: dict[str, Any] = {"dependencies": bearer, "tags": ["indexes"]}
    app.add_api_route("/indexes", routes.indexes, methods=["GET"], response_model=IndexesResponse, **named)
    app.add_api_route("/indexes/{name}", routes.named_summary, methods=["GET"], **named)
    app.add_api_route("/indexes/{name}/ask", routes.named_ask, methods=["POST"], response_model=AskResponse, **named)
    app.add_api_route(
        "/indexes/{name}/ask/batch",
        routes.named_ask_batch,
        methods=["POST"],
        response_model=AskBatchResponse,
        **named,
    )
    app.add_api_route(
        "/indexes/{name}/embed", routes.named_embed, methods=["POST"], response_model=EmbedResponse, **named
    )
    app.add_api_route("/indexes/{name}/reload", routes.named_reload, methods=["POST"], **named)


def _version() -> str:
    from faq_search import __version__

    return __version__
