"""The fake upstream itself: an aiohttp server in its own thread and loop, scripted per test.

`FakeUpstream` records each request, takes the next scripted `Behaviour` and answers through
the wire shapes in `wires`, applying stalls, resets, cuts and bad bodies on the way.
`closed_early` counts only a client that went away (handler cancellation on connection loss,
or a failed write), never our own resets or `stop()`.
"""

import asyncio
import json
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict

from tests.upstreams.answers import _Answer, _answer, _dump, _Frame
from tests.upstreams.behaviours import Behaviour, Wire, ok
from tests.upstreams.received import Recorded, _Endpoint, _resolve
from tests.upstreams.responses_wire import responses_body, responses_frames
from tests.upstreams.wires import (
    _anthropic_frames,
    _chat_frames,
    _completion_frames,
    _gemini_frames,
    _json_body,
    error_body,
)

HOLD_LIMIT = 300.0  # never_answer's bound, so a forgotten hold still ends
_STREAM_FAULTS = ("stall_mid_stream", "reset_mid_stream", "cut_before_done")


@dataclass
class _Exchange:
    """One request's response state, for telling who ended it."""

    index: int
    resp: web.StreamResponse | None = None
    finished: bool = False  # the last byte was written
    aborted: bool = False  # we reset it ourselves


class FakeUpstream:
    """A scriptable upstream speaking `wire`, in its own thread and event loop."""

    def __init__(self, *, wire: Wire = "openai", models: Sequence[str] = ("fake-model",)) -> None:
        self.wire: Wire = wire
        self.models = list(models)
        self.default: Behaviour = ok()  # the answer once the script is used up
        self.requests: list[Recorded] = []
        self.closed_early: list[int] = []
        self.closed_at: dict[int, float] = {}  # index -> time.monotonic() when noticed
        self.port = 0
        self._script: deque[Behaviour] = deque()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # lifecycle

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a gateway backend of this wire takes."""
        return f"{self.root}/v1" if self.wire == "openai" else self.root

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=_run_loop, args=(loop,), name=f"fake-{self.wire}-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(sock), loop).result(timeout=10)
        except BaseException:
            self.stop()
            sock.close()
            raise
        return self

    async def _open(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that goes away cancels its handler, so holds and
        # stalls notice at once and closed_early is exact
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()

    def stop(self) -> None:
        """Stop serving; held requests are dropped. Idempotent."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        self._stopping = True
        try:
            if self._runner is not None and loop.is_running():
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeUpstream(wire={self.wire!r}, url={self.url!r}, requests={len(self.requests)})"

    # scripting and waiting

    def script(self, *behaviours: Behaviour) -> None:
        """Queue answers: each request takes the next; afterwards `default` answers."""
        with self._cond:
            self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._cond:
            return len(self._script)

    def wait_for_requests(self, n: int, timeout: float = 5) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"{self!r}: wanted {n} requests within {timeout}s")

    def wait_closed_early(self, index: int, timeout: float = 5) -> float:
        """Block until request `index` is seen closed early; returns the seconds waited."""
        start = time.monotonic()
        with self._cond:
            if not self._cond.wait_for(lambda: index in self.closed_at, timeout):
                raise TimeoutError(f"{self!r}: request {index} not closed within {timeout}s")
        return time.monotonic() - start

    # serving

    def _next(self) -> Behaviour:
        with self._cond:
            return self._script.popleft() if self._script else self.default

    def _record(self, request: web.Request, body: bytes) -> Recorded:
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = None
        with self._cond:
            rec = Recorded(
                index=len(self.requests),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDict(request.headers),
                body=body,
                json=decoded,
                at=time.monotonic(),
            )
            self.requests.append(rec)
            self._cond.notify_all()
        return rec

    def _closed(self, ex: _Exchange) -> None:
        if ex.finished or ex.aborted or self._stopping:
            return
        with self._cond:
            if ex.index not in self.closed_at:
                self.closed_at[ex.index] = time.monotonic()
                self.closed_early.append(ex.index)
                self._cond.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ex = _Exchange(-1)
        try:
            rec = self._record(request, await request.read())
            ex.index = rec.index
            return await self._respond(request, rec, ex)
        except asyncio.CancelledError:
            self._closed(ex)
            raise
        except ConnectionResetError:  # a write after the client went away
            self._closed(ex)
            return ex.resp or web.Response(status=499)
        finally:
            self._tasks.discard(task)

    def _headers(self, index: int, b: Behaviour) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        if self.wire == "openai":
            headers["x-request-id"] = f"req_fake_{index}"
        elif self.wire == "anthropic":
            headers["request-id"] = f"req_fake_{index}"
        headers.extend(b.headers)
        return headers

    def _error(self, code: int, index: int, b: Behaviour, message: str) -> web.Response:
        body = b.body
        if body is None:
            body = error_body(self.wire, code, message, f"req_fake_{index}")
        raw = _dump(body).encode() if isinstance(body, Mapping) else body
        data = raw.encode() if isinstance(raw, str) else raw
        try:
            json.loads(data)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
        return _response(code, data, self._headers(index, b), content_type)

    async def _respond(
        self, request: web.Request, rec: Recorded, ex: _Exchange
    ) -> web.StreamResponse:
        ep = _resolve(self.wire, rec)
        if ep is None:
            return self._error(404, rec.index, Behaviour(), f"no route for {rec.method} {rec.path}")
        b = self._next()
        headers = self._headers(rec.index, b)
        match b.kind:
            case "status":
                return self._error(b.status, rec.index, b, f"fake {self.wire} upstream: {b.status}")
            case "never_answer":
                await asyncio.sleep(HOLD_LIMIT)
                return self._error(504, rec.index, b, "never_answer hold expired")
            case "reset_before_headers":
                _abort(request, ex, rst=b.rst)
                return web.Response(status=499)
            case "stall_before_headers":
                await asyncio.sleep(b.seconds)
            case "wrong_content_type":
                html = b"<html><body>Welcome to the captive portal</body></html>"
                return _response(200, html, headers, "text/html")
            case "garbage":
                if b.sse if b.sse is not None else ep.stream:
                    return _response(
                        200, b"data: this is {not JSON\n\n", headers, "text/event-stream"
                    )
                return _response(200, b"\x00\xffthis is {not JSON", headers, "application/json")
        answer = _answer(ep, rec, b)
        if ep.stream and ep.sse:
            return await self._stream(request, ex, self._frames(ep, answer), b, headers)
        if ep.name == "responses":
            body = _dump(responses_body(answer)).encode()
        else:
            body = _json_body(self.wire, self.models, ep, rec, answer)
        return await self._send_body(request, ex, body, b, headers)

    def _frames(self, ep: _Endpoint, answer: _Answer) -> list[_Frame]:
        if ep.name == "chat":
            return _chat_frames(answer)
        if ep.name == "completions":
            return _completion_frames(answer)
        if ep.name == "messages":
            return _anthropic_frames(answer)
        if ep.name == "responses":
            return responses_frames(answer)
        return _gemini_frames(answer)

    def _encode(self, frame: _Frame) -> bytes:
        if self.wire == "anthropic" or frame.event:  # Responses API frames are named too
            return f"event: {frame.event}\ndata: {frame.payload}\n\n".encode()
        end = "\r\n\r\n" if self.wire == "gemini" else "\n\n"  # Gemini frames end in CRLF CRLF
        return f"data: {frame.payload}{end}".encode()

    async def _stream(
        self,
        request: web.Request,
        ex: _Exchange,
        frames: list[_Frame],
        b: Behaviour,
        headers: CIMultiDict[str],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers=headers)
        if "Content-Type" not in headers:
            resp.content_type = "text/event-stream"
            resp.charset = "utf-8"
        resp.headers.setdefault("Cache-Control", "no-cache")
        ex.resp = resp
        await resp.prepare(request)
        fault = b.kind in _STREAM_FAULTS
        limit = math.inf if b.after_chunks is None else b.after_chunks
        sent = 0
        for frame in frames:
            if fault and (frame.kind == "end" or (frame.kind == "count" and sent >= limit)):
                fault = False
                if await self._fault(request, ex, b):
                    return resp
            if frame.kind == "count":
                if b.kind == "truncated_json":
                    half = frame._replace(payload=frame.payload[: len(frame.payload) // 2])
                    await resp.write(self._encode(half))
                    break
                delay = b.first_delay if sent == 0 else b.interval
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += 1
            await resp.write(self._encode(frame))
        if fault and await self._fault(request, ex, b):
            return resp
        await resp.write_eof()
        ex.finished = True
        return resp

    async def _fault(self, request: web.Request, ex: _Exchange, b: Behaviour) -> bool:
        """Apply a stream fault; True when the response is over."""
        if b.kind == "stall_mid_stream":
            await asyncio.sleep(b.seconds)
            return False
        if b.kind == "reset_mid_stream":
            _abort(request, ex, rst=b.rst)
            return True
        assert ex.resp is not None  # cut_before_done: a clean end, minus the terminator
        await ex.resp.write_eof()
        ex.finished = True
        return True

    async def _send_body(
        self,
        request: web.Request,
        ex: _Exchange,
        body: bytes,
        b: Behaviour,
        headers: CIMultiDict[str],
    ) -> web.StreamResponse:
        half = len(body) // 2
        if b.kind in ("cut_before_done", "truncated_json"):
            return _response(200, body[:half], headers, "application/json")
        if b.kind not in ("stall_mid_stream", "reset_mid_stream"):
            if b.first_delay > 0:
                await asyncio.sleep(b.first_delay)
            return _response(200, body, headers, "application/json")
        resp = web.StreamResponse(status=200, headers=headers)
        if "Content-Type" not in headers:
            resp.content_type = "application/json"
        resp.content_length = len(body)
        ex.resp = resp
        await resp.prepare(request)
        await resp.write(body[:half])
        if b.kind == "reset_mid_stream":
            _abort(request, ex, rst=b.rst)
            return resp
        await asyncio.sleep(b.seconds)
        await resp.write(body[half:])
        await resp.write_eof()
        ex.finished = True
        return resp


def _response(code: int, body: bytes, headers: CIMultiDict[str], content_type: str) -> web.Response:
    resp = web.Response(status=code, body=body, headers=headers)
    if "Content-Type" not in headers:
        resp.content_type = content_type
    return resp


def _abort(request: web.Request, ex: _Exchange, *, rst: bool) -> None:
    ex.aborted = True
    transport = request.transport
    if transport is None:
        return
    if rst:  # linger 0: close() sends RST instead of FIN
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
