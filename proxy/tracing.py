"""Spans around each request and each upstream attempt: the `tracer` and its span handles.

Tracing is off unless configured: `LLM_PROXY_TRACING=memory` (a bounded in-process exporter,
for tests and the benchmark), or the standard `OTEL_*` variables (`OTEL_TRACES_EXPORTER=otlp`
or an `OTEL_EXPORTER_OTLP_*ENDPOINT`; the OTLP exporter package must be installed, else a
warning and tracing stays off). Off means off: the hot path never calls the OpenTelemetry API
(it is not even imported) and every hook hands back one shared no-op object.

Spans follow the OTel GenAI and HTTP conventions; gateway facts go in `llm_proxy.*`
attributes. Nothing in a span comes from request headers except the trace context, and no URL
goes in whole (host and port only), so keys never reach a trace.
"""

import asyncio
import logging
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from proxy import exporters
from proxy.routing import TargetKey
from proxy.spans import (
    CLIENT,
    FIRST_TOKEN,
    NULL,
    OPERATIONS,
    PROVIDER_NAMES,
    SERVER,
    TTFT_ATTRIBUTE,
    AttemptSpan,
    Recording,
    Requested,
    RequestSpan,
    Unsampled,
    current,
)

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


__all__ = ["FIRST_TOKEN", "TTFT_ATTRIBUTE", "AttemptSpan", "RequestSpan", "Tracer", "tracer"]

Headers = Sequence[tuple[bytes, bytes]] | Mapping[bytes, bytes]

# The logger keeps its pre-split name, so log configuration and filters still match.
log = logging.getLogger("llm_proxy.telemetry")


class Tracer:
    """The gateway's tracing hooks; `enabled` is decided once, at worker start.

    The OpenTelemetry SDK provides the pipeline (sampler, resource, batch processor,
    exporter); the spans themselves are recorded by `spans.Recording` as plain data and handed
    to the processor as one `ReadableSpan` when they end. Measured (`bench/README.md`): the
    SDK's own span objects cost ~100 us per span on this path (per-attribute validation and
    locks, a context attach per span), these ~15 us.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.enabled = False
        self.exporter: Any = None  # the memory exporter: `get_finished_spans()`, `clear()`
        self._provider: TracerProvider | None = None
        self._sampling = exporters.Sampling()
        self._bound = 0  # a root trace is kept when its id's low 64 bits are under this
        self._propagator: TextMapPropagator | None = None
        self._w3c = False  # the propagator is the default W3C trace context (+ baggage)
        self._fields: frozenset[bytes] = frozenset()
        self._servers: dict[str, tuple[str | None, int | None]] = {}
        self._handoff: _Handoff | None = None
        self._finish: Callable[[Recording, int], None] | None = None

    def configure(self, env: Mapping[str, str] | None = None) -> None:
        """Read the environment (default `os.environ`) and turn tracing on or leave it off."""
        self.shutdown()
        env = os.environ if env is None else env
        choice = exporters.choose(env)
        if choice is None:
            return
        exporter = exporters.build(choice, env)
        if exporter is None:
            return
        from opentelemetry.propagate import get_global_textmap
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        sampling = exporters.sampler(env)
        provider = TracerProvider(
            sampler=sampling.sdk(),
            resource=Resource.create({} if named else {"service.name": "llm-proxy"}),
        )
        if choice == "memory":
            self.exporter = exporter
        batched = exporters.batched(choice, env)
        processor: SpanProcessor = (
            BatchSpanProcessor(exporter) if batched else SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)  # shut down (and flushed) with the provider
        self._provider = provider
        self._sampling, self._bound = sampling, sampling.bound
        self._handoff = _Handoff(processor, provider.resource, batched)
        self._finish = self._handoff.finish
        global _otel
        _otel = _otel or _OTel()
        self._propagator = get_global_textmap()
        self._w3c = _is_w3c(self._propagator)
        self._fields = frozenset(f.lower().encode() for f in self._propagator.fields)
        self.enabled = True
        log.info("tracing on: %s exporter, sampler %s", choice, provider.sampler.get_description())

    def shutdown(self) -> None:
        """Flush and stop the exporter (worker shutdown); tracing is off afterwards."""
        if self._handoff is not None:
            self._handoff.flush()
        if self._provider is not None:
            self._provider.shutdown()
        self._reset()

    def request(
        self,
        method: str,
        route: str,
        headers: Headers | None = None,
        *,
        scheme: str = "http",
        request_id: str | None = None,
    ) -> AbstractContextManager[RequestSpan]:
        """The server span; continues the caller's trace from `headers` (ASGI raw headers,
        or the request's headers as a dict: then only the propagator's fields are looked up)."""
        finish = self._finish
        if finish is None:
            return NULL
        parent = self._extract(headers) if headers else None
        rule = self._sampling
        if parent is None:
            trace_id, state = _ids.getrandbits(128) or 1, None
            keep = trace_id & _LOW64 < self._bound
        else:
            trace_id, state = parent.trace_id, parent.trace_state
            keep = (
                parent.trace_flags.sampled if rule.parent_based else trace_id & _LOW64 < self._bound
            )
        if not keep:
            return Unsampled(trace_id, state)
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": route,
            "url.scheme": scheme,
        }
        if request_id is not None:
            attrs["llm_proxy.request_id"] = request_id
        name = f"{method} {route}"
        span_id = _ids.getrandbits(64) or 1
        return Recording(finish, name, SERVER, trace_id, span_id, parent, state, attrs)

    def _extract(self, headers: Headers) -> Any:
        """The caller's span context, when its headers carry a valid one."""
        assert self._propagator is not None
        fields = self._fields
        if isinstance(headers, Mapping):
            pairs: Iterable[tuple[bytes, bytes]] = [(k, headers[k]) for k in fields if k in headers]
        else:
            pairs = [(k, v) for k, v in headers if k in fields]
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in pairs}
        if not carrier:
            return None
        from opentelemetry.trace import get_current_span

        remote = get_current_span(self._propagator.extract(carrier)).get_span_context()
        return remote if remote.is_valid else None

    def attempt(
        self,
        ex: Requested,
        key: TargetKey,
        backend_type: str,
        n: int,
        *,
        base_url: str | None = None,
        circuit: str | None = None,
    ) -> AbstractContextManager[AttemptSpan]:
        """A client span for one upstream attempt (child of the request's server span). An
        attempt of a request that was not sampled is not either (as a parent-based sampler
        decides): only its trace context goes upstream (`inject`)."""
        if self._finish is None:
            return NULL
        request = current.get()
        if not isinstance(request, Recording):
            return NULL
        op = OPERATIONS.get(ex.endpoint, ex.endpoint)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": PROVIDER_NAMES.get(backend_type, backend_type),
            "gen_ai.request.model": key.model,
            "gen_ai.request.stream": ex.stream,
            "llm_proxy.alias": ex.model,
            "llm_proxy.backend": key.backend,
            "llm_proxy.attempt": n,
            "llm_proxy.request_id": ex.request_id,
        }
        if circuit is not None:
            attrs["llm_proxy.circuit_state"] = circuit
        if base_url:
            host, port = self._server(base_url)
            if host:
                attrs["server.address"] = host
            if port:
                attrs["server.port"] = port
        return Recording(
            self._finish, f"{op} {key.model}", CLIENT, request.trace_id,
            _ids.getrandbits(64) or 1, request, request.trace_state, attrs, request,
        )  # fmt: skip

    def _server(self, base_url: str) -> tuple[str | None, int | None]:
        """Host and port only: a URL may carry credentials (userinfo, `?key=`)."""
        known = self._servers.get(base_url)
        if known is None:
            try:
                parts = urlsplit(base_url)
                known = (parts.hostname, parts.port)
            except ValueError:
                known = (None, None)
            if len(self._servers) < 1024:
                self._servers[base_url] = known
        return known

    def inject(self, headers: list[tuple[str, str]]) -> None:
        """Put the current span's trace context on an outgoing request (no-op when off).

        Replaces any trace context the client sent, which would otherwise pass through. A
        request that was not sampled sends its trace with flags 00 and a fresh span id.
        """
        if self._propagator is None:
            return
        span = current.get()
        if span is None:
            return
        if isinstance(span, Recording):
            span_id, flags = span.span_id, 1
        else:
            span_id, flags = _ids.getrandbits(64) or 1, 0
        carrier: dict[str, str]
        if self._w3c:  # the default propagators: write the W3C header ourselves
            carrier = {"traceparent": f"00-{span.trace_id:032x}-{span_id:016x}-{flags:02x}"}
            if span.trace_state:
                carrier["tracestate"] = span.trace_state.to_header()
        else:
            from opentelemetry.trace import NonRecordingSpan, set_span_in_context

            carrier = {}
            context = _span_context(span.trace_id, span_id, flags, span.trace_state)
            self._propagator.inject(carrier, set_span_in_context(NonRecordingSpan(context)))
        if not carrier:
            return
        for name, _ in headers:
            if name.lower() in carrier:  # the client's own trace context: ours replaces it
                headers[:] = [h for h in headers if h[0].lower() not in carrier]
                break
        headers.extend(carrier.items())


_LOW64 = (1 << 64) - 1  # the ratio sampler reads a trace id's low 64 bits
_ids = random.Random()  # span and trace ids, as the SDK's RandomIdGenerator draws them


def _span_context(trace_id: int, span_id: int, flags: int, state: Any) -> Any:
    """One of our own spans' SpanContext (never remote)."""
    return _otel.SpanContext(trace_id, span_id, False, _otel.flags[flags], state)


def _context_of(span: Recording) -> Any:
    """The span's own SpanContext, built once (an attempt's parent, then its export)."""
    if span.context is None:
        span.context = _span_context(span.trace_id, span.span_id, 1, span.trace_state)
    return span.context


class _OTel:
    """The SDK names the hot path uses, imported once when tracing is turned on."""

    def __init__(self) -> None:
        from opentelemetry.trace import SpanContext, TraceFlags

        self.SpanContext = SpanContext
        self.flags = (TraceFlags(0), TraceFlags(1))


_otel: Any = None


class _Handoff:
    """Finished spans to the SDK's span processor as `ReadableSpan`s.

    Under a batch processor the conversion is itself batched: a finished span is queued
    (one list append on the request path) and up to `LIMIT` of them are converted and handed
    on together, `DELAY` seconds later at most, and at shutdown. Converting in a tight loop
    off the request's path costs about half what it costs between requests (measured in
    `bench/`: tracing). Under a simple processor (tests) each span is handed on as it ends.
    """

    LIMIT = 256
    DELAY = 0.05

    def __init__(self, processor: "SpanProcessor", resource: Any, batched: bool) -> None:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._on_end = processor.on_end
        self._resource = resource
        self._span, self._event = ReadableSpan, Event
        self._scope = InstrumentationScope("llm_proxy")
        self._kinds = {SERVER: SpanKind.SERVER, CLIENT: SpanKind.CLIENT}
        self._ok, self._error = Status(StatusCode.UNSET), Status(StatusCode.ERROR)
        self._pending: list[tuple[Recording, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's
        self.finish = self._queue if batched else self._emit

    def _queue(self, span: Recording, end_ns: int) -> None:
        pending = self._pending
        pending.append((span, end_ns))
        if len(pending) >= self.LIMIT or (self._loop is not None and self._loop.is_closed()):
            self.flush()  # full, or the loop that would have flushed it is gone
        elif self._timer is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a script, a test): hand it on now
                self.flush()
                return
            self._timer = self._loop.call_later(self.DELAY, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._loop = None, None
        pending, self._pending = self._pending, []
        for span, end_ns in pending:
            self._emit(span, end_ns)

    def _emit(self, span: Recording, end_ns: int) -> None:
        event = self._event
        self._on_end(
            self._span(
                span.name,
                _context_of(span),
                _context_of(span.parent) if isinstance(span.parent, Recording) else span.parent,
                self._resource,
                span.attributes,
                [event(n, a, t) for n, a, t in span.events] if span.events else (),
                (),
                self._kinds[span.kind],
                status=self._error if span.failed else self._ok,
                start_time=span.start_ns,
                end_time=end_ns,
                instrumentation_scope=self._scope,
            )
        )


def _is_w3c(propagator: Any) -> bool:
    """True for the SDK's default propagators (W3C trace context, and baggage): the client's
    baggage header travels upstream as it came, so only `traceparent`/`tracestate` are ours."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parts = (
        getattr(propagator, "_propagators", None)
        if isinstance(propagator, CompositePropagator)
        else [propagator]
    )
    kinds = {type(p) for p in parts or ()}
    return TraceContextTextMapPropagator in kinds and kinds <= {
        TraceContextTextMapPropagator,
        W3CBaggagePropagator,
    }


tracer = Tracer()
