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

import contextvars
import logging
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from proxy import exporters
from proxy.errors import UpstreamFailure
from proxy.routing import TargetKey
from proxy.spans import (
    FIRST_TOKEN,
    NO_SPAN,
    NULL,
    OPERATIONS,
    PROVIDER_NAMES,
    TTFT_ATTRIBUTE,
    AttemptSpan,
    Recording,
    Requested,
    RequestSpan,
    Unsampled,
)

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler


__all__ = ["FIRST_TOKEN", "TTFT_ATTRIBUTE", "AttemptSpan", "RequestSpan", "Tracer", "tracer"]

# The logger keeps its pre-split name, so log configuration and filters still match.
log = logging.getLogger("llm_proxy.telemetry")

# The span in progress (the request's, or an attempt's inside it): its ids go upstream.
_current: contextvars.ContextVar[Recording | Unsampled | None] = contextvars.ContextVar(
    "llm_proxy_span", default=None
)


class Tracer:
    """The gateway's tracing hooks; `enabled` is decided once, at worker start.

    The OpenTelemetry SDK provides the pipeline (sampler, resource, batch processor,
    exporter); the spans themselves are recorded by `spans.Recording` as plain data and handed
    to the processor as one `ReadableSpan` when they end. Measured in `bench/` (tracing):
    the SDK's own span objects cost ~100 us per span on this path (per-attribute validation
    and locks, a context attach per span), this ~10 us.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.enabled = False
        self.exporter: Any = None  # the memory exporter: `get_finished_spans()`, `clear()`
        self._provider: TracerProvider | None = None
        self._processor: SpanProcessor | None = None
        self._sampler: Sampler | None = None
        self._kind: Any = None  # SpanKind.SERVER, for the sampler
        self._keep: Any = None  # Decision.RECORD_AND_SAMPLE
        self._propagator: TextMapPropagator | None = None
        self._w3c = False  # the propagator is the default W3C trace context (+ baggage)
        self._fields: frozenset[bytes] = frozenset()
        self._servers: dict[str, tuple[str | None, int | None]] = {}
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
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import SpanKind

        named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        sampler = exporters.sampler(env)
        provider = TracerProvider(
            sampler=sampler,
            resource=Resource.create({} if named else {"service.name": "llm-proxy"}),
        )
        if choice == "memory":
            self.exporter = exporter
        processor: SpanProcessor = (
            BatchSpanProcessor(exporter)
            if exporters.batched(choice, env)
            else SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)  # shut down (and flushed) with the provider
        self._provider, self._processor, self._sampler = provider, processor, sampler
        self._kind, self._keep = SpanKind.SERVER, Decision.RECORD_AND_SAMPLE
        self._finish = _finisher(processor, provider.resource)
        global _otel
        _otel = _otel or _OTel()
        self._propagator = get_global_textmap()
        self._w3c = _is_w3c(self._propagator)
        self._fields = frozenset(f.lower().encode() for f in self._propagator.fields)
        self.enabled = True
        log.info("tracing on: %s exporter, sampler %s", choice, sampler.get_description())

    def shutdown(self) -> None:
        """Flush and stop the exporter (worker shutdown); tracing is off afterwards."""
        if self._provider is not None:
            self._provider.shutdown()
        self._reset()

    def request(
        self,
        method: str,
        route: str,
        headers: Sequence[tuple[bytes, bytes]] | None = None,
        *,
        scheme: str = "http",
        request_id: str | None = None,
    ) -> AbstractContextManager[RequestSpan]:
        """The server span; continues the caller's trace from `headers` (ASGI raw headers)."""
        if self._finish is None:
            return NULL
        return self._request(method, route, headers, scheme, request_id)

    @contextmanager
    def _request(
        self,
        method: str,
        route: str,
        headers: Sequence[tuple[bytes, bytes]] | None,
        scheme: str,
        request_id: str | None,
    ) -> Iterator[RequestSpan]:
        assert self._finish is not None and self._sampler is not None
        parent, parent_ctx = (None, None) if not headers else self._extract(headers)
        name = f"{method} {route}"
        span_id = _ids.getrandbits(64)
        if parent is not None:
            trace_id, state = parent.trace_id, parent.trace_state
        else:
            trace_id, state = _ids.getrandbits(128), None
        decision = self._sampler.should_sample(parent_ctx or _ROOT, trace_id, name, self._kind)
        if decision.decision is not self._keep:
            handle: Recording | Unsampled = Unsampled(trace_id, span_id, decision.trace_state)
            token = _current.set(handle)
            try:
                yield NO_SPAN
            finally:
                _current.reset(token)
            return
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": route,
            "url.scheme": scheme,
        }
        if request_id is not None:
            attrs["llm_proxy.request_id"] = request_id
        if decision.attributes:
            attrs.update(decision.attributes)
        span = Recording(
            self._finish, name, _SERVER, trace_id, span_id, parent, decision.trace_state or state,
            attrs,
        )  # fmt: skip
        token = _current.set(span)
        try:
            yield span
        except BaseException as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                span.set(status=status)
            if isinstance(exc, Exception) and not (isinstance(status, int) and status < 500):
                span.fail(type(exc).__name__)
            raise
        finally:
            _current.reset(token)
            span.end()

    def _extract(self, headers: Sequence[tuple[bytes, bytes]]) -> tuple[Any, Any]:
        """The caller's span context and the OTel context holding it, or (None, None)."""
        assert self._propagator is not None
        carrier = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in self._fields
        }
        if not carrier:
            return None, None
        from opentelemetry.trace import get_current_span

        context = self._propagator.extract(carrier)
        remote = get_current_span(context).get_span_context()
        return (remote, context) if remote.is_valid else (None, None)

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
        """A client span for one upstream attempt (child of the request's server span)."""
        if self._finish is None:
            return NULL
        return self._attempt(ex, key, backend_type, n, base_url, circuit)

    @contextmanager
    def _attempt(
        self,
        ex: Requested,
        key: TargetKey,
        backend_type: str,
        n: int,
        base_url: str | None,
        circuit: str | None,
    ) -> Iterator[AttemptSpan]:
        assert self._finish is not None
        request = _current.get()
        if not isinstance(request, Recording):
            # The request was not sampled (or there is none): the attempt follows its
            # decision, as a parent-based sampler would, and only its ids travel upstream.
            trace_id = request.trace_id if request is not None else _ids.getrandbits(128)
            state = request.trace_state if request is not None else None
            token = _current.set(Unsampled(trace_id, _ids.getrandbits(64), state))
            try:
                yield NO_SPAN
            finally:
                _current.reset(token)
            return
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
        span = Recording(
            self._finish, f"{op} {key.model}", _CLIENT, request.trace_id, _ids.getrandbits(64),
            _context_of(request), request.trace_state, attrs, request,
        )  # fmt: skip
        token = _current.set(span)
        try:
            yield span
        except BaseException as exc:
            # An upstream failure was named on the span where it happened (its kind or
            # status); anything else is named by its type.
            if isinstance(exc, Exception) and not isinstance(exc, UpstreamFailure):
                span.fail(type(exc).__name__)
            raise
        finally:
            _current.reset(token)
            span.end()

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

        Replaces any trace context the client sent, which would otherwise pass through.
        """
        if self._propagator is None:
            return
        span = _current.get()
        if span is None:
            return
        flags = 1 if isinstance(span, Recording) else 0
        carrier: dict[str, str]
        if self._w3c:  # the default propagators: write the W3C header ourselves
            carrier = {"traceparent": f"00-{span.trace_id:032x}-{span.span_id:016x}-{flags:02x}"}
            if span.trace_state:
                carrier["tracestate"] = span.trace_state.to_header()
        else:
            from opentelemetry.trace import NonRecordingSpan, set_span_in_context

            carrier = {}
            context = _span_context(span.trace_id, span.span_id, flags, span.trace_state, False)
            self._propagator.inject(carrier, set_span_in_context(NonRecordingSpan(context)))
        if not carrier:
            return
        names = {k.lower() for k in carrier}
        if any(k.lower() in names for k, _ in headers):
            headers[:] = [h for h in headers if h[0].lower() not in names]
        headers.extend(carrier.items())


_SERVER, _CLIENT = 1, 2  # opentelemetry.trace.SpanKind values
_ids = random.Random()  # span and trace ids, as the SDK's RandomIdGenerator draws them
_ROOT: Any = {}  # an empty OTel context (a dict): "no parent" for the sampler, no lookup


def _span_context(trace_id: int, span_id: int, flags: int, state: Any, remote: bool) -> Any:
    return _otel.SpanContext(trace_id, span_id, remote, _otel.flags[flags], state)


def _context_of(span: Recording) -> Any:
    """The span's own SpanContext, built once (an attempt's parent, then its export)."""
    if span.context is None:
        span.context = _span_context(span.trace_id, span.span_id, 1, span.trace_state, False)
    return span.context


class _OTel:
    """The SDK names the hot path uses, imported once when tracing is turned on."""

    def __init__(self) -> None:
        from opentelemetry.trace import SpanContext, TraceFlags

        self.SpanContext = SpanContext
        self.flags = (TraceFlags(0), TraceFlags(1))


_otel: Any = None


def _finisher(processor: "SpanProcessor", resource: Any) -> Callable[[Recording, int], None]:
    """What turns a finished `Recording` into the SDK's `ReadableSpan`, for the processor."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanKind, Status, StatusCode

    scope = InstrumentationScope("llm_proxy")
    kinds = {_SERVER: SpanKind.SERVER, _CLIENT: SpanKind.CLIENT}
    ok, error = Status(StatusCode.UNSET), Status(StatusCode.ERROR)

    def finish(span: Recording, end_ns: int) -> None:
        processor.on_end(
            ReadableSpan(
                span.name,
                _context_of(span),
                span.parent,
                resource,
                span.attributes,
                [Event(n, a, t) for n, a, t in span.events],
                (),
                kinds[span.kind],
                status=error if span.failed else ok,
                start_time=span.start_ns,
                end_time=end_ns,
                instrumentation_scope=scope,
            )
        )

    return finish


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
