"""The endpoints: each parses its body, makes one call (the batcher or the holder) and renders the answer.

Routes read the running service from ``request.app.state.service`` (a
:class:`Service`), so they are plain module functions that
:func:`faq_search.service.app.create_app` registers, not closures. Every
index is served under ``/indexes/{name}/...``; with one index, ``/ask``,
``/ask/batch``, ``/embed``, ``/index`` and ``/reload`` serve it too (the
single-index API). Which token may read which index is the gate's business
(:mod:`~faq_search.service.middleware`); ``/indexes`` lists only those the
request's token may read.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from faq_search.service.middleware import ALLOWED_INDEXES
from faq_search.service.page import ASSET_TYPES, PAGE_HEADERS, asset
from faq_search.service.reload import IndexHolder, ServedIndex
from faq_search.service.schema import AskBatchRequest, AskRequest, EmbedRequest, ReloadRequest


@dataclass(frozen=True)
class Service:
    """What the routes share: the settings, the index being served and the batch queue."""

    config: ServeConfig
    holder: IndexHolder  # the first index: the one the single-index API serves
    batcher: Batcher
    holders: Mapping[str, IndexHolder] = field(default_factory=dict)  # every index, by name

    def named(self, name: str) -> IndexHolder:
        """The holder of index ``name``, or 404 naming the served ones."""
        holder = self.holders.get(name)
        if holder is None:
            raise HttpError(404, f"no index {name[:64]!r}; GET /indexes lists the indexes this server holds")
        return holder


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _holder(request: Request) -> IndexHolder:
    """The index a request is for: ``/indexes/{name}/...`` names it; the single-index paths mean the first."""
    service = _service(request)
    name = request.path_params.get("name")
    return service.holder if name is None else service.named(str(name))


def _client(request: Request) -> str:
    """Whose turn a job takes in the batch queue: the client's address (its host)."""
    return request.client.host if request.client else ""


async def _answer(
    service: Service,
    kind: Kind,
    texts: Sequence[str],
    request: Request,
    k: int = 1,
    holder: IndexHolder | None = None,
    where: str | None = None,
) -> tuple[ServedIndex, Any]:
    """The model's result for ``texts`` on the current index (``holder``'s, else the first), or why not.

    ``where`` is a metadata filter; one that does not fit the index is a 422
    naming the known fields or values, before anything is queued. The queued
    work is cancelled when the client disconnects first (the connection runs
    the callbacks under :data:`ON_DISCONNECT`), so it never reaches the model.
    """
    if request.scope.get(CLIENT_GONE):  # it left while its body was read or checked
        raise HttpError(499, "the client closed the connection before the answer")
    served = (holder or service.holder).current
    allowed = served.index.filter_mask(where) if where is not None else None
    job = Job(index=served.index, kind=kind, texts=tuple(texts), k=k, client=_client(request), allowed=allowed)
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
    """Ranked answers to one question (the JSON of `faq-search ask --json`), among entries passing `filter`."""
    started = time.perf_counter()
    text = _question(body.question)
    served, result = await _answer(_service(request), "ask", [text], request, body.k, _holder(request), body.filter)
    content = _shape(body.question, result[0], body.k, body.min_score, served)
    log_answers(request, served, result, [content], body.k, started)
    return _reply(content, served)


async def ask_batch(body: AskBatchRequest, request: Request) -> Response:
    """Ranked answers to several questions, in order; they share model calls with other requests."""
    started = time.perf_counter()
    texts = [_question(q) for q in body.questions]
    served, result = await _answer(_service(request), "ask", texts, request, body.k, _holder(request), body.filter)
    results = [_shape(q, m, body.k, body.min_score, served) for q, m in zip(body.questions, result, strict=True)]
    log_answers(request, served, result, results, body.k, started)
    return _reply({"results": results}, served)


async def embed(body: EmbedRequest, request: Request) -> Response:
    """Sentence vectors (unit length) computed with the bundle's encoder settings.

    Like `faq-search embed` at sentence level, a text longer than the model's
    window is embedded from its beginning and reported in `truncated`.
    """
    texts = [_question(t) for t in body.texts]
    served, vectors = await _answer(_service(request), "embed", texts, request, holder=_holder(request))
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
    return summary(_service(request), _holder(request))


async def reload(body: ReloadRequest, request: Request) -> dict[str, Any]:
    """Load the bundle on disk now and swap it in (the watcher does this by itself when it changes).

    The body must be the JSON object `{}`: a cross-site form post cannot send JSON, so it cannot trigger this.
    """
    service = _service(request)
    target = _holder(request)
    try:
        await target.reload()
    except FaqSearchError as exc:
        generation = target.current.generation
        raise HttpError(500, f"reload failed, still serving generation {generation}: {exc}") from None
    return {"reloaded": True, **summary(service, target)}


async def indexes(request: Request) -> dict[str, Any]:
    """The indexes this server holds that the request's token may read: size, settings, filterable fields."""
    service = _service(request)
    allowed = request.scope.get(ALLOWED_INDEXES)
    listed = [listing(name, holder) for name, holder in service.holders.items() if allowed is None or name in allowed]
    return {"indexes": listed, "single": service.config.single}


async def named_ask(name: str, body: AskRequest, request: Request) -> Response:
    """`/ask` on the index `name`, among entries passing `filter`."""
    return await ask(body, request)


async def named_ask_batch(name: str, body: AskBatchRequest, request: Request) -> Response:
    """`/ask/batch` on the index `name`."""
    return await ask_batch(body, request)


async def named_embed(name: str, body: EmbedRequest, request: Request) -> Response:
    """`/embed` with the encoder of the index `name`."""
    return await embed(body, request)


async def named_summary(name: str, request: Request) -> dict[str, Any]:
    """`/index` for the index `name`."""
    return await index_summary(request)


async def named_reload(name: str, body: ReloadRequest, request: Request) -> dict[str, Any]:
    """`/reload` for the index `name` (each index also reloads on its own when its bundle is replaced)."""
    return await reload(body, request)


async def page() -> Response:
    return Response(asset("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def static(name: str) -> Response:
    if name not in ASSET_TYPES:
        raise HttpError(404, f"no static file {name!r}")
    return Response(asset(name), media_type=ASSET_TYPES[name], headers=PAGE_HEADERS)


def listing(name: str, holder: IndexHolder) -> dict[str, Any]:
    """One entry of ``GET /indexes``: name, size, settings and the filterable fields with their values."""
    served = holder.current
    index = served.index
    manifest = index.manifest
    return {
        "name": name,
        "entries": len(index),
        "vectors": manifest.vector_count,
        "index_type": manifest.index_type.value,
        "fields": list(manifest.fields),
        "model": index.identity.model_name,
        "layer": str(index.settings.layer),
        "pooling": index.settings.pooling.value,
        "hybrid": index.hybrid.enabled,
        "min_score": manifest.min_score,
        "source": manifest.source,
        "generation": served.generation,
        "filters": [] if index.columns is None else index.columns.describe(),
    }


def summary(service: Service, holder: IndexHolder | None = None) -> dict[str, Any]:
    """The body of ``GET /index``: manifest less checksums, reload state, batching settings and counters."""
    holder = holder or service.holder
    served, config = holder.current, service.config
    manifest = served.index.manifest.to_dict()
    manifest.pop("files", None)
    return {
        "index": str(holder.index_dir),
        "name": holder.name,
        "filters": [] if served.index.columns is None else served.index.columns.describe(),
        "generation": served.generation,
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(served.loaded_at)),
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
            **service.batcher.stats.to_dict(),
        },
    }


def describe(index: FaqIndex) -> str:
    """One phrase for the start-up log: model, layer and pooling."""
    settings = index.settings
    return f"{index.identity.model_name}, layer {settings.layer}, {settings.pooling.value} pooling"
