"""`POST /chat`: the simple front door, served by the OpenAI chat path it wraps.

The `/chat` body becomes an OpenAI chat request (`translate.simple_openai`), which runs
through the same handler as `/v1/chat/completions`: same keys, limits, routing, failover,
tracing and usage. Only its answer is rewritten on the way out: a 200 JSON completion
becomes `{text, model, backend, usage, request_id}`, a 200 stream becomes `{"text": delta}`
events and a summary event; errors pass through in the OpenAI shape, as sent.

The caller's key is read from `settings.key_headers` (so `x-internal-auth` works here) and
handed to the inner handler as `Authorization: Bearer`. Invariant: the inner handler sees one
well-formed OpenAI request whose `x-request-id` is this request's; a stream ends with exactly
one summary or error event, and keepalive comments pass through untouched.
"""

from collections.abc import Awaitable, Callable, Iterable

from proxy import asgi, errors
from proxy.auth import pick_key
from proxy.front.api import Api
from proxy.runtime import Snapshot
from proxy.sse import Decoder
from proxy.translate import simple_openai

Inner = Callable[[asgi.Scope, asgi.Receive, asgi.Send], Awaitable[None]]
# Replaced for the inner request. `content-type` is kept: the inner door's JSON-only check
# (a cross-site page may post text/plain without a preflight) sees what the client sent.
_HOP = (b"content-length", b"content-encoding", b"x-request-id", b"authorization", b"x-api-key")


async def serve(
    scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send, inner: Inner, snapshot: Snapshot
) -> None:
    headers = asgi.headers_of(scope)
    rid = headers.get(b"x-request-id")
    request_id = rid.decode("latin-1")[:128] if rid else asgi.new_request_id()
    if scope["method"] != "POST":
        err = errors.MethodNotAllowed("/chat takes POST")
        await _fail(send, err, request_id, [(b"allow", b"POST")])
        return
    settings = snapshot.settings
    try:
        key = snapshot.keyring.identify_headers(scope["headers"], settings.key_headers)
        presented = pick_key(scope["headers"], settings.key_headers) if key.digest else None
        _json_only(headers.get(b"content-type"))
        timeouts = settings.timeouts
        body = await asgi.read_body(headers, receive, settings.max_body, timeouts.client_body)
        req = simple_openai.decode(body)
        openai_body = simple_openai.to_openai(
            req, simple_openai.model_name(req, settings.default_model)
        )
    except errors.ProxyError as err:
        if not isinstance(err, errors.ClientClosed):  # nobody left to tell
            await _fail(send, err, request_id)
        return
    drop = {*_HOP, *(h.encode("latin-1") for h in settings.key_headers)}
    inner_headers = [(k, v) for k, v in scope["headers"] if k.lower() not in drop]
    inner_headers += [
        (b"content-length", str(len(openai_body)).encode()),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    if presented is not None:
        inner_headers.append((b"authorization", b"Bearer " + presented))
    path = "/v1/chat/completions"
    inner_scope = {**scope, "path": path, "raw_path": path.encode(), "headers": inner_headers}
    body_sent = False

    async def inner_receive() -> asgi.Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": openai_body, "more_body": False}
        return await receive()  # the inner handler watches for the client going away

    await inner(inner_scope, inner_receive, _Rewriter(send, request_id).send)


def _json_only(content_type: bytes | None) -> None:
    """As on every JSON door: a cross-site page can post `text/plain` without a preflight."""
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not media.endswith(b"+json"):
        shown = media.decode("latin-1") or "none"
        raise errors.UnsupportedMediaType(
            f"send the request body as JSON with 'content-type: application/json' (got {shown})"
        )


async def _fail(
    send: asgi.Send,
    err: errors.ProxyError,
    request_id: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """An error before the inner handler answered, in the OpenAI shape."""
    status, headers, body = errors.render(err, "openai", request_id)
    headers += [(b"x-request-id", request_id.encode("latin-1")), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Rewriter:
    """The inner handler's `send`: rewrites a 200 answer or stream into the `/chat` shape."""

    def __init__(self, send: asgi.Send, request_id: str) -> None:
        self._send = send
        self._request_id = request_id
        self._mode = "pass"  # pass | answer | stream
        self._start: asgi.Message | None = None
        self._buffer: list[bytes] = []
        self._decoder = Decoder()
        self._stream: simple_openai.Stream | None = None

    async def send(self, message: asgi.Message) -> None:
        if message["type"] == "http.response.start":
            await self._begin(message)
        elif message["type"] == "http.response.body" and self._mode == "answer":
            await self._answer(message)
        elif message["type"] == "http.response.body" and self._mode == "stream":
            await self._chunk(message)
        else:
            await self._send(message)

    async def _begin(self, message: asgi.Message) -> None:
        headers = list(message.get("headers", ()))
        found = dict((k.lower(), v) for k, v in headers)
        if message["status"] != 200:
            await self._send(message)
            return
        backend = found.get(b"x-proxy-backend", b"").decode("latin-1")
        if found.get(b"content-type", b"").startswith(b"text/event-stream"):
            self._mode = "stream"
            self._stream = simple_openai.Stream(backend, self._request_id)
            kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            await self._send({**message, "headers": kept})
        else:
            self._mode = "answer"
            self._start = {**message, "backend": backend}

    async def _answer(self, message: asgi.Message) -> None:
        self._buffer.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start = self._start
        assert start is not None
        try:
            body = simple_openai.answer(b"".join(self._buffer), start["backend"], self._request_id)
        except errors.ProxyError as err:
            await _fail(self._send, err, self._request_id)
            return
        headers = [
            (k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"
        ] + [(b"content-length", str(len(body)).encode())]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def _chunk(self, message: asgi.Message) -> None:
        stream = self._stream
        assert stream is not None
        raw: bytes = message.get("body", b"")
        events = self._decoder.feed(raw)
        out = b"".join(stream.feed(event) for event in events)
        if not events and raw.strip().startswith(b":"):
            out = raw  # a keepalive comment: keep idle timeouts in between at bay
        more = bool(message.get("more_body", False))
        if not more and not stream.done:
            err = errors.BadGateway("the backend's stream ended before its answer did")
            out += errors.stream_event(err, "openai").replace(b"data: ", b"event: error\ndata: ", 1)
        if out or not more:
            await self._send({"type": "http.response.body", "body": out, "more_body": more})


class SimpleChat:
    """The `/chat` front door: an ASGI callable on the fast lane, in front of `api.chat`."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        runtime = self.api.runtime
        assert runtime is not None, "lifespan did not run"
        await serve(scope, receive, send, self.api.chat, runtime.snapshot)
