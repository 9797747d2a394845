"""The span handles behind the tracing hooks: what a request or an attempt records, and the
one shared no-op handle every hook hands back when tracing is off or a span is not sampled.

Attribute names follow the OTel GenAI and HTTP conventions; gateway facts are `llm_proxy.*`.
"""

import contextvars
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from proxy.errors import UpstreamFailure
from proxy.record import RequestRecord
from proxy.redact import scrub

AttrValue = str | bool | int | float
PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "mock": "llm_proxy.mock",
}
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "count_tokens": "count_tokens",
}
# Short names for `.set(...)`; any other short name becomes `llm_proxy.<name>`.
ATTRIBUTES = {
    "alias": "llm_proxy.alias",
    "backend": "llm_proxy.backend",
    "attempt": "llm_proxy.attempt",
    "attempts": "llm_proxy.attempts",
    "circuit": "llm_proxy.circuit_state",
    "cache": "llm_proxy.cache",
    "request_id": "llm_proxy.request_id",
    "key_name": "llm_proxy.key_name",
    "operation": "gen_ai.operation.name",
    "provider": "gen_ai.provider.name",
    "request_model": "gen_ai.request.model",
    "response_model": "gen_ai.response.model",
    "response_id": "gen_ai.response.id",
    "finish_reasons": "gen_ai.response.finish_reasons",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "status": "http.response.status_code",
    "error": "error.type",
    "server_address": "server.address",
    "server_port": "server.port",
}
FIRST_TOKEN = "gen_ai.first_token"  # span event; its attribute: seconds since the span began
TTFT_ATTRIBUTE = "gen_ai.response.time_to_first_chunk"


class Requested(Protocol):
    """What an attempt span reads of the client's request."""

    @property
    def endpoint(self) -> str: ...
    @property
    def stream(self) -> bool: ...
    @property
    def model(self) -> str: ...
    @property
    def request_id(self) -> str: ...


class AttemptSpan(Protocol):
    def fail(self, kind: str) -> None: ...
    def set(self, attrs: Mapping[str, AttrValue | None] | None = None, /, **short: Any) -> None: ...
    def event(self, name: str, attrs: Mapping[str, AttrValue] | None = None) -> None: ...
    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None: ...
    def first_token(self) -> None: ...


class RequestSpan(AttemptSpan, Protocol):
    def record(self, rec: "RequestRecord") -> None: ...


class NoSpan:
    """What every hook hands back when tracing is off (or the span is not sampled)."""

    __slots__ = ()

    def fail(self, kind: str) -> None:
        return None

    def set(self, attrs: Mapping[str, AttrValue | None] | None = None, /, **short: Any) -> None:
        return None

    def event(self, name: str, attrs: Mapping[str, AttrValue] | None = None) -> None:
        return None

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        return None

    def first_token(self) -> None:
        return None

    def record(self, rec: "RequestRecord") -> None:
        return None


NO_SPAN = NoSpan()
NULL: AbstractContextManager[NoSpan] = nullcontext(NO_SPAN)


# The span in progress (the request's, or an attempt's inside it): its ids go upstream.
current: contextvars.ContextVar["Recording | Unsampled | None"] = contextvars.ContextVar(
    "llm_proxy_span", default=None
)
SERVER, CLIENT = 1, 2  # opentelemetry.trace.SpanKind values


class Recording:
    """A sampled span, recorded as plain data and handed to the span processor once, whole,
    when it ends: no per-attribute validation, no locks, no context object per span. It is
    its own context manager (`with` makes it the current span, and ends it).

    Attribute values are the gateway's own (str, bool, int, float, or a tuple of them) and
    `None` is skipped, so the SDK's validation has nothing to catch. `sink` receives the
    finished span (the tracer builds the SDK's `ReadableSpan` from it).
    """

    __slots__ = (
        "_first",
        "_handle",
        "_start",
        "_token",
        "attributes",
        "context",
        "events",
        "failed",
        "kind",
        "name",
        "parent",
        "sink",
        "span_id",
        "start_ns",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        sink: "Callable[[Recording, int], None]",
        name: str,
        kind: int,
        trace_id: int,
        span_id: int,
        parent: Any,
        trace_state: Any,
        attributes: dict[str, Any],
        handle: "Recording | None" = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent  # the parent span, a caller's SpanContext, or None (a root)
        self.trace_state = trace_state
        self.context: Any = None  # its SpanContext, once built (tracing._context_of)
        self.attributes = attributes
        self.events: list[tuple[str, dict[str, Any], int]] | None = None  # made on the first
        self.failed = False
        self.start_ns = time.time_ns()
        self._start = time.perf_counter()
        self._handle = handle  # the request's span, for an attempt's first token
        self._first = False
        self._token: Any = None

    def __enter__(self) -> "Recording":
        self._token = current.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        current.reset(self._token)
        if exc is not None:
            self.raised(exc)
        self.sink(self, time.time_ns())

    def raised(self, exc: BaseException) -> None:
        """The span's body raised `exc`: a server span takes its HTTP status; an error that
        is not the client's (4xx) is named on the span by its type. An upstream failure was
        already named on its attempt's span where it happened (its kind or status)."""
        status = getattr(exc, "status", None)
        if self.kind == SERVER and isinstance(status, int):
            self.set(status=status)
        if not isinstance(exc, Exception):
            return
        if (self.kind == SERVER and not (isinstance(status, int) and status < 500)) or (
            self.kind == CLIENT and not isinstance(exc, UpstreamFailure)
        ):
            self.fail(type(exc).__name__)

    def set(self, attrs: Mapping[str, AttrValue | None] | None = None, /, **short: Any) -> None:
        into = self.attributes
        if attrs:
            for name, value in attrs.items():
                if value is not None:
                    into[name] = value
        for name, value in short.items():
            if value is not None:
                into[ATTRIBUTES.get(name) or "llm_proxy." + name] = value

    def event(self, name: str, attrs: Mapping[str, AttrValue] | None = None) -> None:
        if self.events is None:
            self.events = []
        self.events.append((name, dict(attrs or {}), time.time_ns()))

    def fail(self, kind: str) -> None:
        self.attributes["error.type"] = kind
        self.failed = True

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if input_tokens is not None:
            self.attributes["gen_ai.usage.input_tokens"] = input_tokens
        if output_tokens is not None:
            self.attributes["gen_ai.usage.output_tokens"] = output_tokens

    def first_token(self) -> None:
        if self._first:
            return
        self._first = True
        elapsed = time.perf_counter() - self._start
        self.attributes[TTFT_ATTRIBUTE] = elapsed
        self.event(FIRST_TOKEN, {TTFT_ATTRIBUTE: elapsed})
        if self._handle is not None:
            self._handle.first_token()

    def record(self, rec: "RequestRecord") -> None:
        """The finished request's facts, per the HTTP server and GenAI conventions."""
        a = self.attributes
        a["llm_proxy.request_id"] = rec.request_id
        a["gen_ai.operation.name"] = OPERATIONS.get(rec.endpoint, rec.endpoint)
        a["llm_proxy.attempts"] = rec.attempts
        if rec.backend_type is not None:
            a["gen_ai.provider.name"] = PROVIDER_NAMES.get(rec.backend_type, rec.backend_type)
        if rec.alias is not None:
            a["gen_ai.request.model"] = a["llm_proxy.alias"] = rec.alias
        for name, value in (
            ("gen_ai.response.model", rec.provider_model),
            ("llm_proxy.backend", rec.backend),
            ("llm_proxy.key_name", rec.key_name),
            ("llm_proxy.cache", rec.cache),
            ("gen_ai.usage.input_tokens", rec.tokens_in),
            ("gen_ai.usage.output_tokens", rec.tokens_out),
            ("llm_proxy.overhead_ms", rec.overhead_ms),
        ):
            if value is not None:
                a[name] = value
        if rec.session is not None:
            a["llm_proxy.session"] = scrub(rec.session)
        if rec.status:
            a["http.response.status_code"] = rec.status
        if rec.status >= 500 or rec.status == 0:  # 4xx leaves a server span's status unset
            self.fail(rec.error_type or (str(rec.status) if rec.status else "incomplete"))


class Unsampled:
    """A request the sampler dropped: it records nothing (its `with` gives `NO_SPAN`), but
    its trace travels upstream (flags 00, a fresh span id per attempt), so the trace stays
    whole across services that sample on their own."""

    __slots__ = ("_token", "trace_id", "trace_state")

    def __init__(self, trace_id: int, trace_state: Any) -> None:
        self.trace_id = trace_id
        self.trace_state = trace_state
        self._token: Any = None

    def __enter__(self) -> NoSpan:
        self._token = current.set(self)
        return NO_SPAN

    def __exit__(self, *_: object) -> None:
        current.reset(self._token)
