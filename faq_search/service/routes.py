"""The endpoints: each parses its body, makes one call (the batcher or the holder) and renders the answer.

Routes read the running service from ``request.app.state.service`` (a
:class:`Service`), so they are plain module functions that
:func:`faq_search.service.app.create_app` registers, not closures.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from faq_search.errors import FaqSearchError
from faq_search.index.faq_index import Answer, FaqIndex, Match
from faq_search.service.batching import Batcher, Job, Kind, Overloaded
from faq_search.service.config import ServeConfig
from faq_search.service.connections import CLIENT_GONE, ON_DISCONNECT
from faq_search.service.feedback import log_answers
from faq_search.service.http_errors import HttpError
from faq_search.service.page import ASSET_TYPES, PAGE_HEADERS, asset
from faq_search.service.reload import IndexHolder, ServedIndex
from faq_search.service.schema import AskBatchRequest, AskRequest, EmbedRequest, ReloadRequest


@dataclass(frozen=True)
class Service:
    """What the routes share: the settings, the index being served and the batch queue."""

    config: ServeConfig
    holder: IndexHolder
    batcher: Batcher


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _client(request: Request) -> str:
    """Whose turn a job takes in the batch queue: the client's address (its host)."""
    return request.client.host if request.client else ""


async def _answer(
    service: Service, kind: Kind, texts: Sequence[str], request: Request, k: int = 1
) -> tuple[ServedIndex, Any]:
    """The model's result for ``texts`` on the current index, or the 503/504 that says why not.

    The queued work is cancelled when the client disconnects first (the
    connection runs the callbacks under :data:`ON_DISCONNECT`), so it never
    reaches the model.
    """
    if request.scope.get(CLIENT_GONE):  # it left while its body was read or checked
        raise HttpError(499, "the client closed the connection before the answer")
    served = service.holder.current
    job = Job(index=served.index, kind=kind, texts=tuple(texts), k=k, client=_client(request))
    pending = asyncio.ensure_future(service.batcher.submit(job))
    left: list[bool] = []

    def client_left() -> None:
        left.append(True)
        pending.cancel()

    request.scope.setdefault(ON_DISCONNECT, []).append(client_left)
    timeout = service.config.timeout_s
    try:
        result = await asyncio.wait_for(pending, timeout)
    except asyncio.CancelledError:
        if left:  # nobody is there to read an answer
            raise HttpError(499, "the client closed the connection before the answer") from None
        raise
    except TimeoutError:
        raise HttpError(504, f"no answer within {timeout:g} s; retry, add --workers, or raise --timeout") from None
    except Overloaded as exc:
        raise HttpError(
            503, f"the server is overloaded ({exc}); retry in a moment or add --workers", {"Retry-After": "1"}
        ) from None
    return served, result


def _shape(question: str, matches: Sequence[Match], k: int, min_score: float | None, served: ServedIndex) -> Any:
    threshold = served.index.manifest.min_score if min_score is None else min_score
    return Answer.of(question, matches, k, threshold).to_dict()


def _reply(content: Any, served: ServedIndex) -> JSONResponse:
    return JSONResponse(content, headers={"X-Faq-Index-Generation": str(served.generation)})


def _question(text: str) -> str:
    """The text the model sees: without surrounding white space (the schema ensures some text is left)."""
    return text.strip() or text


def cut_flags(index: FaqIndex, texts: Sequence[str]) -> list[bool]:
    """Per text: longer than the encoder's window, so the model sees only its beginning.

    A word piece covers at least one character, so only texts longer than the
    window in characters are measured. Encoders that take texts whole
    (``windows`` is None) report no cuts.
    """
    window = index.settings.max_seq_len
    long = [i for i, text in enumerate(texts) if len(text) > window - 2]
    flags = [False] * len(texts)
    windows = index.encoder.windows
    if not long or windows is None:
        return flags
    for i, pieces in zip(long, windows.split([texts[i] for i in long], window), strict=True):
        flags[i] = len(pieces) > 1
    return flags


async def ask(body: AskRequest, request: Request) -> Response:
    """Ranked answers to one question (the JSON of `faq-search ask --json`)."""
    started = time.perf_counter()
    text = _question(body.question)
    served, result = await _answer(_service(request), "ask", [text], request, body.k)
    content = _shape(body.question, result[0], body.k, body.min_score, served)
    log_answers(request, served.generation, result, [content], body.k, started)
    return _reply(content, served)


async def ask_batch(body: AskBatchRequest, request: Request) -> Response:
    """Ranked answers to several questions, in order; they share model calls with other requests."""
    started = time.perf_counter()
    texts = [_question(q) for q in body.questions]
    served, result = await _answer(_service(request), "ask", texts, request, body.k)
    results = [_shape(q, m, body.k, body.min_score, served) for q, m in zip(body.questions, result, strict=True)]
    log_answers(request, served.generation, result, results, body.k, started)
    return _reply({"results": results}, served)


async def embed(body: EmbedRequest, request: Request) -> Response:
    """Sentence vectors (unit length) computed with the bundle's encoder settings.

    Like `faq-search embed` at sentence level, a text longer than the model's
    window is embedded from its beginning and reported in `truncated`.
    """
    texts = [_question(t) for t in body.texts]
    served, vectors = await _answer(_service(request), "embed", texts, request)
    truncated = await asyncio.to_thread(cut_flags, served.index, texts)
    settings = served.index.settings
    content = {
        "model": served.index.identity.model_name,
        "layer": str(settings.layer),
        "pooling": settings.pooling.value,
        "dimension": int(vectors.shape[1]),
        "vectors": vectors.tolist(),
        "truncated": truncated,
    }
    return _reply(content, served)


async def health(request: Request) -> dict[str, Any]:
    """Liveness and readiness; needs no token."""
    served = _service(request).holder.current
    return {"status": "ok", "generation": served.generation, "entries": len(served.index)}


async def index_summary(request: Request) -> dict[str, Any]:
    """What is being served: the bundle's manifest (less file checksums), reload state and batching counters."""
    return summary(_service(request))


async def reload(body: ReloadRequest, request: Request) -> dict[str, Any]:
    """Load the bundle on disk now and swap it in (the watcher does this by itself when it changes).

    The body must be the JSON object `{}`: a cross-site form post cannot send JSON, so it cannot trigger this.
    """
    service = _service(request)
    try:
        await service.holder.reload()
    except FaqSearchError as exc:
        generation = service.holder.current.generation
        raise HttpError(500, f"reload failed, still serving generation {generation}: {exc}") from None
    return {"reloaded": True, **summary(service)}


async def page() -> Response:
    return Response(asset("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def static(name: str) -> Response:
    if name not in ASSET_TYPES:
        raise HttpError(404, f"no static file {name!r}")
    return Response(asset(name), media_type=ASSET_TYPES[name], headers=PAGE_HEADERS)


def summary(service: Service) -> dict[str, Any]:
    """The body of ``GET /index``: manifest less checksums, reload state, batching settings and counters."""
    served, config = service.holder.current, service.config
    manifest = served.index.manifest.to_dict()
    manifest.pop("files", None)
    return {
        "index": str(config.index_dir),
        "generation": served.generation,
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(served.loaded_at)),
        "reloads": service.holder.reloads,
        "last_reload_error": service.holder.last_error,
        **manifest,
        "server": {
            "pid": os.getpid(),
            "batching": config.batching,
            "max_batch": config.max_batch,
            "max_wait_ms": config.max_wait_ms,
            "timeout_s": config.timeout_s,
            "watch_s": config.watch_s,
            **service.batcher.stats.to_dict(),
        },
    }


def describe(index: FaqIndex) -> str:
    """One phrase for the start-up log: model, layer and pooling."""
    settings = index.settings
    return f"{index.identity.model_name}, layer {settings.layer}, {settings.pooling.value} pooling"
