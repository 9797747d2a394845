"""OpenTelemetry spans around each request and each upstream attempt.

Tracing is off unless configured (`OTEL_TRACES_EXPORTER` naming an exporter, or
`LLM_PROXY_TRACING=memory` for an in-process exporter used by tests and the benchmark). Off
means off: the hot path calls a no-op object whose methods do nothing and allocate nothing.
"""

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from proxy.routing import TargetKey

if TYPE_CHECKING:
    from proxy.forward import Exchange

_PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "mock": "llm_proxy.mock",
}
_OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "count_tokens": "count_tokens",
}


class AttemptSpan(Protocol):
    def fail(self, kind: str) -> None: ...


class _NoSpan:
    __slots__ = ()

    def fail(self, kind: str) -> None:
        return None


class _Span:
    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def fail(self, kind: str) -> None:
        self._span.set_attribute("error.type", kind)
        self._span.set_status(Status(StatusCode.ERROR, kind))


_NO_SPAN = _NoSpan()
_NULL: AbstractContextManager[AttemptSpan] = nullcontext(_NO_SPAN)


class Tracer:
    """The gateway's tracing hooks; `enabled` is decided once, at worker start."""

    def __init__(self) -> None:
        self.enabled = False
        self._tracer: trace.Tracer | None = None
        self.exporter: Any = None

    def configure(self) -> None:
        mode = os.environ.get("LLM_PROXY_TRACING", "").lower()
        exporter_env = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
        if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return
        if mode not in ("memory", "otlp") and exporter_env in ("", "none"):
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "llm-proxy"}))
        if mode == "memory":
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            self.exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = provider.get_tracer("llm_proxy")
        self.enabled = True

    def request(self, method: str, route: str) -> AbstractContextManager[Any]:
        if self._tracer is None:
            return _NULL
        return self._tracer.start_as_current_span(
            f"{method} {route}",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route, "url.path": route},
        )

    def attempt(
        self, ex: "Exchange", key: TargetKey, backend_type: str, n: int
    ) -> AbstractContextManager[AttemptSpan]:
        if self._tracer is None:
            return _NULL
        return self._attempt(ex, key, backend_type, n)

    @contextmanager
    def _attempt(
        self, ex: "Exchange", key: TargetKey, backend_type: str, n: int
    ) -> Iterator[AttemptSpan]:
        assert self._tracer is not None
        op = _OPERATIONS.get(ex.endpoint, ex.endpoint)
        with self._tracer.start_as_current_span(
            f"{op} {key.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": _PROVIDER_NAMES.get(backend_type, backend_type),
                "gen_ai.request.model": key.model,
                "gen_ai.request.stream": ex.stream,
                "llm_proxy.alias": ex.model,
                "llm_proxy.backend": key.backend,
                "llm_proxy.attempt": n,
            },
        ) as span:
            yield _Span(span)


tracer = Tracer()
