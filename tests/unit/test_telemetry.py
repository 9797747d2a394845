"""proxy.telemetry: GenAI-convention spans for a failover, trace context in and out, and
no OpenTelemetry call at all when tracing is off."""

import asyncio
import logging
import subprocess
import sys
import types
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from proxy import errors, exporters, telemetry
from proxy import spans as spans_module
from proxy import tracing as tracing_module
from proxy.observe import metrics
from proxy.routing import TargetKey
from proxy.telemetry import RequestRecord, tracer

if TYPE_CHECKING:
    from proxy.spans import Requested

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
INCOMING = [
    (b"host", b"gw"),
    (b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode()),
    (b"tracestate", b"vendor=abc"),
    (b"authorization", b"Bearer sk-client-SECRET-123456"),
]


class _Ex(NamedTuple):
    """What `tracer.attempt` reads of the client's request."""

    endpoint: str = "chat"
    stream: bool = True
    model: str = "gpt-4o"
    request_id: str = "req_1"


EX = cast("Requested", _Ex())


@pytest.fixture
def spans() -> Iterator[Any]:
    tracer.configure({"LLM_PROXY_TRACING": "memory"})
    assert tracer.enabled
    yield tracer.exporter
    tracer.shutdown()
    assert not tracer.enabled


def by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in finished if s.kind == kind]


def failover(headers: list[tuple[bytes, bytes]]) -> list[list[tuple[str, str]]]:
    """A request whose first attempt (openai) gets a 503 and whose second (azure) streams."""
    sent: list[list[tuple[str, str]]] = []
    rec = RequestRecord("req_1", "chat", "openai", True, 1_700_000_000.0, key_name="team-a")
    with tracer.request("POST", "/v1/chat/completions", headers, request_id="req_1") as span:
        first = TargetKey("openai", "gpt-4o")
        with tracer.attempt(
            EX, first, "openai", 1, base_url="https://api.openai.com/v1", circuit="closed"
        ) as attempt:
            out = [("x-request-id", "req_1"), ("traceparent", "00-client-sent-this-01")]
            tracer.inject(out)
            sent.append(out)
            attempt.fail(telemetry.failure_kind("status", 503))
        second = TargetKey("azure", "gpt4o-prod")
        base = "https://user:sk-in-url-SECRET@my.openai.azure.com:8443/?key=sk-query-SECRET"
        with tracer.attempt(EX, second, "azure", 2, base_url=base, circuit="half_open") as a2:
            out = [("x-request-id", "req_1")]
            tracer.inject(out)
            sent.append(out)
            a2.first_token()
            a2.set(response_model="gpt-4o-2024-08-06", finish_reasons=("stop",))
            a2.usage(11, 22)
        rec.alias, rec.backend, rec.backend_type = "gpt-4o", "azure", "azure"
        rec.provider_model, rec.status, rec.attempts = "gpt4o-prod", 200, 2
        rec.tokens_in, rec.tokens_out, rec.cache = 11, 22, "miss"
        telemetry.finish(rec, "none", span)
    return sent


def test_failover_is_one_server_span_with_two_client_children(spans: Any) -> None:
    failover(INCOMING)
    finished = spans.get_finished_spans()
    [server] = by_kind(finished, SpanKind.SERVER)
    clients = by_kind(finished, SpanKind.CLIENT)
    assert len(finished) == 3 and len(clients) == 2
    assert server.name == "POST /v1/chat/completions"
    for c in clients:
        assert c.parent is not None and c.parent.span_id == server.context.span_id
        assert c.context.trace_id == server.context.trace_id
    first, second = sorted(clients, key=lambda s: s.start_time or 0)

    assert first.name == "chat gpt-4o"
    assert dict(first.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.stream": True,
        "llm_proxy.alias": "gpt-4o",
        "llm_proxy.backend": "openai",
        "llm_proxy.attempt": 1,
        "llm_proxy.request_id": "req_1",
        "llm_proxy.circuit_state": "closed",
        "server.address": "api.openai.com",
        "error.type": "5xx",
    }
    assert first.status.status_code == StatusCode.ERROR

    assert second.name == "chat gpt4o-prod"
    attrs = dict(second.attributes or {})
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 22
    assert attrs["server.address"] == "my.openai.azure.com"
    assert attrs["server.port"] == 8443
    assert attrs["llm_proxy.circuit_state"] == "half_open"
    assert "error.type" not in attrs and second.status.status_code == StatusCode.UNSET
    [event] = second.events
    assert event.name == telemetry.FIRST_TOKEN
    ttft = (event.attributes or {})[telemetry.TTFT_ATTRIBUTE]
    assert isinstance(ttft, float) and ttft >= 0

    server_attrs = dict(server.attributes or {})
    ttft = server_attrs.pop(telemetry.TTFT_ATTRIBUTE)
    assert isinstance(ttft, float) and ttft >= 0
    assert server_attrs == {
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "url.path": "/v1/chat/completions",
        "url.scheme": "http",
        "http.response.status_code": 200,
        "llm_proxy.request_id": "req_1",
        "llm_proxy.key_name": "team-a",
        "llm_proxy.alias": "gpt-4o",
        "llm_proxy.backend": "azure",
        "llm_proxy.attempts": 2,
        "llm_proxy.cache": "miss",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt4o-prod",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 22,
    }
    assert [e.name for e in server.events] == [telemetry.FIRST_TOKEN]
    assert server.status.status_code == StatusCode.UNSET

    # Nothing secret anywhere in any span: not the client's key, not the key in the URL.
    dump = "".join(s.to_json() for s in finished)
    assert "SECRET" not in dump and "sk-" not in dump


def test_incoming_traceparent_is_continued_and_outgoing_carries_ours(spans: Any) -> None:
    sent = failover(INCOMING)
    finished = spans.get_finished_spans()
    [server] = by_kind(finished, SpanKind.SERVER)
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert server.parent.is_remote
    clients = sorted(by_kind(finished, SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    for out, client in zip(sent, clients, strict=True):
        headers = dict(out)
        assert [k for k, _ in out].count("traceparent") == 1  # the client's own was replaced
        span_id = format(client.context.span_id, "016x")
        assert headers["traceparent"] == f"00-{TRACE_ID}-{span_id}-01"
        assert headers["tracestate"] == "vendor=abc"
        assert headers["x-request-id"] == "req_1"


def test_without_incoming_context_a_new_trace_starts(spans: Any) -> None:
    failover([(b"host", b"gw")])
    [server] = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert server.parent is None
    assert format(server.context.trace_id, "032x") != TRACE_ID


def test_server_span_status_follows_http_conventions(spans: Any) -> None:
    with tracer.request("POST", "/v1/messages") as span:
        rec = RequestRecord("a", "messages", "anthropic", False, 0.0, status=429)
        telemetry.finish(rec, "none", span)
    with tracer.request("POST", "/v1/messages") as span:
        rec = RequestRecord("b", "messages", "anthropic", False, 0.0, status=502)
        rec.error_type = "upstream_exhausted"
        telemetry.finish(rec, "none", span)
    with pytest.raises(errors.NoTarget), tracer.request("POST", "/v1/messages"):
        raise errors.NoTarget("all open")
    with pytest.raises(errors.BadRequest), tracer.request("POST", "/v1/messages"):
        raise errors.BadRequest("bad")
    ok4xx, bad5xx, raised5xx, raised4xx = spans.get_finished_spans()
    assert ok4xx.status.status_code == StatusCode.UNSET
    assert "error.type" not in (ok4xx.attributes or {})
    assert bad5xx.status.status_code == StatusCode.ERROR
    assert (bad5xx.attributes or {})["error.type"] == "upstream_exhausted"
    assert raised5xx.status.status_code == StatusCode.ERROR
    assert (raised5xx.attributes or {})["error.type"] == "NoTarget"
    assert (raised5xx.attributes or {})["http.response.status_code"] == 503
    assert raised4xx.status.status_code == StatusCode.UNSET
    assert not raised4xx.events  # exception text is never recorded


def test_memory_exporter_is_bounded() -> None:
    tracer.configure({"LLM_PROXY_TRACING": "memory", "LLM_PROXY_TRACING_MAX_SPANS": "3"})
    try:
        for i in range(10):
            with tracer.request("POST", f"/r{i}"):
                pass
        assert [s.name for s in tracer.exporter.get_finished_spans()] == [
            "POST /r7",
            "POST /r8",
            "POST /r9",
        ]
    finally:
        tracer.shutdown()


def test_unsampled_requests_record_nothing_but_still_propagate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")  # the env given wins over os.environ
    tracer.configure({"LLM_PROXY_TRACING": "memory", "OTEL_TRACES_SAMPLER": "always_off"})
    try:
        sent = failover(INCOMING)
        assert tracer.exporter.get_finished_spans() == ()
        assert all("traceparent" in dict(out) for out in sent)
    finally:
        tracer.shutdown()


def test_otlp_without_its_package_warns_and_stays_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # absent even where the `otlp` extra is installed: a None entry makes the import fail
    for kind in ("http", "grpc"):
        monkeypatch.setitem(sys.modules, f"opentelemetry.exporter.otlp.proto.{kind}", None)
    caplog.set_level(logging.WARNING, logger="llm_proxy.telemetry")
    tracer.configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracer.enabled
    assert "opentelemetry-exporter-otlp-proto-http is not installed" in caplog.text
    caplog.clear()
    tracer.configure({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert not tracer.enabled
    assert "opentelemetry-exporter-otlp-proto-grpc" in caplog.text
    for env in ({}, {"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SDK_DISABLED": "true",
                "LLM_PROXY_TRACING": "memory"}, {"LLM_PROXY_TRACING": "off",
                "OTEL_TRACES_EXPORTER": "console"}):  # fmt: skip
        tracer.configure(env)
        assert not tracer.enabled, env


def test_otlp_exporter_is_used_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    exported: list[str] = []

    class OTLPSpanExporter(SpanExporter):  # stands in for the optional package
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            exported.extend(s.name for s in spans)
            return SpanExportResult.SUCCESS

    module = types.ModuleType("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    module.OTLPSpanExporter = OTLPSpanExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    tracer.configure({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracer.enabled and tracer.exporter is None  # batched, not kept in memory
    with tracer.request("POST", "/v1/embeddings"):
        pass
    tracer.shutdown()  # flushes the batch
    assert exported == ["POST /v1/embeddings"]


def test_off_calls_no_opentelemetry_api(monkeypatch: pytest.MonkeyPatch) -> None:
    import opentelemetry.context
    import opentelemetry.propagate
    import opentelemetry.trace

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("an OpenTelemetry API was called with tracing off")

    for module, name in [
        (opentelemetry.trace, "get_tracer"),
        (opentelemetry.trace, "get_current_span"),
        (opentelemetry.trace, "use_span"),
        (opentelemetry.context, "attach"),
        (opentelemetry.context, "get_current"),
        (opentelemetry.propagate, "inject"),
        (opentelemetry.propagate, "extract"),
        (opentelemetry.propagate, "get_global_textmap"),
    ]:
        monkeypatch.setattr(module, name, boom)
    tracer.configure({})
    assert not tracer.enabled and tracer.exporter is None
    metrics.REGISTRY.reset()
    sent = failover(INCOMING)
    assert sent == [
        [("x-request-id", "req_1"), ("traceparent", "00-client-sent-this-01")],  # untouched
        [("x-request-id", "req_1")],
    ]
    counted = metrics.REGISTRY.scalars["llm_proxy_requests_total"]
    assert counted == {("gpt-4o", "azure", "200"): 1}
    metrics.REGISTRY.reset()


def test_off_never_imports_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from proxy import telemetry\n"
        "from proxy.routing import TargetKey\n"
        "telemetry.configure({'LLM_PROXY_ACCESS_LOG': 'off'})\n"
        "with telemetry.tracer.request('POST', '/v1/chat/completions', []) as s:\n"
        "    h = []\n"
        "    telemetry.tracer.inject(h)\n"
        "    s.set(alias='x'); s.first_token()\n"
        "    rec = telemetry.RequestRecord('r', 'chat', 'openai', False, 0.0)\n"
        "    telemetry.finish(rec, 'none', s)\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded and h == [], loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


SAMPLER_ENVS = [
    {"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": arg}
    for name in exporters.SAMPLERS
    for arg in ("0", "0.1", "0.5", "1")
]


@given(
    env=st.sampled_from(SAMPLER_ENVS),
    trace_id=st.integers(1, 2**128 - 1),
    parent_sampled=st.none() | st.booleans(),
)
@settings(max_examples=300)
def test_sampling_decides_as_the_sdk_sampler_of_that_name(
    env: dict[str, str], trace_id: int, parent_sampled: bool | None
) -> None:
    """The inline decision (`Tracer.request`) keeps exactly the traces the SDK's own sampler
    of the same name and ratio keeps, for root traces and for a caller's sampled or dropped
    trace."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    tracer.configure({"LLM_PROXY_TRACING": "memory", **env})
    ids = tracing_module._ids
    try:
        headers: list[tuple[bytes, bytes]] = []
        context = None
        if parent_sampled is not None:
            flags = "01" if parent_sampled else "00"
            headers = [(b"traceparent", f"00-{trace_id:032x}-{PARENT_ID}-{flags}".encode())]
            parent = SpanContext(trace_id, int(PARENT_ID, 16), True, TraceFlags(int(flags)))
            context = set_span_in_context(NonRecordingSpan(parent))
        else:  # the root trace gets this id
            ids.getrandbits = lambda bits: trace_id if bits == 128 else 7  # type: ignore[method-assign]
        with tracer.request("POST", "/v1/chat/completions", headers) as span:
            kept = span is not spans_module.NO_SPAN
        sdk = exporters.sampler(env).sdk().should_sample(context, trace_id, "POST /x")
        assert kept == sdk.decision.is_sampled()
    finally:
        tracer.shutdown()
        vars(ids).pop("getrandbits", None)


def test_an_unsampled_request_sends_its_trace_upstream_with_flags_00(spans: Any) -> None:
    tracer.configure({"LLM_PROXY_TRACING": "memory", "OTEL_TRACES_SAMPLER": "always_off"})
    sent = failover(INCOMING)
    ids = set()
    for out in sent:
        version, trace, span_id, flags = dict(out)["traceparent"].split("-")
        assert (version, trace, flags) == ("00", TRACE_ID, "00")
        assert span_id != PARENT_ID
        ids.add(span_id)
        assert dict(out)["tracestate"] == "vendor=abc"
    assert len(ids) == 2  # one span id per attempt
    assert tracer.exporter.get_finished_spans() == ()


def test_batched_spans_reach_the_exporter_whole_by_shutdown() -> None:
    """Under the batch processor, spans are handed on in batches off the request path; none is
    lost when the worker stops, even if the loop that would have flushed them is gone."""
    tracer.configure({"LLM_PROXY_TRACING": "memory", "LLM_PROXY_TRACING_PROCESSOR": "batch"})
    exporter = tracer.exporter

    async def serve(first: int) -> None:
        for i in range(first, first + 3):
            with tracer.request("POST", f"/r{i}") as span:
                span.set(status=200)

    asyncio.run(serve(0))
    asyncio.run(serve(3))  # a new loop: the first one's flush timer never ran
    tracer.shutdown()
    finished = exporter.get_finished_spans()
    assert [s.name for s in finished] == [f"POST /r{i}" for i in range(6)]
    assert all((s.attributes or {})["http.response.status_code"] == 200 for s in finished)


def test_a_header_dict_continues_the_trace_as_the_raw_list_does(spans: Any) -> None:
    with tracer.request("POST", "/v1/chat/completions", dict(INCOMING)):
        pass
    [server] = spans.get_finished_spans()
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert str(server.context.trace_state.to_header()) == "vendor=abc"
