"""Observability end to end on one traced worker: spans, the access log, and no secret in
anything the gateway shows.

`traced` (module scope, one worker) exports spans with the console exporter
(`LLM_PROXY_TRACING=console`: JSON documents on the worker's stdout, i.e. in the gateway's
log, beside the access log's JSON lines, which are written in batches every 0.1 s); it holds
distinctive secrets (backend keys, a client key, the admin key, extra upstream header values)
and logs prompts `redacted`. Its upstreams and the helpers are `observability_support`'s.
Waits poll with a deadline; nothing sleeps "long enough".
"""

import calendar
import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.integration.observability_support import (
    ACCESS_FIELDS,
    ADMIN,
    ADMIN_KEY,
    CLIENT,
    CLIENT_KEY,
    COST,
    HDR_SECRETISH,
    HDR_TOKEN,
    KEY_BAD,
    KEY_GOOD,
    KEY_LOCKED,
    MODELS,
    PRICES,
    SECRETS,
    SPAN_DEADLINE,
    USAGE,
    Answer,
    access_line,
    bad_upstream,
    chat,
    fresh,
    good_upstream,
    locked_upstream,
    sent_by,
    spans,
    wait_for,
)
from tests.upstreams import FakeUpstream, Recorded

pytestmark = pytest.mark.timeout(40)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad() -> Iterator[FakeUpstream]:
    with bad_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def good() -> Iterator[FakeUpstream]:
    with good_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def locked() -> Iterator[FakeUpstream]:
    with locked_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
    bad: FakeUpstream,
    good: FakeUpstream,
    locked: FakeUpstream,
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("traced")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          failure_threshold: 1000
          retries: 2
          log_prompts: redacted
          admin_key: {ADMIN_KEY}
        backends:
          bad: {{type: openai, base_url: "{bad.url}", api_key: {KEY_BAD}}}
          good:
            type: openai
            base_url: "{good.url}"
            api_key: {KEY_GOOD}
            headers:
              x-upstream-token: {HDR_TOKEN}
              x-tenant-tag: {HDR_SECRETISH}
          locked: {{type: openai, base_url: "{locked.url}", api_key: {KEY_LOCKED}}}
        keys:
          - {{name: team-obs, key: {CLIENT_KEY}}}
        """
        + MODELS
        + """
          locked:
            targets: [{backend: locked, model: m-locked}]
        """
    )
    env = {
        "LLM_PROXY_TRACING": "console",
        "OTEL_SDK_DISABLED": "false",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: export finished spans promptly
        "LLM_PROXY_ACCESS_LOG": "stdout",
        "LLM_PROXY_PRICES": json.dumps(PRICES),
    }
    with serve(config, directory, env=env) as gw:
        yield gw


# --- reading spans ---------------------------------------------------------------------------


def trace_spans(gw: Gateway, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The spans of one trace, once `count` of them have been exported."""

    def found() -> list[dict[str, Any]] | None:
        mine = [s for s in spans(gw) if s["context"]["trace_id"] == "0x" + trace_id]
        return mine if len(mine) >= count else None

    result: list[dict[str, Any]] = wait_for(
        found, SPAN_DEADLINE, f"{count} spans of trace {trace_id}"
    )
    return result


def kind(span: Mapping[str, Any]) -> str:
    return str(span["kind"]).rpartition(".")[2]  # "SpanKind.SERVER" -> "SERVER"


def traceparent_of(rec: Recorded) -> tuple[str, str]:
    """(trace id, parent span id) of the one W3C traceparent the upstream received."""
    values = rec.headers.getall("traceparent", [])
    assert len(values) == 1, values
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]", values[0])
    assert match, values[0]
    return match.group(1), match.group(2)


# --- 1. spans --------------------------------------------------------------------------------


def test_failover_is_one_server_span_with_two_client_spans(
    traced: Gateway, bad: FakeUpstream, good: FakeUpstream
) -> None:
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    rid = "obs-trace-failover"
    headers = {**CLIENT, "traceparent": f"00-{trace_id}-{caller_span}-01", "x-request-id": rid}
    resp = chat(traced, "fo", headers)
    assert resp.status == 200, resp.body
    assert resp.headers["x-proxy-attempts"] == "2"

    found = trace_spans(traced, trace_id, 3)
    servers = [s for s in found if kind(s) == "SERVER"]
    clients = sorted(
        (s for s in found if kind(s) == "CLIENT"),
        key=lambda s: s["attributes"]["llm_proxy.attempt"],
    )
    assert len(servers) == 1 and len(clients) == 2, [(s["name"], s["kind"]) for s in found]
    server = servers[0]
    server_id = server["context"]["span_id"]

    # The server span continues the caller's trace and describes the HTTP exchange.
    assert server["name"] == "POST /v1/chat/completions"
    assert server["parent_id"] == "0x" + caller_span
    sa = server["attributes"]
    assert sa["http.request.method"] == "POST"
    assert sa["http.route"] == "/v1/chat/completions"
    assert sa["url.scheme"] == "http"
    assert sa["http.response.status_code"] == 200
    assert sa["llm_proxy.request_id"] == rid
    assert sa["llm_proxy.attempts"] == 2
    assert sa["llm_proxy.key_name"] == "team-obs"
    assert (sa["gen_ai.usage.input_tokens"], sa["gen_ai.usage.output_tokens"]) == USAGE
    assert server["status"]["status_code"] == "UNSET"

    first, second = clients
    for n, (span, model, up) in enumerate(((first, "m-bad", bad), (second, "m-good", good)), 1):
        a = span["attributes"]
        assert span["name"] == f"chat {model}"
        assert span["parent_id"] == server_id, "client spans are children of the server span"
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == model
        assert a["server.address"] == "127.0.0.1"
        assert a["server.port"] == up.port
        assert a["llm_proxy.attempt"] == n
        # The upstream got the trace: same trace id, this attempt's span as parent.
        received = sent_by(up, rid)
        assert len(received) == 1
        assert traceparent_of(received[0]) == (trace_id, span["context"]["span_id"][2:])

    assert first["attributes"]["error.type"] == "500"
    assert first["status"]["status_code"] == "ERROR"
    assert "gen_ai.usage.input_tokens" not in first["attributes"]
    assert "error.type" not in second["attributes"]
    assert second["status"]["status_code"] == "UNSET"
    assert second["attributes"]["gen_ai.usage.input_tokens"] == USAGE[0]
    assert second["attributes"]["gen_ai.usage.output_tokens"] == USAGE[1]


def test_stream_span_records_first_chunk(traced: Gateway, good: FakeUpstream) -> None:
    trace_id = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    headers = {**CLIENT, "traceparent": f"00-{trace_id}-1122334455667788-01"}
    resp = chat(traced, "ok", headers, stream=True)
    assert resp.status == 200 and b"[DONE]" in resp.body
    found = trace_spans(traced, trace_id, 2)
    (server,) = [s for s in found if kind(s) == "SERVER"]
    (client,) = [s for s in found if kind(s) == "CLIENT"]
    assert client["parent_id"] == server["context"]["span_id"]
    a = client["attributes"]
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    assert "gen_ai.first_token" in [e["name"] for e in client["events"]]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == USAGE
    assert server["attributes"]["gen_ai.response.time_to_first_chunk"] > 0


def test_server_span_status_4xx_unset_5xx_error(traced: Gateway) -> None:
    """HTTP semconv: a 4xx leaves the server span's status unset; a 5xx sets Error."""
    ids = {"nope": "0123456789abcdef0123456789abcd01", "dead": "0123456789abcdef0123456789abcd02"}
    for model, trace_id in ids.items():
        resp = chat(traced, model, {**CLIENT, "traceparent": f"00-{trace_id}-aaaaaaaaaaaaaaaa-01"})
        assert resp.status == (404 if model == "nope" else 500), resp.body
    (not_found,) = trace_spans(traced, ids["nope"], 1)
    assert not_found["attributes"]["http.response.status_code"] == 404
    assert not_found["status"]["status_code"] == "UNSET"
    assert "error.type" not in not_found["attributes"]
    failed = trace_spans(traced, ids["dead"], 2)
    (server,) = [s for s in failed if kind(s) == "SERVER"]
    assert server["attributes"]["http.response.status_code"] == 500
    assert server["status"]["status_code"] == "ERROR"
    assert server["attributes"]["error.type"]


# --- 2. access log ---------------------------------------------------------------------------


def test_access_log_failover_line_has_every_field(traced: Gateway) -> None:
    prompt = (
        "please mail the report to alice.obs@example.com using sk-proj-obsPrompt7h3k9q2w "
        f"or, failing that, {KEY_GOOD}"
    )
    resp = chat(traced, "fo", CLIENT, messages=[{"role": "user", "content": prompt}])
    assert resp.status == 200, resp.body
    rid = resp.headers["x-request-id"]
    line = access_line(traced, rid)
    assert set(ACCESS_FIELDS) <= set(line), set(ACCESS_FIELDS) - set(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    logged_at = calendar.timegm(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(logged_at - time.time()) < 120, "time is the arrival time, in UTC"
    assert line["request_id"] == rid
    assert line["key_name"] == "team-obs"
    assert (line["alias"], line["backend"], line["provider_model"]) == ("fo", "good", "m-good")
    assert (line["status"], line["attempts"]) == (200, 2)
    assert line["stream"] is False and line["ttft_ms"] is None
    assert 0 <= line["overhead_ms"] <= line["total_ms"]
    assert (line["tokens_in"], line["tokens_out"]) == USAGE
    assert math.isclose(line["cost"], COST, rel_tol=1e-9)
    assert line["cache"] is None and line["error_type"] is None
    # log_prompts: redacted — personal data and credentials masked, the rest kept.
    logged = line["prompt"]
    assert "please mail the report to" in logged
    assert "alice.obs@example.com" not in logged and "[EMAIL]" in logged
    assert "obsPrompt7h3k9q2w" not in logged and "[SECRET]" in logged
    assert KEY_GOOD not in logged, "a key the gateway holds is masked whatever its shape"
    assert logged.count("[SECRET]") == 2


def test_access_log_stream_line_has_ttft(traced: Gateway) -> None:
    resp = chat(traced, "ok", CLIENT, stream=True)
    assert resp.status == 200 and b"[DONE]" in resp.body
    line = access_line(traced, resp.headers["x-request-id"])
    assert line["stream"] is True
    assert (line["alias"], line["backend"], line["status"], line["attempts"]) == (
        "ok", "good", 200, 1,
    )  # fmt: skip
    assert isinstance(line["ttft_ms"], float) and 0 < line["ttft_ms"] <= line["total_ms"]
    assert (line["tokens_in"], line["tokens_out"]) == USAGE
    assert math.isclose(line["cost"], COST, rel_tol=1e-9)


def test_access_log_error_lines(traced: Gateway) -> None:
    unknown = chat(traced, "nope", CLIENT)
    assert unknown.status == 404
    line = access_line(traced, unknown.headers["x-request-id"])
    assert (line["status"], line["error_type"], line["attempts"]) == (404, "model_not_found", 0)
    assert line["key_name"] == "team-obs"
    assert line["alias"] is None and line["backend"] is None and line["tokens_in"] is None

    exhausted = chat(traced, "dead", CLIENT)
    assert exhausted.status == 500
    line = access_line(traced, exhausted.headers["x-request-id"])
    assert (line["status"], line["alias"], line["attempts"]) == (500, "dead", 1)
    assert line["error_type"]

    refused = chat(traced, "ok", {"authorization": "Bearer not-a-configured-key"})
    assert refused.status == 401
    line = access_line(traced, refused.headers["x-request-id"])
    assert line["status"] == 401 and line["key_name"] is None and line["error_type"]


# --- 3. secrets ------------------------------------------------------------------------------


def test_no_secret_anywhere(traced: Gateway, good: FakeUpstream, locked: FakeUpstream) -> None:
    shown: dict[str, bytes] = {}
    ids: list[str] = []  # every /v1 request made here: its access line must be in the log

    def call(model: str, headers: Mapping[str, str], **extra: Any) -> Answer:
        resp = chat(traced, model, headers, **extra)
        ids.append(resp.headers["x-request-id"])
        return resp

    ok_resp = call("ok", {**CLIENT, "x-request-id": "obs-secret-ok"})
    assert ok_resp.status == 200
    # The secrets are really in use (else this test proves nothing) and stay where they belong.
    (to_good,) = sent_by(good, "obs-secret-ok")
    assert to_good.headers["authorization"] == f"Bearer {KEY_GOOD}"
    assert to_good.headers["x-upstream-token"] == HDR_TOKEN
    assert to_good.headers["x-tenant-tag"] == HDR_SECRETISH
    assert CLIENT_KEY not in repr(dict(to_good.headers)), "the client key went upstream"

    fo = call("locked-fo", {**CLIENT, "x-request-id": "obs-secret-fo"})
    assert fo.status == 200 and fo.headers["x-proxy-attempts"] == "2"
    (to_locked,) = sent_by(locked, "obs-secret-fo")  # and it answered quoting the key
    assert to_locked.headers["authorization"] == f"Bearer {KEY_LOCKED}"
    shown["failover after a key-echoing 401"] = fo.body
    # Their bodies are the upstream's 401 (tested on its own below); the log still sees them.
    assert call("locked", CLIENT).status == 401
    assert call("locked", CLIENT, stream=True).status == 401
    shown["streamed"] = call("ok", CLIENT, stream=True).body
    shown["dead 500"] = call("dead", CLIENT).body
    shown["unknown model"] = call("nope", CLIENT).body
    wrong = call("ok", {"authorization": f"Bearer {ADMIN_KEY}"})  # a real secret, wrong use
    assert wrong.status == 401
    shown["wrong client key"] = wrong.body + repr(wrong.headers).encode()
    admin_wrong = fresh(traced, "GET", "/admin/config", headers=CLIENT)
    assert admin_wrong.status == 401
    shown["admin with the client key"] = admin_wrong.body

    for path in ("/admin/config", "/admin/backends"):
        view = fresh(traced, "GET", path, headers=ADMIN)
        assert view.status == 200, view.body
        shown[path] = view.body
        shown[f"{path} headers"] = repr(view.headers).encode()
    config = json.loads(shown["/admin/config"])["config"]
    assert config["backends"]["good"]["api_key"] == "***"
    assert set(config["backends"]["good"]["headers"].values()) == {"***"}
    assert config["settings"]["admin_key"] == "***" and config["keys"][0]["key"] == "***"
    targets = json.loads(shown["/admin/backends"])["targets"]
    assert any(t["backend"] == "locked" and t["last_error"] for t in targets)
    metrics_text = fresh(traced, "GET", "/metrics").body
    assert b"llm_proxy_requests_total" in metrics_text
    shown["/metrics"] = metrics_text

    # Everything these requests wrote is in the log before it is searched: access lines
    # (batched) and spans (exported in batches), the key-echoing attempts' included.
    for rid in ids:
        access_line(traced, rid)
    wait_for(
        lambda: (
            {rid for s in spans(traced) if (rid := s["attributes"].get("llm_proxy.request_id"))}
            >= set(ids)
        ),
        SPAN_DEADLINE,
        "every request's spans in the log",
    )
    shown["gateway log (spans, access lines, warnings)"] = traced.log_text().encode()

    for where, text in shown.items():
        for secret in SECRETS:
            assert secret.encode() not in text, f"{secret!r} shown in {where}"


def test_upstream_error_echoing_the_key_is_not_returned(traced: Gateway) -> None:
    for stream in (False, True):
        resp = chat(traced, "locked", CLIENT, stream=stream)
        assert resp.status >= 400
        assert KEY_LOCKED.encode() not in resp.body, resp.body
