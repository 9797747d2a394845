"""One request's attempts: candidates → adapter → upstream → (commit) → client.

The loop walks the route's candidates in order (tiers, then strategy), skipping open
circuits, for at most `1 + retries` attempts. Connect errors, timeouts and failover statuses
move on to the next candidate; client errors (400/413/422...) are returned as the upstream
sent them (translated when protocols differ). Streams may fail over until they commit
(`streaming.py`); after that a failure ends the stream with an error event.
The answers the gateway writes itself (failover spent, no target, a client error passed
on) are `answers.py`'s.
"""

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from proxy import errors, http, synthesize, telemetry, translate
from proxy.answers import (
    Failure,
    client_error,
    estimate_tokens,
    exhausted,
    no_target,
    response_headers,
)
from proxy.errors import Wire
from proxy.providers.base import Endpoint, Unsupported, UpstreamRequest
from proxy.reload import BackendState, Runtime, Snapshot
from proxy.resilience import Circuit, is_failover, retry_after
from proxy.routing import Candidate, Route, TargetKey, order
from proxy.streaming import Keepalive, Relay, StreamFailed, start
from proxy.telemetry import RequestRecord
from proxy.tracing import AttemptSpan, tracer
from proxy.upstream import UpstreamError
from proxy.usage import Malformed, Usage, from_body

log = logging.getLogger("llm_proxy.forward")

_encode = msgspec.json.Encoder().encode
_any = msgspec.json.Decoder(dict[str, Any])
MAX_RESPONSE = 64 * 2**20  # a non-streaming upstream body larger than this is refused

# A translated request goes to the backend protocol's equivalent endpoint.
_ENDPOINT_ON: dict[tuple[str, str], Endpoint] = {
    ("messages", "openai"): "chat",
    ("chat", "anthropic"): "messages",
}


class Exchange:
    """Everything about one client request that the attempt loop needs."""

    __slots__ = (
        "attempts",
        "body",
        "committed",
        "endpoint",
        "fields",
        "front",
        "include_usage",
        "keepalive",
        "model",
        "record",
        "request_id",
        "scope",
        "send",
        "started",
        "stream",
        "t0",
        "upstream_time",
        "usage",
    )

    def __init__(
        self,
        scope: http.Scope,
        send: http.Send,
        request_id: str,
        front: Wire,
        endpoint: Endpoint,
        body: bytes,
        fields: dict[str, msgspec.Raw],
        model: str,
        stream: bool,
        include_usage: bool,
        t0: float,
        record: RequestRecord,
    ) -> None:
        self.scope = scope
        self.send = send
        self.request_id = request_id
        self.front = front
        self.endpoint = endpoint
        self.body = body
        self.fields = fields
        self.model = model
        self.stream = stream
        self.include_usage = include_usage
        self.t0 = t0
        self.record = record
        self.attempts = 0
        self.started = False  # response head sent to the client (maybe only keepalives since)
        self.committed = False  # stream content sent: no more failover
        self.keepalive: Keepalive | None = None
        self.upstream_time = 0.0
        self.usage: Usage | None = None  # (input, output) tokens as the backend reported


def upstream_body(ex: Exchange, state: BackendState, model: str) -> bytes:
    """The request body for this backend: model rewritten, usage asked for, or translated."""
    backend_wire = state.adapter.wire
    stream = ex.stream and state.config.stream
    tr = None if ex.front == backend_wire else translate.pick(ex.front, backend_wire)
    if tr is not None:
        return tr.request(ex.body, model, stream)
    fields = ex.fields
    changed = False
    if model != ex.model:
        fields = dict(fields)
        fields["model"] = msgspec.Raw(_encode(model))
        changed = True
    if ex.stream and not state.config.stream:
        fields = dict(fields) if not changed else fields
        fields["stream"] = msgspec.Raw(b"false")
        fields.pop("stream_options", None)
        changed = True
    elif (
        stream and backend_wire == "openai" and not ex.include_usage and ex.endpoint != "embeddings"
    ):
        fields = dict(fields) if not changed else fields
        options = _any.decode(fields["stream_options"]) if "stream_options" in fields else {}
        options["include_usage"] = True
        fields["stream_options"] = msgspec.Raw(_encode(options))
        changed = True
    return _encode(fields) if changed else ex.body


async def run(ex: Exchange, runtime: Runtime, snapshot: Snapshot, route: Route) -> None:
    settings = snapshot.settings
    now = time.monotonic()
    circuits = runtime.circuits

    def usable(key: TargetKey) -> bool:
        c = circuits.get(key)
        return c is None or c.usable(now)

    candidates = order(route, runtime.rng, usable, _ranker(route, circuits, runtime.rng))
    if not candidates:
        raise no_target(route, circuits, now)
    if ex.stream:
        ex.keepalive = Keepalive(ex, settings.keepalive)
    try:
        await _attempts(ex, runtime, snapshot, route, candidates)
    finally:
        if ex.keepalive is not None:
            await ex.keepalive.stop()


async def _attempts(
    ex: Exchange, runtime: Runtime, snapshot: Snapshot, route: Route, candidates: list[Candidate]
) -> None:
    settings = snapshot.settings
    circuits = runtime.circuits
    last: Failure | None = None
    for cand in candidates[: 1 + settings.retries]:
        state = snapshot.backends[cand.key.backend]
        circuit = circuits.get(cand.key)
        if circuit is None:
            circuit = circuits[cand.key] = Circuit()
        now = time.monotonic()
        if not circuit.usable(now):  # another request took the half-open probe meanwhile
            continue
        if ex.endpoint == "count_tokens" and state.adapter.wire != "anthropic":
            await estimate_tokens(ex, cand.key)  # only Anthropic can count: estimate
            return
        ex.attempts += 1
        rec = ex.record  # the last target tried is the one the access log names
        rec.backend, rec.provider_model = cand.key
        rec.backend_type = state.config.type
        telemetry.attempt_started(cand.key.backend, cand.key.model)
        probe = circuit.begin(now)
        state.transport.in_flight += 1
        try:
            outcome = await _attempt(ex, state, cand, snapshot, circuit.state(now))
        except BaseException:  # cancelled (client gone) or a gateway error: no verdict
            circuit.release(probe)
            raise
        finally:
            state.transport.in_flight -= 1
        if not isinstance(outcome, Failure):
            circuit.succeed(outcome)
            return
        failure = last = outcome
        telemetry.attempt_failed(
            cand.key.backend,
            cand.key.model,
            telemetry.failure_kind(failure.kind, failure.status, ex.committed),
        )
        if failure.kind == "unsupported":  # the target is fine; it just can't serve this
            circuit.release(probe)
        else:
            ra = (
                retry_after(failure.headers, time.time())
                if failure.status in (429, 503, 529)
                else None
            )
            circuit.fail(
                time.monotonic(),
                failure.error,
                settings.failure_threshold,
                settings.cooldown,
                ra,
                probe,
            )
        log.warning(
            "attempt %d on %s/%s failed: %s",
            ex.attempts,
            cand.key.backend,
            cand.key.model,
            failure.error,
        )
        if ex.committed:  # a committed stream cannot move to another target
            return
    if last is None:
        raise no_target(route, circuits, time.monotonic())
    if ex.keepalive is not None:
        await ex.keepalive.stop()
    await exhausted(ex, last)


EXPLORE = 0.1  # share of `latency` picks that ignore the ranking, so a recovered target is seen


def _ranker(
    route: Route, circuits: dict[TargetKey, Circuit], rng: random.Random
) -> Callable[[Sequence[Candidate]], list[Candidate]] | None:
    if route.strategy == "least_busy":

        def busy(c: Candidate) -> int:
            circuit = circuits.get(c.key)
            return 0 if circuit is None else circuit.in_flight

        return lambda tier: sorted(tier, key=busy)
    if route.strategy == "latency":

        def fastest(tier: Sequence[Candidate]) -> list[Candidate]:
            if rng.random() < EXPLORE:
                return rng.sample(list(tier), len(tier))
            return sorted(tier, key=lambda c: _latency_score(circuits.get(c.key)))

        return fastest
    return None


def _latency_score(circuit: Circuit | None) -> float:
    # Unmeasured targets go first, so a new or recovered target is explored.
    return -1.0 if circuit is None or circuit.ttfb is None else circuit.ttfb


async def _attempt(
    ex: Exchange, state: BackendState, cand: Candidate, snapshot: Snapshot, circuit_state: str
) -> Failure | float | None:
    """One upstream attempt: a failure to act on, or the client got its answer (the time to
    first byte, or None when the upstream refused the request itself with a client error).
    The caller owns the circuit verdict."""
    key = cand.key
    wire = state.adapter.wire
    config = state.config
    with tracer.attempt(
        ex, key, config.type, ex.attempts, base_url=config.base_url, circuit=circuit_state
    ) as span:
        try:
            body = upstream_body(ex, state, key.model)
            forwarded = http.forwarded_headers(ex.scope, wire == "anthropic", ex.request_id)
            tracer.inject(forwarded)
            request = state.adapter.build(
                _ENDPOINT_ON.get((ex.endpoint, wire), ex.endpoint),
                body,
                key.model,
                ex.stream and config.stream,
                forwarded,
            )
        except Unsupported:
            span.fail("unsupported")
            return Failure(
                "unsupported",
                f"backend '{key.backend}' ({config.type}) does not serve {ex.endpoint}",
            )
        except translate.TranslationError as exc:
            raise errors.BadRequest(str(exc), param=exc.param) from exc
        return await _exchange(ex, state, key, request, snapshot, span)


async def _exchange(
    ex: Exchange,
    state: BackendState,
    key: TargetKey,
    request: UpstreamRequest,
    snapshot: Snapshot,
    span: AttemptSpan,
) -> Failure | float | None:
    """Send one built request and answer the client from what comes back."""
    wire = state.adapter.wire
    rec = ex.record
    sent = time.perf_counter()
    try:
        upstream = await state.transport.send(request)
    except UpstreamError as exc:
        ex.upstream_time += time.perf_counter() - sent
        span.fail(exc.kind)
        return Failure(exc.kind, exc.message)
    headers_at = time.perf_counter()
    try:
        if upstream.status >= 400:
            data = await upstream.read(MAX_RESPONSE)
            ex.upstream_time += time.perf_counter() - sent
            span.fail(str(upstream.status))
            if is_failover(upstream.status):
                hdrs = {k.lower(): v for k, v in upstream.headers.items()}
                hdrs["x-proxy-wire"] = wire
                message = f"upstream answered {upstream.status}"
                return Failure("status", message, upstream.status, hdrs, data)
            rec.status = upstream.status
            await client_error(ex, state, key, upstream, data)
            return None  # the target is healthy: the request was at fault
        if ex.stream and state.config.stream:
            relay = Relay(ex, state, key, upstream, snapshot.settings, span)
            try:
                await relay.run()
            except StreamFailed as exc:
                span.fail(exc.kind)
                return Failure(exc.kind, exc.message)
            finally:
                if ex.usage is not None:
                    span.usage(*ex.usage)
            return headers_at - sent
        data = await upstream.read(MAX_RESPONSE)
        ex.upstream_time += time.perf_counter() - sent
    except UpstreamError as exc:
        span.fail(exc.kind)
        return Failure(exc.kind, exc.message)
    finally:
        upstream.release()
    tr = None if ex.front == wire else translate.pick(ex.front, wire)
    try:
        if tr is not None:
            data = tr.response(data, ex.model, id=ex.request_id, created=int(time.time()))
        ex.usage = from_body(data, ex.front)
        if ex.stream:  # a `stream: false` backend: replay the whole answer as a stream
            frames = (
                synthesize.openai_stream(data, ex.include_usage)
                if ex.front == "openai"
                else synthesize.anthropic_stream(data)
            )
    except (msgspec.DecodeError, Malformed, synthesize.NotSynthesizable) as exc:
        span.fail("protocol")
        return Failure("protocol", f"upstream sent a malformed response: {exc}")
    if ex.usage is not None:
        span.usage(*ex.usage)
    rec.status = 200
    if ex.stream:
        if ex.keepalive is not None:
            await ex.keepalive.stop()
        ex.committed = True
        rec.ttft_ms = (time.perf_counter() - ex.t0) * 1000.0
        await start(ex, key)
        await ex.send({"type": "http.response.body", "body": frames, "more_body": False})
        return headers_at - sent
    headers = response_headers(ex, key, upstream)
    headers.append((b"content-type", b"application/json"))
    overhead = (time.perf_counter() - ex.t0) - ex.upstream_time
    rec.overhead_ms = overhead * 1000.0
    headers.append((b"x-proxy-overhead-ms", f"{rec.overhead_ms:.3f}".encode()))
    await http.respond(ex.send, 200, headers, data)
    return headers_at - sent
