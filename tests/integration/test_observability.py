"""Observability end to end: spans, `/metrics` across workers, the access log, no secrets.

Three gateways, module scope. `traced` (one worker) exports spans with the console exporter
(`LLM_PROXY_TRACING=console`: JSON documents on the worker's stdout, i.e. in the gateway's
log, beside the access log's JSON lines, which are written in batches every 0.1 s); it holds
distinctive secrets (backend keys, a client key, the admin key, extra upstream header values)
and logs prompts `redacted`. `counted` runs two workers, logs no prompts, and takes one known
batch of traffic whose counts `/metrics` must show exactly. `echoing` has one upstream whose
stream error quotes the gateway's key (its circuit remembers that text, so it is kept apart).
Waits poll with a deadline; nothing sleeps "long enough".
"""

import calendar
import http.client
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, Recorded, ok, status

pytestmark = pytest.mark.timeout(40)

# Distinctive, and mostly NOT shaped like a well-known key, so only the gateway's knowledge of
# its own configuration can keep them out of its output (generic `sk-...` masking can't).
KEY_GOOD = "obs-upstream-good-key-4be1f07c"
KEY_BAD = "sk-obs-upstream-bad-9c3d2a71e5"
KEY_LOCKED = "obs-upstream-locked-key-77a0d3"
CLIENT_KEY = "obs-client-team-key-2f9e61"
ADMIN_KEY = "obs-admin-key-c4d55b0e"
HDR_TOKEN = "obs-header-token-91ab3e"  # under a secret-sounding header name
HDR_SECRETISH = "sk-obs-header-value-5d7e28cc"  # secret-looking value, plain header name
SECRETS = (KEY_GOOD, KEY_BAD, KEY_LOCKED, CLIENT_KEY, ADMIN_KEY, HDR_TOKEN, HDR_SECRETISH)
KEY_ECHOED = "obs-upstream-echoed-key-0b6d19"  # quoted back in an upstream's stream error

CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
USAGE = (7, 3)  # what the good upstream reports: prompt, completion tokens
PRICES = {"m-good": [1.5, 4.0]}  # USD per million tokens (LLM_PROXY_PRICES)
COST = (USAGE[0] * 1.5 + USAGE[1] * 4.0) / 1e6
HELLO = [{"role": "user", "content": "hi"}]
ACCESS_FIELDS = (
    "time", "request_id", "key_name", "alias", "backend", "provider_model", "status",
    "attempts", "overhead_ms", "ttft_ms", "total_ms", "tokens_in", "tokens_out", "cost",
    "cache", "error_type",
)  # fmt: skip
SPAN_DEADLINE = 5.0  # seconds for a finished span to reach the log (batch delay: 50 ms)
METRICS_DEADLINE = 3.0  # workers publish every 0.5 s


# --- plumbing --------------------------------------------------------------------------------


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fresh(
    gw: Gateway,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request on its own new connection (so a multi-worker gateway spreads them)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {"content-type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def chat(gw: Gateway, model: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Answer:
    body = {"model": model, "messages": extra.pop("messages", HELLO), **extra}
    return fresh(gw, "POST", "/v1/chat/completions", body, headers)


def wait_for(check: Callable[[], Any], deadline: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result or time.monotonic() >= end:
            break
        time.sleep(0.05)
    assert result, f"not within {deadline}s: {what}"
    return result


def worker_of(answer: Answer) -> str:
    """Gateway-made request ids start with a random per-worker prefix."""
    match = re.match(r"req_[0-9a-f]{12}", answer.headers["x-request-id"])
    assert match, answer.headers["x-request-id"]
    return match.group()


def sent_by(up: FakeUpstream, request_id: str) -> list[Recorded]:
    """What `up` received for one client request (the gateway forwards x-request-id)."""
    return [r for r in up.requests if r.headers.get("x-request-id") == request_id]


# --- reading the log: JSON documents (access lines, console-exported spans) -------------------

_json = json.JSONDecoder()


def json_documents(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at the beginning of a line (one-line access records,
    multi-line span dumps); plain log lines and torn writes are skipped."""
    docs: list[dict[str, Any]] = []
    end = 0
    for m in re.finditer(r"(?m)^\{", text):
        if m.start() < end:
            continue  # inside a document already read
        try:
            obj, end = _json.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            docs.append(obj)
    return docs


def access_lines(gw: Gateway) -> list[dict[str, Any]]:
    return [d for d in json_documents(gw.log_text()) if "request_id" in d and "total_ms" in d]


def access_line(gw: Gateway, request_id: str) -> dict[str, Any]:
    def one() -> dict[str, Any] | None:
        found = [d for d in access_lines(gw) if d["request_id"] == request_id]
        assert len(found) <= 1, f"{len(found)} access lines for {request_id}"
        return found[0] if found else None

    line: dict[str, Any] = wait_for(one, 3.0, f"an access line for {request_id}")
    return line


def spans(gw: Gateway) -> list[dict[str, Any]]:
    return [d for d in json_documents(gw.log_text()) if "context" in d and "kind" in d]


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


# --- Prometheus text format ------------------------------------------------------------------

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    """Exposition format 0.0.4: every sample; each must belong to a family with a TYPE."""
    typed: dict[str, str] = {}
    out: list[Sample] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                typed[parts[2]] = parts[3]
            continue
        m = _SAMPLE.fullmatch(line)
        assert m, f"not a sample line: {line!r}"
        name, raw_labels, raw_value = m.groups()
        labels: dict[str, str] = {}
        rest = raw_labels or ""
        while rest:
            lm = _LABEL.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels[lm.group(1)] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group()], lm.group(2))
            rest = rest[lm.end() :]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no # TYPE line"
        out.append(Sample(name, labels, float(raw_value)))
    return out


def series(samples: list[Sample], name: str, *label_names: str) -> dict[tuple[str, ...], float]:
    """`name`'s samples keyed by the given labels' values (summed over any others)."""
    out: dict[tuple[str, ...], float] = {}
    for s in samples:
        if s.name == name:
            key = tuple(s.labels.get(n, "") for n in label_names)
            out[key] = out.get(key, 0.0) + s.value
    return out


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=("m-bad",)) as up:
        up.default = status(500)
        yield up


@pytest.fixture(scope="module")
def good() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=("m-good",)) as up:
        up.default = ok(usage=USAGE)
        yield up


@pytest.fixture(scope="module")
def locked() -> Iterator[FakeUpstream]:
    """Refuses the gateway's key and, like the real API, quotes it back."""
    with FakeUpstream(models=("m-locked",)) as up:
        up.default = status(
            401,
            body={
                "error": {
                    "message": f"Incorrect API key provided: {KEY_LOCKED}. You can find your "
                    "API key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
        yield up


def _models() -> str:
    return """
        models:
          locked-fo:
            targets:
              - {backend: locked, model: m-locked, priority: 0}
              - {backend: good, model: m-good, priority: 1}
          fo:
            targets:
              - {backend: bad, model: m-bad, priority: 0}
              - {backend: good, model: m-good, priority: 1}
          ok:
            targets: [{backend: good, model: m-good}]
          dead:
            targets: [{backend: bad, model: m-bad}]
        """


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
        + _models()
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


# --- 1. spans ---------------------------------------------------------------------------------


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


# --- 3. access log ----------------------------------------------------------------------------


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


# --- 4. secrets -------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def echoing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway (own module-scoped one: circuits remember errors) whose only upstream
    answers a stream with an in-band error frame quoting the gateway's key, before any
    content, as OpenAI-compatible servers do."""
    frame = {"error": {"message": f"Incorrect API key provided: {KEY_ECHOED}", "type": "auth"}}
    with FakeUpstream(models=("m-echo",)) as up:
        up.default = status(
            200,
            body=f"data: {json.dumps(frame)}\n\n",
            headers={"Content-Type": "text/event-stream"},
        )
        directory = tmp_path_factory.mktemp("echoing")
        config = RoutesFile(directory)(
            f"""
            version: 1
            backends:
              echo: {{type: openai, base_url: "{up.url}", api_key: {KEY_ECHOED}}}
            models:
              echo: {{targets: [{{backend: echo, model: m-echo}}]}}
            """
        )
        env = {"LLM_PROXY_TRACING": "console", "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_SDK_DISABLED": "false", "LLM_PROXY_ACCESS_LOG": "stdout"}  # fmt: skip
        with serve(config, directory, env=env) as gw:
            yield gw


def test_stream_error_quoting_the_key_stays_out_of_log_and_spans(echoing: Gateway) -> None:
    resp = chat(echoing, "echo", stream=True)
    assert resp.status == 502, resp.body
    rid = resp.headers["x-request-id"]
    assert access_line(echoing, rid)["error_type"]
    wait_for(
        lambda: any(s["attributes"].get("llm_proxy.request_id") == rid for s in spans(echoing)),
        SPAN_DEADLINE,
        "the request's spans in the log",
    )
    assert "Incorrect API key provided" in echoing.log_text(), "the failure was logged"
    assert KEY_ECHOED not in echoing.log_text()


def test_stream_error_quoting_the_key_is_not_returned(echoing: Gateway) -> None:
    resp = chat(echoing, "echo", stream=True)
    assert resp.status == 502
    assert KEY_ECHOED.encode() not in resp.body, resp.body


def test_stream_error_quoting_the_key_is_not_in_admin_backends(echoing: Gateway) -> None:
    assert chat(echoing, "echo", stream=True).status == 502
    view = fresh(echoing, "GET", "/admin/backends")
    assert view.status == 200
    assert "Incorrect API key provided" in view.body.decode(), "the error is shown"
    assert KEY_ECHOED.encode() not in view.body, view.body


# --- 2. metrics with two workers (and log_prompts: none) ---------------------------------------


class Traffic(NamedTuple):
    gw: Gateway
    requests: Counter[tuple[str, str, str]]  # (alias, backend, status) -> requests sent
    answered: Counter[str]  # alias -> requests the good upstream answered
    plain: int  # non-streaming answers (the ones with a gateway overhead figure)
    streams: int  # streaming answers
    attempts: Counter[tuple[str, str]]  # (backend, model) -> upstream attempts
    failures: Counter[tuple[str, str, str]]  # (backend, model, kind) -> failed attempts
    workers: set[str]
    ids: list[str]


# What one round sends: (model, stream, expected status, answering backend).
ROUND = (
    *[("ok", False, 200, "good")] * 4,
    *[("ok", True, 200, "good")] * 2,
    *[("fo", False, 200, "good")] * 2,
    ("locked-fo", False, 200, "good"),
    *[("nope", False, 404, "")] * 2,
    ("dead", False, 500, "bad"),  # a request no target answered names the last one tried
)
# The failed attempt each model makes before its answer (or its error).
FAILED_FIRST = {"fo": ("bad", "m-bad", "5xx"), "dead": ("bad", "m-bad", "5xx"),
                "locked-fo": ("locked", "m-locked", "4xx")}  # fmt: skip


@pytest.fixture(scope="module")
def counted(
    tmp_path_factory: pytest.TempPathFactory,
    bad: FakeUpstream,
    good: FakeUpstream,
    locked: FakeUpstream,
) -> Iterator[Traffic]:
    """A two-worker gateway after one config reload and a known mix of requests, sent on
    fresh connections, concurrently, until both workers have answered some."""
    directory = tmp_path_factory.mktemp("counted")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          failure_threshold: 1000
          retries: 2
          log_prompts: none
        backends:
          bad: {{type: openai, base_url: "{bad.url}", api_key: {KEY_BAD}}}
          good: {{type: openai, base_url: "{good.url}", api_key: {KEY_GOOD}}}
          locked: {{type: openai, base_url: "{locked.url}", api_key: {KEY_LOCKED}}}
        """
        + _models()
    )
    env = {
        "LLM_PROXY_TRACING": "off",
        "LLM_PROXY_ACCESS_LOG": "stdout",
        "LLM_PROXY_PRICES": json.dumps(PRICES),
    }
    with serve(config, directory, workers=2, env=env) as gw:
        # /health answers once ONE worker is up; reload only when both are, so both count it.
        up: set[str] = set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(40):  # bounded
                up.update(map(worker_of, pool.map(lambda _: fresh(gw, "GET", "/health"), range(8))))
                if len(up) == 2:
                    break
                time.sleep(0.05)
        assert len(up) == 2, "the second worker never answered"
        reload = fresh(gw, "POST", "/admin/reload")
        assert reload.status == 200 and reload.json()["ok"] is True, reload.body

        t = Traffic(gw, Counter(), Counter(), 0, 0, Counter(), Counter(), set(), [])
        plain = streams = 0
        prompt = [{"role": "user", "content": "contact bob.obs@example.org about it"}]

        def send(item: tuple[str, bool, int, str]) -> Answer:
            model, stream, _, _ = item
            return chat(gw, model, messages=prompt, stream=stream)

        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(8):  # bounded: until both workers have served traffic
                for item, resp in zip(ROUND, pool.map(send, ROUND), strict=True):
                    model, stream, code, backend = item
                    assert resp.status == code, (item, resp.body)
                    alias = "" if model == "nope" else model
                    t.requests[(alias, backend, str(code))] += 1
                    t.workers.add(worker_of(resp))
                    t.ids.append(resp.headers["x-request-id"])
                    if model in FAILED_FIRST:
                        failed = FAILED_FIRST[model]
                        t.attempts[failed[:2]] += 1
                        t.failures[failed] += 1
                    if backend == "good":
                        t.answered[alias] += 1
                        t.attempts[("good", "m-good")] += 1
                        streams += stream
                        plain += not stream
                if len(t.workers) == 2:
                    break
        assert len(t.workers) == 2, "every request landed on one worker"
        yield t._replace(plain=plain, streams=streams)


def test_metrics_count_two_workers_traffic(counted: Traffic) -> None:
    t = counted
    n = sum(t.requests.values())

    def scrape() -> list[Sample] | None:
        samples = parse_prometheus(fresh(t.gw, "GET", "/metrics").body.decode())
        by_status = series(samples, "llm_proxy_requests_total", "alias", "backend", "status")
        reloads = series(samples, "llm_proxy_config_reloads_total", "result")
        settled = (
            by_status == {k: float(v) for k, v in t.requests.items()}
            and total(samples, "llm_proxy_workers") == 2
            and reloads.get(("ok",)) == 2
            and total(samples, "llm_proxy_config_generation_min") == 2
        )
        return samples if settled else None

    end = time.monotonic() + METRICS_DEADLINE
    samples = scrape()
    while samples is None and time.monotonic() < end:
        time.sleep(0.1)
        samples = scrape()
    if samples is None:  # show the difference, not just "timed out"
        last = parse_prometheus(fresh(t.gw, "GET", "/metrics").body.decode())
        got = series(last, "llm_proxy_requests_total", "alias", "backend", "status")
        assert got == {k: float(v) for k, v in t.requests.items()}
        assert total(last, "llm_proxy_workers") == 2
        assert series(last, "llm_proxy_config_reloads_total", "result").get(("ok",)) == 2
        assert total(last, "llm_proxy_config_generation_min") == 2
        raise AssertionError("metrics did not settle")  # pragma: no cover

    # Tokens and cost: exactly what the upstream reported, per alias.
    tokens = series(samples, "llm_proxy_tokens_total", "alias", "backend", "type")
    expect_tokens: dict[tuple[str, ...], float] = {}
    for alias, count in t.answered.items():
        expect_tokens[(alias, "good", "input")] = float(count * USAGE[0])
        expect_tokens[(alias, "good", "output")] = float(count * USAGE[1])
    assert tokens == expect_tokens
    cost = series(samples, "llm_proxy_cost_usd_total", "alias", "backend")
    assert set(cost) == {(alias, "good") for alias in t.answered}
    for alias, count in t.answered.items():
        assert math.isclose(cost[(alias, "good")], count * COST, rel_tol=1e-9)

    # Upstream attempts and failures by kind.
    attempts = series(samples, "llm_proxy_upstream_attempts_total", "backend", "model")
    assert attempts == {k: float(v) for k, v in t.attempts.items()}
    failures = series(samples, "llm_proxy_upstream_failures_total", "backend", "model", "kind")
    assert failures == {k: float(v) for k, v in t.failures.items()}

    # Histograms count every request; first-token times only streams; nothing left in flight.
    assert total(samples, "llm_proxy_request_duration_seconds_count") == n
    durations = series(samples, "llm_proxy_request_duration_seconds_count", "alias")
    assert durations.get(("",)) == t.requests[("", "", "404")]
    assert total(samples, "llm_proxy_request_duration_seconds_bucket", le="+Inf") == n
    assert total(samples, "llm_proxy_time_to_first_token_seconds_count") == t.streams
    assert total(samples, "llm_proxy_gateway_overhead_seconds_count") == t.plain
    circuits = series(samples, "llm_proxy_circuit_state", "backend", "model", "state")
    for (backend, model), _ in t.attempts.items():
        workers_with = sum(circuits.get((backend, model, st), 0) for st in ("closed", "open"))
        assert 1 <= workers_with <= 2 and circuits.get((backend, model, "open"), 0) == 0
    assert total(samples, "llm_proxy_requests_in_flight") == 0
    assert total(samples, "llm_proxy_streams_open") == 0

    # Config: two successful reloads (one per worker), none failed, both at generation 2.
    reloads = series(samples, "llm_proxy_config_reloads_total", "result")
    assert reloads == {("ok",): 2.0, ("failed",): 0.0}
    assert total(samples, "llm_proxy_config_generation") == 2


def test_access_log_two_workers_one_line_each_and_no_prompt(counted: Traffic) -> None:
    def complete() -> list[dict[str, Any]] | None:
        lines = [d for d in access_lines(counted.gw) if d["request_id"] in set(counted.ids)]
        return lines if len(lines) >= len(counted.ids) else None

    lines = wait_for(complete, 3.0, "an access line for every request")
    assert sorted(d["request_id"] for d in lines) == sorted(counted.ids)
    assert {d["request_id"][:16] for d in lines} == counted.workers
    for d in lines:
        assert set(ACCESS_FIELDS) <= set(d)
        assert "prompt" not in d, "log_prompts: none must leave the prompt out"
        assert d["key_name"] == "anonymous"  # no keys: section
    assert "bob.obs@example.org" not in counted.gw.log_text()
    by_status = Counter((d["alias"] or "", d["backend"] or "", str(d["status"])) for d in lines)
    assert by_status == counted.requests
