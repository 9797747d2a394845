"""The `/v1/*` front doors (OpenAI chat, completions, embeddings; Anthropic messages and
count_tokens): raw body → caller → route → `core.forward`.

These are plain ASGI callables (the hot path pays for no request/response objects). The body
is decoded only at its top level (`front.request`); every other field stays the client's
bytes. Every outcome, errors included, reaches the client through the request's
`Exchange`, in the front door's protocol; the request is reported once, in `finally`, however
it ended (cancelled by the client or the server included).
"""

import asyncio
import logging
import time
from pathlib import Path

import msgspec

from proxy import accesslog, asgi, auth, errors, telemetry
from proxy.admission import Overloaded
from proxy.cache import serve as cache_serve
from proxy.cache.store import Cache
from proxy.config import ClientKey, Settings
from proxy.core import forward
from proxy.core.exchange import Exchange
from proxy.core.rewrite import ClientRequest
from proxy.errors import Wire
from proxy.front.request import forwardable, parse, with_default_model
from proxy.front.responses import StoredResponses
from proxy.interactive import guard, steer
from proxy.providers.base import Endpoint
from proxy.record import RequestRecord
from proxy.routing import Route
from proxy.runtime import Runtime, Snapshot
from proxy.state import governance
from proxy.state.governor import Governor
from proxy.state.store import Verdict
from proxy.tracing import tracer

log = logging.getLogger("llm_proxy.api")


class Api:
    """The `/v1/*` handlers, bound to this worker's runtime (set in the app's lifespan)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.stored = StoredResponses()  # for previous_response_id, GET and DELETE
        self.governor: Governor | None = None  # limits, budgets and the usage ledger
        self.cache: Cache | None = None  # the response cache (used by routes that cache)
        self._open: set[asyncio.Task[object]] = set()  # requests being served
        self._closing = False  # grace is nearly over: open requests are being ended

    def close_open(self) -> None:
        """End every request still being served (the worker is about to be killed)."""
        self._closing = True
        for task in list(self._open):
            task.cancel()

    async def chat(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        await self._handle(scope, receive, send, "chat", "openai")

    async def completions(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        await self._handle(scope, receive, send, "completions", "openai")

    async def embeddings(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        await self._handle(scope, receive, send, "embeddings", "openai")

    async def messages(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        await self._handle(scope, receive, send, "messages", "anthropic")

    async def count_tokens(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        await self._handle(scope, receive, send, "count_tokens", "anthropic")

    async def responses(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        await self._handle(scope, receive, send, "responses", "openai")  # errors: OpenAI's shape

    async def response_by_id(
        self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send
    ) -> None:
        """`GET` / `DELETE /v1/responses/{id}`: a response this gateway stored."""
        assert self.runtime is not None, "lifespan did not run"
        await self.stored.by_id(scope, send, self.runtime.snapshot)

    async def _handle(
        self,
        scope: asgi.Scope,
        receive: asgi.Receive,
        send: asgi.Send,
        endpoint: Endpoint,
        front: Wire,
    ) -> None:
        t0 = time.perf_counter()
        headers = asgi.headers_of(scope)
        rid = headers.get(b"x-request-id")
        request_id = rid.decode("latin-1")[:128] if rid else asgi.new_request_id()
        rec = RequestRecord(request_id, endpoint, front, False, time.time())
        ex = Exchange(send, front, request_id, rec)
        if scope["method"] != "POST":
            err = errors.MethodNotAllowed(f"{scope['path']} takes POST")
            await ex.fail(err, [(b"allow", b"POST")])
            return
        runtime = self.runtime
        assert runtime is not None, "lifespan did not run"
        snapshot = runtime.snapshot
        with tracer.request("POST", scope["path"], headers, request_id=request_id) as span:
            gate = runtime.gate  # settings.max_concurrent, per worker
            try:
                await gate.enter()
                try:
                    await self._serve(scope, receive, ex, endpoint, headers, runtime, t0)
                finally:
                    gate.leave()
            except Overloaded as err:  # raised before the request was read: nothing sent yet
                await ex.fail(err)
            finally:
                rec.total_ms = (time.perf_counter() - t0) * 1000.0
                telemetry.finish(rec, snapshot.settings.log_prompts, span)

    async def _serve(
        self,
        scope: asgi.Scope,
        receive: asgi.Receive,
        ex: Exchange,
        endpoint: Endpoint,
        headers: dict[bytes, bytes],
        runtime: Runtime,
        t0: float,
    ) -> None:
        """Serve one request and settle it, however it ends."""
        snapshot = runtime.snapshot  # this request's table, whatever reloads happen meanwhile
        rec = ex.record
        task = asyncio.current_task()
        if task is not None:
            self._open.add(task)
        done = _Progress()
        try:
            await self._answer(scope, receive, ex, endpoint, headers, runtime, snapshot, t0, done)
        except errors.ProxyError as err:
            await ex.fail(err, _attempts_header(rec))
        except asyncio.CancelledError:
            if task is None or not await self._interrupted(task, ex, done, snapshot.settings):
                raise
        except Exception:
            log.exception("unexpected error in request %s", ex.request_id)
            internal = errors.Internal(
                f"internal error in the gateway; quote request id {ex.request_id} when reporting it"
            )
            await ex.fail(internal, _attempts_header(rec))
        finally:
            if task is not None:
                self._open.discard(task)
            await self._settle(runtime, rec, done)

    async def _answer(
        self,
        scope: asgi.Scope,
        receive: asgi.Receive,
        ex: Exchange,
        endpoint: Endpoint,
        headers: dict[bytes, bytes],
        runtime: Runtime,
        snapshot: Snapshot,
        t0: float,
        done: "_Progress",
    ) -> None:
        """Caller → body → session steering → route → limits → upstream (or the cache)."""
        settings = snapshot.settings
        rec = ex.record
        caller = done.caller = snapshot.keyring.identify_headers(
            scope["headers"], settings.key_headers
        )
        rec.key_name = caller.name
        _check_json(headers.get(b"content-type"))
        timeouts = settings.timeouts
        body = await asgi.read_body(headers, receive, settings.max_body, timeouts.client_body)
        body = with_default_model(body, settings.default_model)
        fields, model, stream, include_usage = parse(body, endpoint)
        rec.stream = stream
        telemetry.request_started(stream)
        done.counted = True
        # Sessions and in-chat commands: before the model check, so an override is checked.
        steered = await steer.steer(
            runtime.sessions,
            settings,
            headers=headers,
            fields=fields,
            front=ex.front,  # type: ignore[arg-type]
            endpoint=endpoint,
            model=model,
            stream=stream,
            include_usage=include_usage,
            key=caller,
            allowed=lambda: steer.allowed_for(caller, snapshot.table, snapshot.config),
            request_id=ex.request_id,
            now=time.time(),
        )
        done.session = rec.session = steered.session
        if isinstance(steered, steer.Reply):  # commands only: the gateway answers
            reply = [(b"content-type", steered.content_type), (b"x-proxy-backend", b"gateway")]
            await ex.answer(200, reply, steered.body)
            return
        fields, model = steered.fields, steered.model
        body = steered.body if steered.body is not None else body
        route = _route(snapshot, caller, model, steered.backend)
        rec.alias = route.alias
        if self.governor is not None:  # after auth and the model check: a refusal costs nothing
            done.verdict = await self._admit(ex, caller, route.alias, body, fields)
        if settings.log_prompts != "none":
            rec.prompt = accesslog.prompt_text(fields)
        extra = await self.stored.prepare(body, settings) if endpoint == "responses" else None
        req = ClientRequest(
            endpoint, ex.front, forwardable(body, fields), fields, model, stream,
            include_usage, ex.request_id, scope["headers"], extra,
        )  # fmt: skip
        done.watchdog = asgi.Watchdog(receive, timeouts.total, settings.on_disconnect == "drain")
        call = done.call = forward.Call(req, ex, runtime, snapshot, t0)
        if stream and ex.front in ("openai", "anthropic") and endpoint != "responses":
            call.loops = guard.guard_for(steer.loops_for(snapshot.config, route.alias), ex.front)
        if route.cache is None or self.cache is None:
            await forward.run(call, route)
        else:  # each key (and a session pinned to a backend) sees its own entries
            space = caller.digest.hex() or caller.name
            if steered.backend is not None:
                space += "\0" + steered.backend
            cc = headers.get(b"cache-control")
            await cache_serve.respond(self.cache, call, route, space, cc)

    async def _admit(
        self,
        ex: Exchange,
        caller: ClientKey,
        alias: str,
        body: bytes,
        fields: dict[str, msgspec.Raw],
    ) -> Verdict | None:
        """Limits and budget: the verdict to settle later, or the refusal raised."""
        assert self.governor is not None
        verdict = await self.governor.admit(
            caller, alias, len(body), governance.max_tokens_of(fields)
        )
        if verdict is None:
            return None
        ex.extra = governance.headers(verdict)  # x-ratelimit-* on every head this sends
        if not verdict.allowed:
            raise governance.error_for(verdict, caller.name)
        return verdict

    async def _interrupted(
        self, task: "asyncio.Task[object]", ex: Exchange, done: "_Progress", settings: Settings
    ) -> bool:
        """A cancel of our own (the client left, `timeouts.total` ran out, shutdown): answer
        for it and return True; anyone else's cancel: False, and it goes on."""
        watchdog = done.watchdog
        gone = watchdog is not None and watchdog.gone
        expired = watchdog is not None and watchdog.expired
        if not (gone or expired or self._closing):
            return False
        task.uncancel()
        extra = _attempts_header(ex.record)
        if gone:
            ex.record.error_type = "client_disconnected"
        elif self._closing and not expired:
            message = "the gateway is shutting down and its grace period is over; retry"
            await ex.fail(errors.ShuttingDown(message), extra)
        else:
            total = settings.timeouts.total
            message = f"request exceeded timeouts.total={total:g}s; the upstream took too long"
            await ex.fail(errors.GatewayTimeout(message), extra)
        return True

    async def _settle(self, runtime: Runtime, rec: RequestRecord, done: "_Progress") -> None:
        """What every request owes at its end: the watchdog stopped, counters, the session's
        loop count, and its limits reservation settled with its real usage and cost."""
        if done.watchdog is not None:
            done.watchdog.close()
        if rec.error_type == "loop_detected":
            await steer.count_loop(runtime.sessions, done.caller, done.session)
        if done.counted:
            telemetry.request_ended(rec.stream)
        call = done.call
        if self.governor is None or call is None:
            return
        hit = rec.cache == "hit"  # a cached answer: no upstream tokens, no cost
        cost = await self.governor.finish(
            done.verdict,
            key_name=rec.key_name or "",
            alias=rec.alias or "",
            backend=rec.backend or "",
            provider_model=rec.provider_model or "",
            price=None if hit else call.price,
            input_tokens=None if hit else rec.tokens_in,
            output_tokens=None if hit else rec.tokens_out,
            error=rec.status >= 400 or rec.error_type is not None,
        )
        rec.cost = 0.0 if hit else cost


class _Progress:
    """How far one request got: what `_settle` and `_interrupted` need to know."""

    __slots__ = ("call", "caller", "counted", "session", "verdict", "watchdog")

    def __init__(self) -> None:
        self.caller: ClientKey = auth.ANONYMOUS
        self.counted = False  # counted as started (so it is counted as ended)
        self.session: str | None = None
        self.verdict: Verdict | None = None  # an admitted limits reservation
        self.watchdog: asgi.Watchdog | None = None
        self.call: forward.Call | None = None  # it reached the attempt loop


def _route(snapshot: Snapshot, caller: ClientKey, model: str, backend: str | None) -> Route:
    """The route for `model`, if the key may use it (and only `backend`'s targets when a
    session is pinned to one)."""
    auth.check_model(caller, model)
    route = snapshot.table.resolve(model)
    if route is None:
        known = ", ".join(snapshot.table.suggestions(allowed=caller.models)) or "none"
        raise errors.UnknownModel(
            f"model '{model}' is not routed here; known: {known}", param="model"
        )
    if backend is None:
        return route
    pinned = steer.only_backend(route, backend)
    if pinned is None:
        raise errors.BadRequest(
            f"this session is pinned to backend '{backend}', which does not serve model "
            f"'{model}'; send !/unset(backend) or pick another model"
        )
    return pinned


SHUTDOWN_MARGIN = 1.0  # seconds before the kill that open requests are ended


async def watch_shutdown(api: Api, flag: Path, grace: float, poll: float = 0.25) -> None:
    """Run until cancelled: once `serve` writes `flag` (it was told to stop), wait until just
    before the grace period ends, then end every open request in its own protocol (an error
    event on a stream, a 503 otherwise), so each is answered and logged before the kill."""
    while not await asyncio.to_thread(flag.exists):  # noqa: ASYNC110 (a file is the signal)
        await asyncio.sleep(poll)
    await asyncio.sleep(max(0.0, grace - SHUTDOWN_MARGIN - poll))
    api.close_open()


def _attempts_header(rec: RequestRecord) -> list[tuple[bytes, bytes]]:
    """Once a request was routed, its errors say how many upstream attempts it made."""
    return [(b"x-proxy-attempts", str(rec.attempts).encode())] if rec.alias is not None else []


def _check_json(content_type: bytes | None) -> None:
    """JSON endpoints take JSON only: a cross-site page can send `text/plain` without a CORS
    preflight, and must not get to spend the gateway's backend keys that way."""
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    if media == b"application/json" or media.endswith(b"+json"):
        return
    shown = media.decode("latin-1") or "none"
    raise errors.UnsupportedMediaType(
        f"send the request body as JSON with 'content-type: application/json' (got {shown})"
    )
