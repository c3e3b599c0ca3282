"""The HTTP service behind ``faq-search serve``: FastAPI over :class:`~faq_search.index.faq_index.FaqIndex`.

A helpdesk bot in another process or language calls ``POST /ask``; a support
agent uses the search page at ``/``. The server is a thin edge: it validates,
hands questions to the engine and renders ``Answer.to_dict()`` (the same JSON
as ``faq-search ask --json``). Its parts, one module each:

- :mod:`~faq_search.service.config`: :class:`ServeConfig`, the limits;
- :mod:`~faq_search.service.reload`: the served index and its hot reload;
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

from faq_search.service.config import TOKEN_ENV, ServeConfig
from faq_search.service.runner import app_from_env, serve

if TYPE_CHECKING:
    from fastapi import FastAPI

    from faq_search.index.faq_index import FaqIndex

__all__ = ["TOKEN_ENV", "ServeConfig", "app_from_env", "create_app", "serve"]

log = logging.getLogger("faq_search.service.app")

DESCRIPTION = (
    "Every error is a JSON object whose `error` is one line naming the fix. "
    "With `$FAQ_SEARCH_TOKEN` set, every endpoint needs `Authorization: Bearer <token>` except `/health`, "
    "the search page (`/`, `/static/...`) and these docs (`/docs`, `/redoc`, `/openapi.json`, `/static-docs/...`), "
    "which hold no FAQ data and stay open. Limits: body 1 MiB (`/ask` 32 KiB), texts 1-2,000 characters with "
    "some non-space character, 64 texts per request, JSON objects of at most 32 keys nested at most 16 deep; "
    "types are strict."
)
ERRORS = {
    400: "The body is not UTF-8 JSON, or its JSON has too many keys or levels.",
    401: "The token is set and the request lacks it.",
    405: "The method is not allowed on this path.",
    408: "The body did not arrive within the timeout.",
    413: "The body is larger than 1 MiB (32 KiB for /ask, 1 KiB for /reload).",
    422: "A field is missing, unknown, of the wrong type or out of range.",
    500: "Reload failed (the old index keeps serving), or an unexpected error.",
    503: "Too many questions waiting (in all, or from this client); retry after `Retry-After` seconds.",
    504: "No answer within the timeout.",
}


def create_app(config: ServeConfig, index: FaqIndex | None = None) -> FastAPI:
    """The ASGI app serving ``config.index_dir`` (or ``index``, an already loaded copy of it).

    The index is loaded and warmed when the app starts (its lifespan), not on
    the first request. ``$FAQ_SEARCH_TOKEN`` is read here.
    """
    from fastapi import FastAPI

    from faq_search.service import docs, feedback, http_errors
    from faq_search.service.batching import Batcher
    from faq_search.service.middleware import RequestGate
    from faq_search.service.reload import IndexHolder
    from faq_search.service.routes import Service
    from faq_search.service.schema import ErrorResponse

    service = Service(config=config, holder=IndexHolder(config), batcher=Batcher(config))
    token = os.environ.get(TOKEN_ENV) or None
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
    app.add_middleware(RequestGate, token=token, max_body_bytes=config.max_body_bytes, timeout_s=config.timeout_s)
    _add_routes(app, token is not None)
    feedback.install(app, config, token is not None)  # the question log and POST /feedback, with --log
    docs.add_routes(app)
    http_errors.install(app)
    return app


def _lifespan(service: Any, index: FaqIndex | None) -> Any:
    """Start-up: load and warm the index, start the batcher and the watcher; shut-down: stop them."""
    from faq_search.service.routes import describe

    config = service.config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.holder.start(index)
        service.batcher.start()
        watcher = asyncio.create_task(service.holder.watch()) if config.watch_s > 0 else None
        served = service.holder.current
        batching = "on" if config.batching else "off"
        log.info(
            "serving %s: %d entries, %s; batching %s",
            config.index_dir,
            len(served.index),
            describe(served.index),
            batching,
        )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            await service.batcher.stop()

    return lifespan


def _add_routes(app: FastAPI, with_token: bool) -> None:
    from fastapi import Security
    from fastapi.security import HTTPBearer

    from faq_search.service import routes
    from faq_search.service.schema import AskBatchResponse, AskResponse, EmbedResponse

    # Documents the scheme in /docs; the RequestGate middleware enforces it before any body is read.
    bearer = [Security(HTTPBearer(auto_error=False))] if with_token else []
    search: dict[str, Any] = {"dependencies": bearer, "tags": ["search"]}
    service: dict[str, Any] = {"tags": ["service"]}
    app.add_api_route("/ask", routes.ask, methods=["POST"], response_model=AskResponse, **search)
    app.add_api_route("/ask/batch", routes.ask_batch, methods=["POST"], response_model=AskBatchResponse, **search)
    app.add_api_route("/embed", routes.embed, methods=["POST"], response_model=EmbedResponse, **search)
    app.add_api_route("/health", routes.health, methods=["GET"], **service)
    app.add_api_route("/index", routes.index_summary, methods=["GET"], dependencies=bearer, **service)
    app.add_api_route("/reload", routes.reload, methods=["POST"], dependencies=bearer, **service)
    app.add_api_route("/", routes.page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/static/{name}", routes.static, methods=["GET"], include_in_schema=False)


def _version() -> str:
    from faq_search import __version__

    return __version__
