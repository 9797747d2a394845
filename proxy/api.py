"""Front-door handlers for `/v1/*`: raw body → route → `forward.run`.

These are plain ASGI callables (the hot path pays for no request/response objects). The
body is decoded only at its top level (`dict[str, Raw]`): `model` and `stream` are read,
every other field stays the client's bytes. Errors are raised as `ProxyError` and rendered in
the front door's protocol.
"""

import asyncio
import logging
import math
import time
from typing import Any

import msgspec

from proxy import accesslog, auth, errors, forward, http, telemetry
from proxy.config import ClientKey
from proxy.errors import Wire
from proxy.providers.base import Endpoint
from proxy.reload import Runtime
from proxy.telemetry import RequestRecord
from proxy.tracing import tracer

log = logging.getLogger("llm_proxy.api")

_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_str = msgspec.json.Decoder(str)
_bool = msgspec.json.Decoder(bool)
_options = msgspec.json.Decoder(dict[str, Any])

# Fields each endpoint cannot do without, and the JSON type their value must have.
_REQUIRED: dict[str, tuple[tuple[str, bytes, str], ...]] = {
    "chat": (("messages", b"[", "an array of messages"),),
    "completions": (("prompt", b"", "a string or an array"),),
    "embeddings": (("input", b"", "a string or an array"),),
    "messages": (("messages", b"[", "an array of messages"), ("max_tokens", b"", "an integer")),
    "count_tokens": (("messages", b"[", "an array of messages"),),
}


def _parse(body: bytes, endpoint: Endpoint) -> tuple[dict[str, msgspec.Raw], str, bool, bool]:
    """Top-level fields, model, stream, and whether the client asked for usage in the stream."""
    if not body.strip():
        raise errors.BadRequest("request body is empty: send a JSON object with 'model'")
    try:
        fields = _top_level.decode(body)
    except msgspec.ValidationError as exc:
        raise errors.BadRequest(f"request body must be a JSON object: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise errors.BadRequest("request body is nested too deeply to be a request") from exc
    raw_model = fields.get("model")
    if raw_model is None:
        raise errors.BadRequest("missing required field 'model'", param="model")
    try:
        model = _str.decode(raw_model)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise errors.BadRequest("'model' must be a string naming a model", param="model") from exc
    for name, first, what in _REQUIRED[endpoint]:
        value = fields.get(name)
        if value is None or bytes(value) == b"null":
            raise errors.BadRequest(f"missing required field '{name}' ({what})", param=name)
        if first and bytes(value).lstrip()[:1] != first:
            raise errors.BadRequest(f"'{name}' must be {what}", param=name)
    stream = False
    raw_stream = fields.get("stream")
    if raw_stream is not None and bytes(raw_stream) != b"null":
        try:
            stream = _bool.decode(raw_stream)
        except msgspec.DecodeError as exc:
            raise errors.BadRequest("'stream' must be true or false", param="stream") from exc
    include_usage = False
    raw_options = fields.get("stream_options")
    if stream and raw_options is not None and bytes(raw_options) != b"null":
        try:
            options = _options.decode(raw_options)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise errors.BadRequest(
                "'stream_options' must be an object", param="stream_options"
            ) from exc
        include_usage = options.get("include_usage") is True
    if endpoint == "embeddings" and stream:
        raise errors.BadRequest("embeddings cannot be streamed", param="stream")
    return fields, model, stream, include_usage


class Api:
    """The `/v1/*` handlers, bound to this worker's runtime (set in the app's lifespan)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    async def chat(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        await self._handle(scope, receive, send, "chat", "openai")

    async def completions(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        await self._handle(scope, receive, send, "completions", "openai")

    async def embeddings(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        await self._handle(scope, receive, send, "embeddings", "openai")

    async def messages(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        await self._handle(scope, receive, send, "messages", "anthropic")

    async def count_tokens(self, scope: http.Scope, receive: http.Receive, send: http.Send) -> None:
        await self._handle(scope, receive, send, "count_tokens", "anthropic")

    async def _handle(
        self,
        scope: http.Scope,
        receive: http.Receive,
        send: http.Send,
        endpoint: Endpoint,
        front: Wire,
    ) -> None:
        t0 = time.perf_counter()
        headers = http.headers_of(scope)
        rid = headers.get(b"x-request-id")
        request_id = rid.decode("latin-1")[:128] if rid else http.new_request_id()
        if scope["method"] != "POST":
            err = errors.MethodNotAllowed(f"{scope['path']} takes POST")
            await http.respond_error(send, err, front, request_id, [(b"allow", b"POST")])
            return
        runtime = self.runtime
        assert runtime is not None, "lifespan did not run"
        rec = RequestRecord(request_id, endpoint, front, False, time.time())
        with tracer.request("POST", scope["path"], scope["headers"], request_id=request_id) as span:
            await self._serve(scope, receive, send, endpoint, front, headers, rec, runtime, t0)
            rec.total_ms = (time.perf_counter() - t0) * 1000.0
            telemetry.finish(rec, runtime.snapshot.settings.log_prompts, span)

    async def _serve(
        self,
        scope: http.Scope,
        receive: http.Receive,
        send: http.Send,
        endpoint: Endpoint,
        front: Wire,
        headers: dict[bytes, bytes],
        rec: RequestRecord,
        runtime: Runtime,
        t0: float,
    ) -> None:
        snapshot = runtime.snapshot  # this request's table, whatever reloads happen meanwhile
        settings = snapshot.settings
        request_id = rec.request_id
        ex: forward.Exchange | None = None
        watchdog: http.Watchdog | None = None
        caller = auth.ANONYMOUS
        counted = False
        try:
            caller = snapshot.keyring.identify(
                headers.get(b"authorization"), headers.get(b"x-api-key")
            )
            rec.key_name = caller.name
            if caller.rpm is not None or caller.tpm is not None:
                _admit(runtime, caller)
            body = await http.read_body(headers, receive, settings.max_body)
            fields, model, stream, include_usage = _parse(body, endpoint)
            rec.stream = stream
            telemetry.request_started(stream)
            counted = True
            auth.check_model(caller, model)
            route = snapshot.table.resolve(model)
            if route is None:
                known = ", ".join(snapshot.table.suggestions()) or "none configured"
                raise errors.UnknownModel(
                    f"model '{model}' is not routed here; known: {known}", param="model"
                )
            rec.alias = route.alias
            if settings.log_prompts != "none":
                rec.prompt = accesslog.prompt_text(fields)
            ex = forward.Exchange(
                scope, send, request_id, front, endpoint, body, fields, model, stream,
                include_usage, t0, rec,
            )  # fmt: skip
            watchdog = http.Watchdog(
                receive, settings.timeouts.total, settings.on_disconnect == "drain"
            )
            await forward.run(ex, runtime, snapshot, route)
        except errors.ProxyError as err:
            await _fail(send, err, front, rec, ex)
        except http.ClientGone:
            rec.error_type = "client_disconnected"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if watchdog is None or task is None or not (watchdog.gone or watchdog.expired):
                raise
            task.uncancel()  # our own cancel: the client left, or the deadline passed
            if watchdog.gone:
                rec.error_type = "client_disconnected"
            else:
                total = settings.timeouts.total
                expired = errors.GatewayTimeout(
                    f"request exceeded timeouts.total={total:g}s; the upstream took too long"
                )
                await _fail(send, expired, front, rec, ex)
        except Exception:
            log.exception("unexpected error in request %s", request_id)
            internal = errors.Internal(
                f"internal error in the gateway; quote request id {request_id} when reporting it"
            )
            await _fail(send, internal, front, rec, ex)
        finally:
            if watchdog is not None:
                watchdog.close()
            if counted:
                telemetry.request_ended(rec.stream)
            if ex is not None:
                rec.attempts = ex.attempts
                if ex.usage is not None:
                    rec.tokens_in, rec.tokens_out = ex.usage
                    if caller.tpm is not None:
                        runtime.limiter.charge(
                            caller.name, sum(ex.usage), caller.tpm, time.monotonic()
                        )


def _admit(runtime: Runtime, caller: ClientKey) -> None:
    verdict = runtime.limiter.admit(caller.name, caller.rpm, caller.tpm, time.monotonic())
    if not verdict.allowed:
        wait = max(1, math.ceil(verdict.retry_after))
        raise errors.RateLimited(
            f"key '{caller.name}' is over its rate limit ({verdict.reason} per minute); "
            f"retry after {wait}s",
            headers=(("retry-after", str(wait)), ("x-should-retry", "true")),
        )


async def _fail(
    send: http.Send,
    err: errors.ProxyError,
    front: Wire,
    rec: RequestRecord,
    ex: forward.Exchange | None,
) -> None:
    rec.status = err.status if rec.status == 0 else rec.status  # a stream keeps its 200
    rec.error_type = err.code or err.type
    if ex is not None and ex.started:
        body = errors.stream_event(err, front)
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    extra = [(b"x-proxy-attempts", str(ex.attempts).encode())] if ex is not None else []
    await http.respond_error(send, err, front, rec.request_id, extra)
