"""Relay one upstream SSE stream to the client: hold the preamble, commit, then pass through.

Until the stream *commits* (the first event with content, a tool call or a finish) nothing
but keepalive comments reaches the client, so a target that fails or stalls before its
first token is replaced by the next candidate invisibly. After commit, same-protocol bytes
are forwarded as they arrive, whole frames only and without decoding (except the one usage
frame the gateway asked for on the client's behalf, which is read and, if the client did not
ask for it, dropped). A failure after commit ends the stream with an error event in the
client's protocol, never with a clean-looking end.
"""

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from proxy import errors, redact, sse, translate
from proxy.config import Settings
from proxy.errors import Wire
from proxy.routing import TargetKey
from proxy.upstream import UpstreamError, UpstreamResponse
from proxy.usage import AnthropicUsage, anthropic_usage, from_openai_dict

if TYPE_CHECKING:
    from proxy.forward import Exchange
    from proxy.reload import BackendState
    from proxy.tracing import AttemptSpan

Verdict = Literal["hold", "commit", "error"]


class StreamFailed(Exception):
    def __init__(self, kind: str, message: str, reported: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.reported = reported  # the client already got an error frame for it


# msgspec reads `Raw | None` as "null only": containers of Raw skip decoding and accept any.
class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[msgspec.Raw] | None = None
    function_call: dict[str, msgspec.Raw] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None
    text: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    error: dict[str, msgspec.Raw] | str | None = None
    usage: dict[str, Any] | None = None


class _AnthropicBlock(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _AnthropicMessage(msgspec.Struct):
    usage: AnthropicUsage | None = None


class _AnthropicEvent(msgspec.Struct):
    type: str = ""
    content_block: _AnthropicBlock | None = None
    error: dict[str, msgspec.Raw] | None = None
    message: _AnthropicMessage | None = None
    usage: AnthropicUsage | None = None


_chunk = msgspec.json.Decoder(_Chunk)
_anthropic_event = msgspec.json.Decoder(_AnthropicEvent)
_error_body = msgspec.json.Decoder(dict[str, Any])


def verdict(wire: Wire, event: sse.Event) -> Verdict:
    """Does this client-protocol event commit the stream, fail it, or belong to the preamble?"""
    if wire == "anthropic":
        try:
            ev = _anthropic_event.decode(event.data)
        except msgspec.DecodeError:
            return "error"
        kind = ev.type or event.event
        if kind in ("message_start", "ping"):
            return "hold"
        if kind == "error":
            return "error"
        if kind == "content_block_start":
            block = ev.content_block
            return (
                "hold"
                if block is not None and block.type == "text" and not block.text
                else "commit"
            )
        return "commit"
    if event.data.startswith("[DONE]"):
        return "commit"
    try:
        chunk = _chunk.decode(event.data)
    except msgspec.DecodeError:
        return "error"
    if chunk.error is not None:
        return "error"
    if not chunk.choices:
        return "commit" if chunk.usage else "hold"
    for c in chunk.choices:
        d = c.delta
        if (
            c.finish_reason
            or c.text
            or (
                d is not None
                and (
                    d.content or d.tool_calls or d.function_call or d.refusal or d.reasoning_content
                )
            )
        ):
            return "commit"
    return "hold"


def _error_message(data: str) -> str:
    try:
        body = _error_body.decode(data)
    except msgspec.DecodeError:
        return "upstream sent malformed stream data"
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        # Upstreams quote keys ("Incorrect API key provided: sk-..."): never pass them on.
        return "upstream stream error: " + redact.scrub(str(err["message"])[:300])
    return "upstream stream error"


def _first_error(events: list[sse.Event]) -> str | None:
    """The message of the first error event a translator produced, if any."""
    for e in events:
        if e.event == "error" or e.data.startswith('{"error"'):
            return _error_message(e.data)
    return None


class Keepalive:
    """Sends `: keepalive` comments while the stream has nothing to show (before commit).

    A timer, not a per-read timeout: reads are never cancelled, and a healthy fast stream
    costs one timer handle. The first keepalive also starts the HTTP response.
    """

    __slots__ = ("_ex", "_handle", "_interval", "_task")

    def __init__(self, ex: "Exchange", interval: float) -> None:
        self._ex = ex
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            interval, self._fire
        )

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._send())
        self._handle = loop.call_later(self._interval, self._fire)

    async def _send(self) -> None:
        await start(self._ex, None)
        await self._ex.send(
            {"type": "http.response.body", "body": sse.KEEPALIVE, "more_body": True}
        )

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._task is not None:
            task, self._task = self._task, None
            await task  # let a keepalive in progress finish: frames never interleave


async def start(ex: "Exchange", key: TargetKey | None) -> None:
    """Send the SSE response head once."""
    if ex.started:
        return
    ex.started = True
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-request-id", ex.request_id.encode()),
        (b"x-proxy-attempts", str(ex.attempts).encode()),
    ]
    if key is not None:
        headers.append((b"x-proxy-backend", key.backend.encode()))
        headers.append((b"x-proxy-model", key.model.encode()))
    await ex.send({"type": "http.response.start", "status": 200, "headers": headers})


class Relay:
    __slots__ = (
        "_closed",
        "_decoder",
        "_ex",
        "_held_error",
        "_key",
        "_settings",
        "_span",
        "_tail",
        "_tr",
        "_up",
        "_wire",
    )

    def __init__(
        self,
        ex: "Exchange",
        state: "BackendState",
        key: TargetKey,
        upstream: UpstreamResponse,
        settings: Settings,
        span: "AttemptSpan",
    ) -> None:
        self._ex = ex
        self._key = key
        self._up = upstream
        self._settings = settings
        self._span = span
        self._wire = state.adapter.wire
        self._decoder = sse.Decoder()
        self._tail = b""
        self._closed = False  # translator already closed (upstream ended right at commit)
        self._held_error: str | None = None  # an error among the events sent at commit
        module = None if ex.front == self._wire else translate.pick(ex.front, self._wire)
        self._tr = (
            module.Stream(
                ex.model, include_usage=ex.include_usage, id=ex.request_id, created=int(time.time())
            )
            if module is not None
            else None
        )

    async def _read(self) -> bytes:
        try:
            return await self._up.read_chunk()
        except UpstreamError as exc:
            raise StreamFailed(exc.kind, exc.message) from exc

    async def run(self) -> None:
        ctype = self._up.headers.get("content-type", "")
        if "event-stream" not in ctype:
            raise StreamFailed(
                "protocol", f"upstream answered a stream request with {ctype or 'no content type'}"
            )
        held = await self._precommit()
        ex = self._ex
        if ex.keepalive is not None:
            await ex.keepalive.stop()
        ex.committed = True
        rec = ex.record
        rec.status = 200
        rec.ttft_ms = (time.perf_counter() - ex.t0) * 1000.0
        self._span.first_token()
        await start(ex, self._key)
        try:
            if self._tr is None:
                await self._passthrough(held)
            else:
                await self._translated(held)
        except StreamFailed as exc:
            if exc.reported:  # the upstream's own error frame already went out: just end
                await self._send(b"", more=False)
                raise
            err: errors.ProxyError = (
                errors.GatewayTimeout(exc.message)
                if exc.kind == "timeout"
                else errors.BadGateway(exc.message)
            )
            await self._send(errors.stream_event(err, ex.front), more=False)
            raise

    async def _precommit(self) -> bytes:
        """Read until commit. Returns what to send first (raw bytes or encoded client events)."""
        front = self._ex.front
        raw: list[bytes] = []  # pass-through: upstream bytes so far
        held: list[sse.Event] = []  # translated: client events so far
        while True:
            chunk = await self._read()
            if not chunk:
                if self._tr is not None and self._tr.finish is not None:
                    held.extend(self._tr.close())
                    if any(verdict(front, e) == "commit" for e in held):
                        self._closed = True
                        return b"".join(sse.encode(e.data, e.event) for e in held)
                raise StreamFailed("protocol", "upstream stream ended before any content")
            raw.append(chunk)
            upstream_events = self._decoder.feed(chunk)
            if self._tr is None:
                for event in upstream_events:
                    if front == "anthropic":
                        self._anthropic_usage(event)
                    v = verdict(front, event)
                    if v == "error":
                        raise StreamFailed("stream_error", _error_message(event.data))
                    if v == "commit":
                        return b"".join(raw)
                continue
            committed = False
            for event in upstream_events:
                for out in self._tr.feed(event):
                    if not committed:
                        v = verdict(front, out)
                        if v == "error":
                            raise StreamFailed("stream_error", _error_message(out.data))
                        committed = v == "commit"
                    held.append(out)
            if committed:
                self._held_error = _first_error(held)
                return b"".join(sse.encode(e.data, e.event) for e in held)

    async def _send(self, body: bytes, more: bool = True) -> None:
        await self._ex.send({"type": "http.response.body", "body": body, "more_body": more})

    async def _passthrough(self, first: bytes) -> None:
        pending = first
        end_marker = b"message_stop" if self._wire == "anthropic" else b"[DONE]"
        error_mark = b"event: error" if self._wire == "anthropic" else b'{"error"'
        while True:
            cut = sse.frame_end(pending)
            if cut:
                region = pending[:cut]
                pending = pending[cut:]
                if self._wire == "anthropic":
                    if b"message_delta" in region:
                        for event in sse.Decoder().feed(region):
                            self._anthropic_usage(event)
                elif b'"choices":[]' in region or b'"choices": []' in region:
                    region = self._usage_frames(region)
                if region:
                    self._tail = region[-48:]
                    await self._send(region)
                    if error_mark in region:
                        self._stop_on_error(region)
            chunk = await self._read()
            if not chunk:
                break
            pending = pending + chunk if pending else chunk
        if pending.strip() or end_marker not in self._tail:
            raise StreamFailed("truncated", "upstream stream ended before it was complete")
        await self._send(b"", more=False)

    def _stop_on_error(self, region: bytes) -> None:
        """The upstream reported an error in-band and it went out as is: the stream is over."""
        for event in sse.Decoder().feed(region):
            if verdict(self._ex.front, event) == "error":
                raise StreamFailed("stream_error", _error_message(event.data), reported=True)

    def _usage_frames(self, region: bytes) -> bytes:
        """Read usage from the usage-only frame; drop it unless the client asked for it."""
        kept: list[bytes] = []
        for frame in region.split(b"\n\n"):
            if b'"choices":[]' in frame or b'"choices": []' in frame:
                data = frame.partition(b"data:")[2].strip()
                try:
                    chunk = _chunk.decode(data)
                except msgspec.DecodeError:
                    kept.append(frame)
                    continue
                if chunk.usage:
                    self._ex.usage = from_openai_dict(chunk.usage)
                    if not self._ex.include_usage:
                        continue
            kept.append(frame)
        return b"\n\n".join(kept)

    def _anthropic_usage(self, event: sse.Event) -> None:
        """message_start carries input tokens, message_delta the cumulative output."""
        if event.event not in ("message_start", "message_delta"):
            return
        try:
            ev = _anthropic_event.decode(event.data)
        except msgspec.DecodeError:
            return
        found = ev.message.usage if ev.message is not None else ev.usage
        if found is None:
            return
        inp, out = anthropic_usage(found)
        prev = self._ex.usage
        if event.event == "message_delta" and prev is not None and not inp:
            inp = prev[0]  # message_delta may repeat only output_tokens
        self._ex.usage = (inp, out)

    async def _translated(self, first: bytes) -> None:
        assert self._tr is not None
        await self._send(first)
        if self._held_error is not None:
            raise StreamFailed("stream_error", self._held_error, reported=True)
        if self._closed:
            await self._send(b"", more=False)
            return
        while True:
            chunk = await self._read()
            if not chunk:
                break
            out = [e for ev in self._decoder.feed(chunk) for e in self._tr.feed(ev)]
            if out:
                await self._send(b"".join(sse.encode(e.data, e.event) for e in out))
                error = _first_error(out)
                if error is not None:
                    raise StreamFailed("stream_error", error, reported=True)
        if self._tr.usage is not None:
            self._ex.usage = self._tr.usage
        if self._tr.finish is None:
            raise StreamFailed("truncated", "upstream stream ended before it was complete")
        closing = self._tr.close()
        if closing:
            await self._send(b"".join(sse.encode(e.data, e.event) for e in closing))
        await self._send(b"", more=False)
