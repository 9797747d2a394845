"""One transport per backend: a pooled aiohttp session, or the in-process mock.

Both answer through the same small interface, so the attempt loop never asks which it has.
Every way an attempt can break here is raised as `errors.UpstreamFailure` (connect, timeout,
reset, protocol).
Sessions live as long as their backend's config is unchanged (reloads keep them), never
decompress (bytes pass through as the upstream sent them), and bound every wait:
`connect` by the connector, `first_byte` until response headers, `idle` between chunks.
"""

import zlib
from collections.abc import Mapping
from typing import Protocol

import aiohttp

from proxy.config import Backend, Timeouts
from proxy.errors import UpstreamFailure
from proxy.providers.base import UpstreamRequest


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read_chunk(self) -> bytes:
        """Whatever arrived next; b"" at the end. Cancelling it loses nothing."""
        ...

    async def read(self, limit: int) -> bytes:
        """The whole body (at most `limit` bytes)."""
        ...

    def release(self) -> None:
        """Done with it: a fully read connection goes back to the pool, else it is closed."""
        ...


class Transport(Protocol):
    in_flight: int

    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class _HttpResponse:
    __slots__ = ("_idle", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float) -> None:
        self._resp = resp
        self._idle = idle
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read_chunk(self) -> bytes:
        try:
            return await self._resp.content.readany()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamFailure(
                "timeout", f"upstream sent nothing for idle={self._idle:g}s mid-response"
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamFailure("reset", f"upstream stream broke: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure("reset", f"upstream connection lost: {exc}") from exc

    async def read(self, limit: int) -> bytes:
        length = self._resp.content_length
        if length is not None and length <= limit:
            try:
                return await self._resp.read()
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise UpstreamFailure(
                    "timeout", f"upstream sent nothing for idle={self._idle:g}s mid-body"
                ) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise UpstreamFailure("reset", f"upstream body broke off: {exc}") from exc
        chunks: list[bytes] = []
        size = 0
        while chunk := await self.read_chunk():
            size += len(chunk)
            if size > limit:
                raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def release(self) -> None:
        self._resp.release()


class _Inflating:
    """An upstream answer sent compressed although the gateway asked for identity: inflated
    here, so usage stays readable and the client gets plain bytes (a misconfigured proxy in
    front of a backend does this; it is not a malformed answer)."""

    __slots__ = ("_inner", "_zlib", "headers", "status")

    def __init__(self, inner: _HttpResponse, encoding: str) -> None:
        self._inner = inner
        gzip = encoding in ("gzip", "x-gzip")
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self.status = inner.status
        self.headers = inner.headers

    def _inflate(self, data: bytes, limit: int) -> bytes:
        try:
            out = self._zlib.decompress(data, limit + 1)
        except zlib.error as exc:
            message = f"upstream sent a broken compressed body: {exc}"
            raise UpstreamFailure("protocol", message) from exc
        if len(out) > limit or self._zlib.unconsumed_tail:
            raise UpstreamFailure("protocol", f"upstream response larger than {limit} bytes")
        return out

    async def read_chunk(self) -> bytes:
        while chunk := await self._inner.read_chunk():
            out = self._inflate(chunk, MAX_INFLATED)
            if out:
                return out
        return self._zlib.flush()

    async def read(self, limit: int) -> bytes:
        return self._inflate(await self._inner.read(limit), limit)

    def release(self) -> None:
        self._inner.release()


MAX_INFLATED = 64 * 2**20  # bytes one compressed upstream chunk may inflate to


class HttpTransport:
    """A pooled aiohttp session for one backend."""

    def __init__(self, backend: Backend, timeouts: Timeouts) -> None:
        self.in_flight = 0
        self._timeouts = timeouts
        connector = aiohttp.TCPConnector(
            limit=backend.max_connections,
            limit_per_host=0,
            keepalive_timeout=30,
            ttl_dns_cache=60,
            enable_cleanup_closed=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.first_byte
            ),
            raise_for_status=False,
            # One session serves every client: a cookie one answer set must never ride on
            # another client's request (aiohttp's default jar would keep and resend it).
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        t = self._timeouts
        try:
            # sock_read (= first_byte until headers arrive) and sock_connect bound this await.
            resp = await self._session.request(
                request.method, request.url, data=request.body, headers=request.headers
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamFailure(
                "timeout", f"upstream connect timed out after connect={t.connect:g}s"
            ) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise UpstreamFailure(
                "timeout", f"upstream sent no response headers within first_byte={t.first_byte:g}s"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFailure("connect", f"cannot connect to upstream: {exc.strerror}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure("reset", f"upstream connection failed: {exc}") from exc
        # A stream's gaps between chunks are bounded by `idle`, not `first_byte`. Only for
        # streams: changing the read timeout of a connection whose whole body is already
        # buffered halves aiohttp's throughput (measured: 6.3k -> 3.2k req/s); a plain body's
        # gaps stay bounded by `first_byte`.
        if "event-stream" in resp.headers.get("content-type", ""):
            conn = resp.connection
            if conn is not None and conn.protocol is not None:
                conn.protocol.read_timeout = t.idle
        answer = _HttpResponse(resp, t.idle)
        encoding = resp.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            return _Inflating(answer, encoding)
        return answer

    async def close(self) -> None:
        await self._session.close()
