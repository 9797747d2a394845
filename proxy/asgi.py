"""Raw ASGI plumbing for the hot path: request headers and ids, the body, disconnects.

The `/v1/*` handlers speak ASGI directly (no request/response objects per call): this module
holds the few request-side primitives they share; everything sent back goes through
`proxy.core.exchange`. Header names are lower-case bytes, as ASGI gives them.
"""

import asyncio
import itertools
import os
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from proxy import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

# Never forwarded upstream: hop-by-hop headers, framing the gateway redoes, and every way a
# client can present a credential (the backend's own key is added by its adapter).
_NOT_FORWARDED = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"content-type",
        b"content-encoding",  # the body is forwarded decoded (or refused)
        b"expect",  # 100-continue is between the client and us; upstreams would wait for it
        b"accept-encoding",  # upstream answers identity: usage must stay readable
        b"accept",
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"x-goog-api-key",
        b"cookie",
        b"openai-organization",
        b"openai-project",
        b"x-request-id",  # replaced by the gateway's (the client's own when it sent one)
    }
)
# Provider-specific headers that only make sense to that provider's API.
_ANTHROPIC_ONLY = frozenset(
    {b"anthropic-version", b"anthropic-beta", b"anthropic-dangerous-direct-browser-access"}
)


def header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return v  # type: ignore[no-any-return]
    return None


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    """The request headers as a dict (last one wins), built once per request in C."""
    return dict(scope["headers"])


_ID_PREFIX = "req_" + os.urandom(6).hex()  # per worker process
_ids = itertools.count(1)


def new_request_id() -> str:
    """Unique across workers and restarts (random per-process prefix, then a counter)."""
    return f"{_ID_PREFIX}{next(_ids):010x}"


def forwarded_headers(
    headers: Sequence[tuple[bytes, bytes]], anthropic: bool, request_id: str
) -> list[tuple[str, str]]:
    """The client's headers that travel upstream (decoded), minus credentials and hop-by-hop,
    plus the request id."""
    out: list[tuple[str, str]] = [("x-request-id", request_id)]
    nominated: set[bytes] = set()
    for k, v in headers:
        if k == b"connection":  # RFC 9110 7.6.1: headers it names are hop-by-hop too
            nominated.update(t.strip().lower() for t in v.split(b","))
    for k, v in headers:
        if k in _NOT_FORWARDED or k in nominated or (not anthropic and k in _ANTHROPIC_ONLY):
            continue
        if k.startswith(b"x-proxy-") or k.startswith(b"sec-"):
            continue
        out.append((k.decode("latin-1"), v.decode("latin-1")))
    return out


MAX_DRAIN = 64 * 2**20  # bytes of an oversized body read and dropped before the 413


async def read_body(
    headers: dict[bytes, bytes], receive: Receive, limit: int, within: float = 30.0
) -> bytes:
    """The whole request body, decoded if it was sent gzip- or deflate-compressed.

    PayloadTooLarge once it is known to exceed `limit` (the rest is read and dropped first,
    up to `MAX_DRAIN` bytes, so the client gets the 413 instead of a reset connection);
    RequestTimeout when the client takes longer than `within` seconds to send it all;
    UnsupportedMediaType for any other content encoding.
    """
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    if encoding not in (b"identity", b"gzip", b"x-gzip", b"deflate"):
        raise errors.UnsupportedMediaType(
            f"content-encoding {encoding.decode('latin-1')!r} is not supported: send the body "
            "uncompressed, or gzip-compressed with 'content-encoding: gzip'"
        )
    length = headers.get(b"content-length")
    # One timer handle, not `asyncio.timeout` (its object and task lookups cost more than
    # reading a small body that granian already holds).
    task = asyncio.current_task()
    assert task is not None
    expired: list[bool] = []
    cancelling = task.cancelling()
    timer = asyncio.get_running_loop().call_later(within, _expire, task, expired)
    try:
        if length is not None and length.isdigit() and int(length) > limit:
            await _drain(receive, {"more_body": True})
            raise errors.PayloadTooLarge(
                f"request body is {int(length)} bytes; this gateway accepts at most {limit} "
                "bytes (settings.max_body): send a smaller request"
            )
        body = await _read(receive, limit)
    except asyncio.CancelledError:
        if not expired or task.uncancel() > cancelling:  # someone else's cancel goes on
            raise
        raise errors.RequestTimeout(
            f"the request body did not arrive within timeouts.client_body={within:g}s: "
            "send the whole body promptly"
        ) from None
    finally:
        timer.cancel()
    if encoding == b"identity":
        return body
    return _decompress(body, encoding, limit)


def _expire(task: "asyncio.Task[Any]", expired: list[bool]) -> None:
    expired.append(True)
    task.cancel()


async def _read(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.ClientClosed("client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _drain(receive, message)
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def _drain(receive: Receive, message: Message) -> None:
    """Read what is left of a body we refuse, within a bound, so the answer can be read."""
    dropped = 0
    while message.get("more_body", False) and dropped < MAX_DRAIN:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        dropped += len(message.get("body", b""))


def _decompress(body: bytes, encoding: bytes, limit: int) -> bytes:
    """A compressed request body, inflated to at most `limit` bytes (a small bomb stays small)."""
    wbits = zlib.MAX_WBITS | 16 if encoding in (b"gzip", b"x-gzip") else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise errors.BadRequest(
            f"request body is not valid {encoding.decode()} data: {exc}"
        ) from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    return out


def _too_large(limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"request body exceeds {limit} bytes (settings.max_body): send a smaller request"
    )


class Watchdog:
    """Cancels the handler's task when the client goes away or `timeouts.total` runs out.

    granian swallows `send()` after a disconnect, so the only reliable signal is
    `http.disconnect` from `receive()`. The watcher task starts only if the request is still
    running after `DELAY` seconds: quick requests pay for one timer handle, nothing more.
    With `drain`, a disconnect is noted but the upstream is still read to its end (bounded by
    the deadline), so usage is counted.
    """

    DELAY = 0.25  # long enough that a loaded gateway does not start one per request
    __slots__ = (
        "_deadline",
        "_drain",
        "_handle",
        "_receive",
        "_task",
        "_watcher",
        "expired",
        "gone",
    )

    def __init__(self, receive: Receive, total: float, drain: bool) -> None:
        loop = asyncio.get_running_loop()
        self._receive = receive
        self._drain = drain
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._deadline = loop.time() + total
        self.gone = False
        self.expired = False
        self._handle = loop.call_later(min(self.DELAY, total), self._start)

    def _start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.gone:
            try:
                async with asyncio.timeout_at(self._deadline):
                    message = await self._receive()
            except TimeoutError:
                break
            if message["type"] == "http.disconnect":
                self.gone = True
                if not self._drain:
                    self._cancel()
                    return
        await asyncio.sleep(max(0.0, self._deadline - loop.time()))
        self.expired = True
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def close(self) -> None:
        self._handle.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
