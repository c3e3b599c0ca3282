"""Connection limits below HTTP: a header deadline, a bound on open connections, and quiet logs about both.

uvicorn's h11 protocol closes idle keep-alive connections, but a connection
that sends part of a request (``POST /ask HTTP/1.1\\r\\nHost: x\\r\\n``) and then
stalls, or sends nothing at all, is held forever; enough of them exhaust the
process's file limit, after which no request is answered and every failed
``accept()`` logs a traceback. :class:`GuardedH11Protocol` adds:

- a deadline for a request's headers: from the moment a connection opens, or
  its last response was sent, it has ``header_timeout_s`` to deliver the next
  request's headers, or it is closed (the body has its own limit in the app);
- a bound on open connections: past ``max_connections`` the connection that
  has waited longest for its headers is closed to make room (a stalled one,
  never one whose request is being answered); only when every connection is
  busy with a request is the new one refused;
- when a client disconnects before its response, the request's
  :data:`ON_DISCONNECT` callbacks run, so its queued work is dropped;
- one log line per kind of event and interval (:class:`EventLog`), and a log
  filter (:class:`RepeatFilter`) that keeps only the first traceback of a
  repeating error per interval.

What it is not: protection against a flood that fills the network itself, or
against many addresses (put a proxy with per-address limits in front for that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("faq_search.service.connections")

ON_DISCONNECT = "faq_search.on_disconnect"
"""ASGI scope key: a list of callables run when the client disconnects before its response is complete
(the routes put the cancelling of their queued model work there)."""
CLIENT_GONE = "faq_search.client_gone"
"""ASGI scope key, set to True when the client disconnected before its response was complete."""


class EventLog:
    """Counts events by kind and logs each kind at most once per ``interval`` seconds, with its count."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.counts: dict[str, int] = {}  # since start, by kind
        self._unlogged: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}

    def note(self, kind: str, what: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._logged_at.get(kind, -self.interval) >= self.interval:
            log.warning(
                "%d %s in the last %g s (%d in all)", self._unlogged[kind], what, self.interval, self.counts[kind]
            )
            self._unlogged[kind] = 0
            self._logged_at[kind] = now


class ConnectionGuard:
    """Shared by the connections of one server: who waits for headers, and the limits."""

    def __init__(self, max_connections: int, header_timeout_s: float, events: EventLog | None = None) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.events = events or EventLog()
        self.open: set[GuardedH11Protocol] = set()
        self.waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()  # for headers, longest first

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Count a new connection in; False when it must be refused (all others are busy with requests)."""
        if len(self.open) >= self.max_connections:
            if not self.waiting:
                self.events.note("refused", f"connections refused: {self.max_connections} open, all busy")
                return False
            oldest, _ = self.waiting.popitem(last=False)
            self.events.note("evicted", f"connections closed to make room (over {self.max_connections} open)")
            oldest.drop()
        self.open.add(connection)
        return True

    def forget(self, connection: GuardedH11Protocol) -> None:
        self.open.discard(connection)
        self.waiting.pop(connection, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a share of :class:`ConnectionGuard`'s bound.

    Use :func:`protocol_class` to bind it to a guard.
    """

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._cycle_when_armed: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            self.drop()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.scope[CLIENT_GONE] = True  # type: ignore[literal-required]
            for callback in cycle.scope.get(ON_DISCONNECT, ()):  # type: ignore[attr-defined]
                callback()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is not None and self.cycle is not self._cycle_when_armed:
            self._disarm()  # a new request's headers arrived: the app's limits apply from here

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle is not None and self.cycle.response_complete:
            self._arm()

    def drop(self) -> None:
        """Close this connection now, without a response (it has no request to answer)."""
        self._disarm()
        self.guard.forget(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._cycle_when_armed = self.cycle
        self.guard.waiting[self] = None
        self._deadline = self.loop.call_later(self.guard.header_timeout_s, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.waiting.pop(self, None)

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.cycle is self._cycle_when_armed:  # no new request started since the deadline was set
            self.guard.events.note(
                "header_timeout", f"connections closed: no complete request within {self.guard.header_timeout_s:g} s"
            )
            self.drop()


def protocol_class(max_connections: int, header_timeout_s: float) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass bound to a new guard, for ``uvicorn.Config(http=...)``."""
    guard = ConnectionGuard(max_connections, header_timeout_s)
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})


class RepeatFilter(logging.Filter):
    """Lets the first record of each (logger, message) through per ``interval``; counts and drops repeats.

    The next record let through says how many were dropped, so a flood of one
    error (a refused ``accept()``, an invalid request) costs one line per
    interval instead of a traceback each time.
    """

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg)[:200])
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like this in the last {self.interval:g} s, not logged)"
        return True
