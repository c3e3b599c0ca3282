"""The gate in front of the app: tokens and their index scopes, body limits, JSON shape limits, and HEAD.

An ASGI middleware rather than FastAPI dependencies, so that it acts before
anything expensive happens:

- a request without a valid token is refused (401) before its body is read,
  and every new endpoint is protected unless listed in :data:`PUBLIC_PATHS`;
  a token from the ``$FAQ_SEARCH_TOKENS`` file may read only the indexes it
  names: any path of another index (``/indexes/{name}/...``, and the
  single-index paths when the one index is another) gets 403, and the
  request's scope carries the allowed names (:data:`ALLOWED_INDEXES`);
- the body is read with a size and a time limit, and a JSON body is parsed
  once here with bounds on its keys per object, its nesting and the length of
  its strings (an object of 80,000 unknown keys is refused in milliseconds
  with a small 400, not validated key by key into a 7 MB error; a 1 MB text
  gets its 422 before FastAPI parses it again); parse errors name the fix;
- ``HEAD`` on a ``GET`` endpoint is answered as ``GET`` without the body.

(When a client disconnects before its answer, its questions leave the batch
queue: :mod:`~faq_search.service.connections` runs the request's
:data:`~faq_search.service.connections.ON_DISCONNECT` callbacks, which the
routes register; a watcher task per request here cost 40% of throughput.)
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from faq_search.service.config import MAX_QUESTION_CHARS, TOKEN_ENV, TOKENS_ENV

PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Served without the token: the health probe, and the page and API docs, which hold no FAQ data."""
PUBLIC_PREFIXES = ("/static/", "/static-docs/")
SINGLE_INDEX_PATHS = frozenset({"/ask", "/ask/batch", "/embed", "/index", "/reload", "/gaps"})
"""Paths of the single-index API: they read the one index a server holds when it holds one."""
INDEXES_PREFIX = "/indexes/"
ALLOWED_INDEXES = "faq_search.allowed_indexes"
"""ASGI scope key: the index names the request's token may read (None: every index)."""
PATH_BODY_BYTES = {"/ask": 32 << 10, "/reload": 1 << 10}
"""Tighter body limits where one bounded question is all a body can hold: 2,000 characters at 12 bytes each
(an escaped character outside the BMP) and the other fields fit in 32 KiB, so larger bodies are refused
from their ``Content-Length`` before a byte is read."""
LARGE_BODY_BYTES = 64 << 10  # bodies above this are read and checked at most LARGE_BODIES_PER_CLIENT at a time
LARGE_BODIES_PER_CLIENT = 2
"""A client sending many large bodies at once waits for its own earlier ones: its bodies stay in the
socket buffers meanwhile, so the server's memory and CPU for them are bounded per client."""
MAX_KEYS = 32  # per JSON object; the API's objects have at most three
MAX_DEPTH = 16  # nested arrays and objects; the API's bodies have at most two levels
_THREAD_PARSE_BYTES = 64 << 10  # parse bodies larger than this off the event loop

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyRefused(Exception):
    """The body cannot be accepted: a status and one line naming the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestGate:
    """ASGI middleware: the bearer token (when set), body limits, JSON shape limits, HEAD."""

    def __init__(
        self,
        app: App,
        *,
        token: str | None,
        max_body_bytes: int,
        timeout_s: float,
        tokens: Mapping[str, frozenset[str] | None] | None = None,
        single: str | None = None,
    ) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.tokens = [(t.encode("utf-8"), names) for t, names in (tokens or {}).items()]
        self.single = single
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self._large: dict[
            str, tuple[asyncio.Semaphore, int]
        ] = {}  # by client address: its turns, and who holds or waits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {bytes(name).lower(): bytes(value) for name, value in scope.get("headers", [])}
        path = str(scope.get("path", ""))
        allowed, refusal = self._access(path, headers)
        if refusal is not None:
            status, message = refusal
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await send_json(send, status, message, extra)
            return
        scope[ALLOWED_INDEXES] = allowed
        if scope.get("method") == "HEAD":
            scope, send = {**scope, "method": "GET"}, _without_body(send)
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        limit = min(self.max_body_bytes, PATH_BODY_BYTES.get(_unnamed(path), self.max_body_bytes))
        try:
            body = await self._large_body_turn(scope, headers, receive, limit)
        except BodyRefused as exc:
            await send_json(send, exc.status, str(exc))
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _large_body_turn(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
        """:meth:`_body`, taking a turn among the client's large bodies (declared large, or chunked)."""
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) <= LARGE_BODY_BYTES:
            return await self._body(headers, receive, limit)
        client = str((scope.get("client") or ("",))[0])
        turn, users = self._large.get(client) or (asyncio.Semaphore(LARGE_BODIES_PER_CLIENT), 0)
        self._large[client] = (turn, users + 1)
        try:
            async with turn:
                return await self._body(headers, receive, limit)
        finally:
            turn, users = self._large[client]
            if users > 1:
                self._large[client] = (turn, users - 1)
            else:
                del self._large[client]

    def _access(self, path: str, headers: dict[bytes, bytes]) -> tuple[frozenset[str] | None, tuple[int, str] | None]:
        """``(indexes the request may read (None: all), refusal)``: 401 without a valid token, 403 out of scope."""
        if (self.token is None and not self.tokens) or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None, None
        given = headers.get(b"authorization", b"")
        scheme, _, credential = given.partition(b" ")
        credential = credential.strip()
        matched, allowed = False, None
        if scheme.lower() == b"bearer":
            if self.token is not None and secrets.compare_digest(credential, self.token):
                matched = True
            for token, names in self.tokens:  # every one compared: the time does not tell which matched
                if secrets.compare_digest(credential, token) and not matched:
                    matched, allowed = True, names
        if not matched:
            what = "a wrong" if given else "no"
            fix = f"the server's ${TOKEN_ENV}" + (f" or a token of its ${TOKENS_ENV} file" if self.tokens else "")
            return None, (401, f"{what} bearer token; send 'Authorization: Bearer <token>' with {fix}")
        target = self._index_of(path)
        if allowed is not None and target is not None and target not in allowed:
            readable = ", ".join(sorted(allowed))
            return None, (403, f"this token may not read index {target[:64]!r}; it may read: {readable}")
        return allowed, None

    def _index_of(self, path: str) -> str | None:
        """The index a path reads: ``/indexes/{name}/...``, or the single index for its paths; else None."""
        if path.startswith(INDEXES_PREFIX):
            return path[len(INDEXES_PREFIX) :].split("/", 1)[0] or None
        if path.rstrip("/") in SINGLE_INDEX_PATHS:
            return self.single  # None with several indexes: these paths are not served then
        return None

    async def _body(self, headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
        """The whole body, checked: size, read time, and (for JSON) syntax, keys per object and depth."""
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise BodyRefused(413, _too_large(limit))
        try:
            body = await asyncio.wait_for(self._read(receive, limit), self.timeout_s)
        except TimeoutError:
            raise BodyRefused(408, f"the body did not arrive within {self.timeout_s:g} s; send it at once") from None
        if body is None:
            raise BodyRefused(413, _too_large(limit))
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"application/json" and body:
            if len(body) > _THREAD_PARSE_BYTES:
                await asyncio.to_thread(check_json, body)
            else:
                check_json(body)
        return body

    async def _read(self, receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None once it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # client went away; the app will see the disconnect
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _unnamed(path: str) -> str:
    """A path with its ``/indexes/{name}`` prefix taken off: ``/indexes/shop/ask`` -> ``/ask`` (for body limits)."""
    if path.startswith(INDEXES_PREFIX):
        rest = path[len(INDEXES_PREFIX) :].partition("/")[2]
        return "/" + rest
    return path


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit} bytes; send fewer or shorter questions"


def check_json(body: bytes) -> None:
    """Raise :class:`BodyRefused` unless ``body`` is UTF-8 JSON within the key, depth and string bounds.

    ``check_json(b'{"question": "hi"}')`` passes; ``check_json(b'{"a": ')`` raises
    "the body is not valid JSON (Expecting value at character 6); ...".
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRefused(400, f"the body is not UTF-8 (byte {exc.start}); send JSON encoded as UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_bounded_object)
    except BodyRefused:
        raise
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at character {exc.pos}"
        raise BodyRefused(400, f"the body is not valid JSON ({reason}); send a JSON object, see /docs") from None
    except RecursionError:
        raise BodyRefused(400, _too_deep()) from None
    problem = _shape_problem(value)
    if problem is not None:
        raise problem


def _shape_problem(value: Any) -> BodyRefused | None:
    """Nesting past :data:`MAX_DEPTH` (400), or a string past :data:`MAX_QUESTION_CHARS` (422), without recursion.

    Found here, on the value just parsed, so an over-long text costs neither a
    second parse nor a validation: ``{"texts": ["x" * 10**6]}`` -> 422 naming ``texts.0``.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_QUESTION_CHARS:
                name = ".".join(where)[:80] or "the body"
                return BodyRefused(
                    422, f"{name} is too long: {len(item)} characters, at most {MAX_QUESTION_CHARS}; shorten it"
                )
            continue
        if len(where) >= MAX_DEPTH and isinstance(item, (dict, list)):
            return BodyRefused(400, _too_deep())
        if isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, (*where, "<key>")))
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, str(i))) for i, child in enumerate(item))
    return None


def _bounded_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_KEYS:
        raise BodyRefused(400, f"a JSON object in the body has {len(pairs)} keys, more than {MAX_KEYS}; see /docs")
    return dict(pairs)


def _too_deep() -> str:
    return f"the body's JSON is nested more than {MAX_DEPTH} levels deep; see /docs for the request schema"


def _without_body(send: Send) -> Send:
    """``send`` for a HEAD request: the headers of the GET answer (its length included), no body bytes."""

    async def head_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_send


async def send_json(send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A complete JSON error response ``{"error": message}`` sent straight to the client."""
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
