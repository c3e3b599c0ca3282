"""The gate in front of the app: the bearer token and the body limits, before anything reads the body.

An ASGI middleware rather than a FastAPI dependency, so a request without the
token is refused before its body is read, and every new endpoint is protected
unless listed in :data:`PUBLIC_PATHS`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from faq_search.service.config import TOKEN_ENV

PUBLIC_PATHS = frozenset({"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Served without the token: the health probe, and the page and API docs, which hold no FAQ data."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RequestGate:
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
                await send_json(send, 401, f"{what} bearer token; {fix}", [(b"www-authenticate", b"Bearer")])
                return
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await send_json(send, 413, self._too_large())
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except TimeoutError:
            await send_json(send, 408, f"the body did not arrive within {self.timeout_s:g} s; send it at once")
            return
        if body is None:
            await send_json(send, 413, self._too_large())
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


async def send_json(send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
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
