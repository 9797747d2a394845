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
from collections.abc import Iterator, Mapping, Sequence
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
    AttrValue,
    Recording,
    Requested,
    RequestSpan,
)

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer as OTelTracer


__all__ = ["FIRST_TOKEN", "TTFT_ATTRIBUTE", "AttemptSpan", "RequestSpan", "Tracer", "tracer"]

# The logger keeps its pre-split name, so log configuration and filters still match.
log = logging.getLogger("llm_proxy.telemetry")

_current: contextvars.ContextVar[Recording | None] = contextvars.ContextVar(
    "llm_proxy_request_span", default=None
)


class Tracer:
    """The gateway's tracing hooks; `enabled` is decided once, at worker start."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.enabled = False
        self.exporter: Any = None  # the memory exporter: `get_finished_spans()`, `clear()`
        self._tracer: OTelTracer | None = None
        self._provider: TracerProvider | None = None
        self._propagator: TextMapPropagator | None = None
        self._fields: frozenset[bytes] = frozenset()
        self._servers: dict[str, tuple[str | None, int | None]] = {}

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
        provider = TracerProvider(
            resource=Resource.create({} if named else {"service.name": "llm-proxy"})
        )
        if choice == "memory":
            self.exporter = exporter
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("llm_proxy")
        self._propagator = get_global_textmap()
        self._fields = frozenset(f.lower().encode() for f in self._propagator.fields)
        self.enabled = True
        log.info("tracing on: %s exporter", choice)

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
        if self._tracer is None:
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
        from opentelemetry.trace import SpanKind

        assert self._tracer is not None and self._propagator is not None
        parent = None
        if headers:
            carrier = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in self._fields
            }
            if carrier:
                parent = self._propagator.extract(carrier)
        attrs: dict[str, AttrValue] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": route,
            "url.scheme": scheme,
        }
        if request_id is not None:
            attrs["llm_proxy.request_id"] = request_id
        with self._tracer.start_as_current_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attrs,
            record_exception=False,  # exception text may quote what it should not
            set_status_on_exception=False,
        ) as span:
            if not span.is_recording():
                yield NO_SPAN
                return
            handle = Recording(span)
            token = _current.set(handle)
            try:
                yield handle
            except BaseException as exc:
                status = getattr(exc, "status", None)
                if isinstance(status, int):
                    handle.set(status=status)
                if isinstance(exc, Exception) and not (isinstance(status, int) and status < 500):
                    handle.fail(type(exc).__name__)
                raise
            finally:
                _current.reset(token)

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
        if self._tracer is None:
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
        from opentelemetry.trace import SpanKind

        assert self._tracer is not None
        op = OPERATIONS.get(ex.endpoint, ex.endpoint)
        attrs: dict[str, AttrValue] = {
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
        with self._tracer.start_as_current_span(
            f"{op} {key.model}",
            kind=SpanKind.CLIENT,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if not span.is_recording():
                yield NO_SPAN
                return
            handle = Recording(span, _current.get())
            try:
                yield handle
            except BaseException as exc:
                # An upstream failure was named on the span where it happened (its kind or
                # status); anything else is named by its type.
                if isinstance(exc, Exception) and not isinstance(exc, UpstreamFailure):
                    handle.fail(type(exc).__name__)
                raise

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
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        if not carrier:
            return
        names = {k.lower() for k in carrier}
        headers[:] = [h for h in headers if h[0].lower() not in names]
        headers.extend(carrier.items())


tracer = Tracer()
