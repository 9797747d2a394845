"""One request's attempts: candidates → adapter → upstream → (commit) → client.

The loop walks the route's candidates in order (tiers, then strategy), skipping open
circuits, for at most `1 + retries` attempts. Every way an attempt can fail is one
`UpstreamFailure`: connect errors, timeouts, failover statuses and streams that break before
they commit move on to the next candidate; client errors (400/413/422...) are returned as the
upstream sent them (translated when protocols differ). A stream may fail over until it
commits (`stream.py`); after that a failure has ended it with an error event and the loop
stops. The loop owns each target's circuit verdict; everything the client receives goes
through the request's `Exchange`.
"""

import logging
import time

import msgspec

from proxy import errors, responses_route, synthesize, telemetry, tokens, translate
from proxy.asgi import forwarded_headers
from proxy.config import Price
from proxy.core import answers, responses
from proxy.core.exchange import Exchange
from proxy.core.relay import relay
from proxy.core.responses import ResponsesCall
from proxy.core.rewrite import ClientRequest, body_for, endpoint_on
from proxy.core.stream import Stream
from proxy.errors import UpstreamFailure
from proxy.interactive.guard import LoopGuard
from proxy.providers.base import Unsupported, UpstreamRequest
from proxy.providers.transport import UpstreamResponse
from proxy.resilience import Circuit, is_failover, retry_after
from proxy.routing import Candidate, Route, TargetKey, order, ranker
from proxy.runtime import BackendState, Runtime, Snapshot
from proxy.tracing import AttemptSpan, tracer
from proxy.translate import responses_replay
from proxy.translate.caps import clamp_output
from proxy.usage import from_body

log = logging.getLogger("llm_proxy.forward")

MAX_RESPONSE = 64 * 2**20  # a non-streaming upstream body larger than this is refused
_encode = msgspec.json.Encoder().encode


class Call:
    """One request on its way through the attempt loop."""

    __slots__ = ("ex", "loops", "price", "req", "runtime", "snapshot", "t0", "upstream_time")

    def __init__(
        self, req: ClientRequest, ex: Exchange, runtime: Runtime, snapshot: Snapshot, t0: float
    ) -> None:
        self.req = req
        self.ex = ex
        self.runtime = runtime
        self.snapshot = snapshot  # this request's table, whatever reloads happen meanwhile
        self.t0 = t0
        self.upstream_time = 0.0  # seconds spent waiting on upstreams (for the overhead)
        self.price: Price | None = None  # the last target tried: what its tokens cost
        self.loops: LoopGuard | None = None  # watches a stream's output when detection is on


async def run(call: Call, route: Route) -> None:
    """Answer the client from the route's targets; every outcome goes out through `call.ex`."""
    circuits = call.runtime.circuits
    now = time.monotonic()

    def usable(key: TargetKey) -> bool:
        c = circuits.get(key)
        return c is None or c.usable(now)

    rng = call.runtime.rng
    candidates = order(route, rng, usable, ranker(route, circuits, rng))
    if not candidates:
        raise answers.no_target(route, circuits, now)
    if call.req.stream:
        call.ex.keepalive(call.snapshot.settings.keepalive)
    try:
        await _attempts(call, route, candidates)
    finally:
        await call.ex.quiet()


async def _attempts(call: Call, route: Route, candidates: list[Candidate]) -> None:
    settings = call.snapshot.settings
    circuits = call.runtime.circuits
    ex = call.ex
    rec = ex.record
    last: UpstreamFailure | None = None
    for cand in candidates[: 1 + settings.retries]:
        state = call.snapshot.backends[cand.key.backend]
        circuit = circuits.get(cand.key)
        if circuit is None:
            circuit = circuits[cand.key] = Circuit()
        now = time.monotonic()
        if not circuit.usable(now):  # another request took the half-open probe meanwhile
            continue
        if call.req.endpoint == "count_tokens" and state.adapter.wire != "anthropic":
            await _estimate_tokens(call, cand.key)  # only Anthropic can count: estimate
            return
        rec.attempts += 1
        rec.backend, rec.provider_model = cand.key  # the last target tried is the one logged
        rec.backend_type = state.config.type
        call.price = cand.price
        telemetry.attempt_started(cand.key.backend, cand.label)
        probe = circuit.begin(now)
        state.transport.in_flight += 1
        try:
            ttfb = await _attempt(call, state, cand.key, circuit.state(now))
        except UpstreamFailure as failure:
            last = failure
        except BaseException:  # cancelled (client gone) or a gateway error: no verdict
            circuit.release(probe)
            raise
        else:
            circuit.succeed(ttfb)
            return
        finally:
            state.transport.in_flight -= 1
        kind = telemetry.failure_kind(last.kind, last.status, ex.committed)
        telemetry.attempt_failed(cand.key.backend, cand.label, kind)
        if last.kind == "unsupported":  # the target is fine; it just can't serve this
            circuit.release(probe)
        else:
            ra = retry_after(last.headers, time.time()) if last.status in (429, 503, 529) else None
            circuit.fail(
                time.monotonic(),
                last.message,
                settings.failure_threshold,
                settings.cooldown,
                ra,
                probe,
            )
        log.warning("attempt %d on %s/%s failed: %s", rec.attempts, *cand.key, last.message)
        if ex.committed:  # a committed stream cannot move to another target
            return
    if last is None:
        raise answers.no_target(route, circuits, time.monotonic())
    await _exhausted(ex, last)


async def _exhausted(ex: Exchange, last: UpstreamFailure) -> None:
    """Failover is spent: tell the client what the last target said, in its protocol."""
    rec = ex.record
    extra = [(b"x-proxy-attempts", str(rec.attempts).encode()), (b"x-should-retry", b"false")]
    status = last.status or (504 if last.kind == "timeout" else 502)
    if last.status is not None and ex.front != "gemini":
        if ex.started:
            await ex.fail(errors.BadGateway(f"upstream failed: {last.message}"))
        else:
            code, headers, body = answers.upstream_answer(last, ex.front)
            await ex.answer(code, [*headers, *extra], body)
    else:
        await ex.fail(last.error("every upstream attempt failed; last: "), extra)
    rec.status = status
    rec.error_type = f"upstream_{last.status}" if last.status else last.kind


async def _attempt(
    call: Call, state: BackendState, key: TargetKey, circuit_state: str
) -> float | None:
    """One upstream attempt. Returns when the client has its answer (the time to first byte,
    or None when the upstream refused the request itself with a client error); raises
    `UpstreamFailure` to fail over. The caller owns the circuit verdict."""
    req = call.req
    wire = state.adapter.wire
    config = state.config
    with tracer.attempt(
        req, key, config.type, call.ex.record.attempts, base_url=config.base_url,
        circuit=circuit_state,
    ) as span:  # fmt: skip
        try:
            forwarded = forwarded_headers(req.headers, wire == "anthropic", req.request_id)
            tracer.inject(forwarded)
            if req.responses is not None:  # the Responses API: pass through or translate
                stream = req.stream and config.stream
                r = responses_route.route(
                    req.body, req.responses.request, config, wire, key.model, stream,
                    req.responses.history, state.adapter.translator,
                )  # fmt: skip
                endpoint, body = r.endpoint, r.body
            else:
                endpoint = endpoint_on(req.endpoint, wire)
                body = body_for(req, wire, config.stream, key.model, state.adapter.translator)
            request = state.adapter.build(
                endpoint,
                clamp_output(body, wire, config.max_output_tokens),
                key.model,
                req.stream and config.stream,
                forwarded,
            )
            return await _exchange(call, state, key, request, span)
        except Unsupported as exc:
            span.fail("unsupported")
            raise UpstreamFailure(
                "unsupported",
                f"backend '{key.backend}' ({config.type}) does not serve {exc.endpoint}",
            ) from exc
        except UpstreamFailure as failure:
            span.fail(str(failure.status) if failure.kind == "status" else failure.kind)
            raise


async def _exchange(
    call: Call, state: BackendState, key: TargetKey, request: UpstreamRequest, span: AttemptSpan
) -> float | None:
    """Send one built request and answer the client from what comes back."""
    req, ex = call.req, call.ex
    wire = state.adapter.wire
    sent = time.perf_counter()
    try:
        upstream = await state.transport.send(request)
    finally:
        call.upstream_time += time.perf_counter() - sent
    headers_at = time.perf_counter()
    try:
        if upstream.status >= 400:
            data = await upstream.read(MAX_RESPONSE)
            call.upstream_time += time.perf_counter() - headers_at
            if is_failover(upstream.status):
                raise UpstreamFailure(
                    "status",
                    f"upstream answered {upstream.status}",
                    status=upstream.status,
                    headers={k.lower(): v for k, v in upstream.headers.items()},
                    body=data,
                    wire=wire,
                )
            span.fail(str(upstream.status))
            await _client_error(call, state, key, upstream, data)
            return None  # the target is healthy: the request was at fault
        if req.stream and state.config.stream and req.responses is not None:
            await _relay_responses(call, state, key, upstream, span, req.responses)
            return headers_at - sent
        if req.stream and state.config.stream:
            own = state.adapter.translator
            tr = None if req.front == wire else translate.choose(req.front, wire, own)
            stream = Stream(
                req.front,
                tr.Stream(
                    req.model,
                    include_usage=req.include_usage,
                    id=req.request_id,
                    created=int(time.time()),
                )
                if tr is not None
                else None,
                req.include_usage,
                upstream=wire,
                framing=state.adapter.framing,
            )
            await relay(ex, upstream, stream, key, span, call.t0, call.loops)
            return headers_at - sent
        data = await upstream.read(MAX_RESPONSE)
        call.upstream_time += time.perf_counter() - headers_at
    finally:
        upstream.release()
    await _answer(call, key, state, data, span, upstream)
    return headers_at - sent


async def _relay_responses(
    call: Call,
    state: BackendState,
    key: TargetKey,
    upstream: UpstreamResponse,
    span: AttemptSpan,
    resp: ResponsesCall,
) -> None:
    """A Responses stream: relayed as it is from a Responses backend, else translated (and,
    once complete, stored for continuations)."""
    wire = state.adapter.wire
    tr = responses_route.translator_for(state.config, wire, state.adapter.translator)
    translated = (
        tr.Stream(call.req.model, id=resp.id, created=resp.created, request=resp.request)
        if tr is not None
        else None
    )
    stream = Stream(
        call.req.front,
        translated,
        False,
        upstream=wire,
        framing=state.adapter.framing,
        responses=True,
    )
    await relay(call.ex, upstream, stream, key, span, call.t0)
    if translated is not None:
        await responses.keep(resp, translated.response)


async def _answer(
    call: Call,
    key: TargetKey,
    state: BackendState,
    data: bytes,
    span: AttemptSpan,
    upstream: UpstreamResponse,
) -> None:
    """A whole upstream answer to the client: as it is, translated, or replayed as a stream
    (for a `stream: false` backend)."""
    req, ex = call.req, call.ex
    rec = ex.record
    resp = req.responses
    wire = state.adapter.wire
    tr = None if req.front == wire else translate.choose(req.front, wire, state.adapter.translator)
    try:
        if resp is not None:
            data = await _responses_answer(call, resp, state, data)
            usage = from_body(data, "anthropic")  # input_tokens / output_tokens, as Anthropic
        else:
            if tr is not None:
                data = tr.response(data, req.model, id=req.request_id, created=int(time.time()))
            usage = from_body(data, req.front)
        if req.stream and resp is not None:
            data = responses_replay.replay(data)
        elif req.stream:
            data = (
                synthesize.openai_stream(data, req.include_usage)
                if req.front == "openai"
                else synthesize.anthropic_stream(data)
            )
    except msgspec.DecodeError as exc:
        raise UpstreamFailure("protocol", f"upstream sent a malformed response: {exc}") from exc
    if usage is not None:
        rec.tokens_in, rec.tokens_out = usage
        span.usage(*usage)
    rec.status = 200
    if req.stream:
        await ex.quiet()
        ex.committed = True
        rec.ttft_ms = (time.perf_counter() - call.t0) * 1000.0
        await ex.stream_head(key)
        await ex.end(data)
        return
    headers = answers.backend_headers(key, rec.attempts)
    headers += answers.passed_on(upstream.headers)
    headers.append((b"content-type", b"application/json"))
    overhead = (time.perf_counter() - call.t0) - call.upstream_time
    rec.overhead_ms = overhead * 1000.0
    headers.append((b"x-proxy-overhead-ms", f"{rec.overhead_ms:.3f}".encode()))
    await ex.answer(200, headers, data)


async def _responses_answer(
    call: Call, resp: ResponsesCall, state: BackendState, data: bytes
) -> bytes:
    """A whole answer for a Responses client: translated (and stored) unless the backend
    speaks the Responses API itself."""
    tr = responses_route.translator_for(state.config, state.adapter.wire, state.adapter.translator)
    if tr is None:
        return data
    out = tr.response(data, call.req.model, id=resp.id, created=resp.created, request=resp.request)
    await responses.keep(resp, out)
    return out


async def _client_error(
    call: Call, state: BackendState, key: TargetKey, upstream: UpstreamResponse, data: bytes
) -> None:
    ex = call.ex
    status = upstream.status
    data = answers.client_error_body(status, data, call.req.front, state.adapter.wire)
    ex.record.status = status
    if ex.started:
        text = data[:500].decode("utf-8", "replace")
        await ex.fail(errors.BadRequest(f"upstream rejected the request ({status}): {text}"))
        return
    headers = answers.backend_headers(key, ex.record.attempts)
    headers += answers.passed_on(upstream.headers)
    ctype = upstream.headers.get("content-type", "application/json")
    headers.append((b"content-type", ctype.encode("latin-1")))
    await ex.answer(status, headers, data)


async def _estimate_tokens(call: Call, key: TargetKey) -> None:
    body = _encode({"input_tokens": tokens.estimate_input_tokens(call.req.body)})
    headers = answers.backend_headers(key, call.ex.record.attempts)
    headers += [(b"content-type", b"application/json"), (b"x-proxy-estimate", b"true")]
    await call.ex.answer(200, headers, body)
