"""The one response object of a request: the only way bytes reach the client.

It owns the client's `send`, knows whether the response head has gone out (`started`) and
whether a stream has committed (`committed`), and keeps the SSE keepalive timer. `fail` is
the one place that decides how an error reaches the client: as a whole error response while
nothing has been sent, as one error event that ends the stream once the head has gone out
(never a second head, never a clean-looking end), and not at all once the response is over.
Every error of every front door goes through it.
"""

import asyncio
from collections.abc import Iterable
from typing import Protocol

from proxy import errors, sse
from proxy.asgi import RawHeaders, Send
from proxy.errors import Wire
from proxy.record import RequestRecord

_SSE_HEAD: RawHeaders = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class Tap(Protocol):
    """Sees what the client gets (the response cache records answers this way)."""

    def head(self, status: int) -> None: ...
    def chunk(self, data: bytes) -> None: ...
    def end(self, data: bytes) -> None: ...


class Exchange:
    """One request's response; `record` collects its facts for the access log."""

    __slots__ = (
        "_interval",
        "_ping",
        "_send",
        "_timer",
        "closed",
        "committed",
        "extra",
        "front",
        "record",
        "request_id",
        "started",
        "tap",
    )

    def __init__(self, send: Send, front: Wire, request_id: str, record: RequestRecord) -> None:
        self._send = send
        self.front = front
        self.request_id = request_id
        self.record = record
        self.started = False  # the response head has gone out
        self.committed = False  # stream content has gone out: no more failover
        self.closed = False  # the response is complete (or ended by an error event)
        self.extra: RawHeaders = []  # on every head this response sends (rate-limit state)
        self.tap: Tap | None = None  # the cache's recorder, when this answer may be stored
        self._interval = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._ping: asyncio.Task[None] | None = None

    # -- the response --------------------------------------------------------------------

    async def head(self, status: int, headers: RawHeaders) -> None:
        """Send the response head (once); `x-request-id` is added here."""
        if self.started:
            return
        self.started = True
        if self.record.status == 0:
            self.record.status = status
        headers.append((b"x-request-id", self.request_id.encode()))
        headers.extend(self.extra)
        if self.tap is not None:
            self.tap.head(status)
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def stream_head(self, backend: tuple[str, str] | None = None) -> None:
        """The SSE head, once; `backend` (name, provider model) when one is answering."""
        if self.started:
            return
        headers = [*_SSE_HEAD, (b"x-proxy-attempts", str(self.record.attempts).encode())]
        if backend is not None:
            headers.append((b"x-proxy-backend", backend[0].encode()))
            headers.append((b"x-proxy-model", backend[1].encode()))
        await self.head(200, headers)

    async def chunk(self, data: bytes) -> None:
        """A part of the body; the head must have gone out."""
        if self.tap is not None:
            self.tap.chunk(data)
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        """The last part of the body."""
        if self.closed:
            return
        self.closed = True
        if self.tap is not None:
            self.tap.end(data)
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def answer(self, status: int, headers: RawHeaders, body: bytes) -> None:
        """A whole response."""
        await self.quiet()
        await self.head(status, headers)
        await self.end(body)

    async def fail(self, err: errors.ProxyError, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Tell the client about `err` in its protocol, however far the response has got."""
        rec = self.record
        if not self.started:
            rec.status = err.status
        rec.error_type = err.code or err.type
        if isinstance(err, errors.ClientClosed):
            rec.error_type = "client_disconnected"
            return
        if self.closed:
            return
        await self.quiet()
        if self.started:
            await self.end(errors.stream_event(err, self.front))
            return
        status, headers, body = errors.render(err, self.front, self.request_id)
        if self.front == "anthropic":
            headers.append((b"request-id", self.request_id.encode()))
        headers.extend(extra)
        await self.answer(status, headers, body)

    # -- keepalives while the upstream is silent -----------------------------------------

    def keepalive(self, interval: float) -> None:
        """Send `: keepalive` comments every `interval` seconds until `quiet()`.

        A timer, not a per-read timeout: reads are never cancelled, and a healthy fast stream
        costs one timer handle. The first keepalive also sends the SSE head.
        """
        self._interval = interval
        self._timer = asyncio.get_running_loop().call_later(interval, self._fire)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ping is None or self._ping.done():
            self._ping = loop.create_task(self._send_keepalive())
        self._timer = loop.call_later(self._interval, self._fire)

    async def _send_keepalive(self) -> None:
        await self.stream_head()
        await self.chunk(sse.KEEPALIVE)

    async def quiet(self) -> None:
        """Stop keepalives; a keepalive being sent finishes first, so frames never interleave."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ping is not None:
            ping, self._ping = self._ping, None
            await ping
