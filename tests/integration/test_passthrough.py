"""Pass-through against real local servers: what reaches the upstream, what reaches the client.

One gateway (module scope) fronts scriptable OpenAI-wire FakeUpstreams; a second serves the
shipped `routes.yaml`, whose `demo` model is the built-in mock. Each test reads only the
requests it caused (`up.requests[n:]`), so tests stay independent while sharing servers.
"""

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from proxy.sse import Decoder, Event
from tests.conftest import REPO, Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, Recorded, ok, slow_stream, status

pytestmark = pytest.mark.timeout(30)

UPSTREAM_KEY = "sk-upstream-pt-4b1d"
CLIENT_KEY = "sk-client-pt-never-forwarded"
HELLO = [{"role": "user", "content": "hi there"}]


class TimedUpstream(FakeUpstream):
    """A FakeUpstream that also notes when each streamed answer was fully written, so a test
    can tell "the client had chunk 1 while the upstream was still sending" by event order."""

    def __init__(self) -> None:
        super().__init__(models=("fake-model",))
        self.stream_done: dict[int, float] = {}

    async def _stream(self, request: web.Request, ex: Any, *args: Any) -> web.StreamResponse:
        try:
            return await super()._stream(request, ex, *args)
        finally:
            self.stream_done[ex.index] = time.monotonic()


@pytest.fixture(scope="module")
def up() -> Iterator[TimedUpstream]:
    with TimedUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def heavy() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def light() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    up: TimedUpstream,
    heavy: FakeUpstream,
    light: FakeUpstream,
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("passthrough")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          failure_threshold: 50
        backends:
          fake:
            type: openai
            base_url: {up.url}/
            api_key: {UPSTREAM_KEY}
            headers: {{X-Extra: extra-value, OpenAI-Organization: org-configured}}
          az:
            type: azure
            base_url: {up.root}
            api_key: az-key-pt-77
            api_version: "2024-06-01"
          heavy: {{type: openai, base_url: "{heavy.url}"}}
          by-name: {{type: openai, base_url: "http://localhost:{up.port}/v1"}}
          light: {{type: openai, base_url: "{light.url}"}}
        models:
          mapped:
            targets: [{{backend: fake, model: fake-model}}]
          by-name:
            targets: [{{backend: by-name, model: fake-model}}]
          fake-model:
            targets: [{{backend: fake}}]
          azm:
            targets: [{{backend: az, model: my-deploy}}]
          "ollama/*":
            targets: [{{backend: fake, model: "*"}}]
          ollama/pinned:
            targets: [{{backend: heavy, model: pinned-exact}}]
          weighted:
            targets:
              - {{backend: heavy, model: w, weight: 3}}
              - {{backend: light, model: w, weight: 1}}
          tiered:
            targets:
              - {{backend: heavy, model: first, priority: 0}}
              - {{backend: light, model: second, priority: 1}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as c:
        yield c


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HELLO, **extra}


def only_new(upstream: FakeUpstream, before: int) -> Recorded:
    """The one request the upstream received since `before`."""
    upstream.wait_for_requests(before + 1)
    new = upstream.requests[before:]
    assert len(new) == 1, f"expected exactly one upstream request, got {len(new)}"
    return new[0]


# --- request body ---------------------------------------------------------------------------


def test_unknown_fields_arrive_unchanged_and_model_is_rewritten(
    client: httpx.Client, up: FakeUpstream
) -> None:
    n = len(up.requests)
    odd = b'{"nested": [1, 2.50, "\\u00e9", {"deep": null}], "flag": true}'
    body = (
        b'{"model": "mapped", "messages": [{"role": "user", "content": "hi"}], '
        b'"x_vendor_field": ' + odd + b', "temperature": 0.70, "seed": 7}'
    )
    resp = client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    rec = only_new(up, n)
    sent = json.loads(body)
    assert rec.json == {**sent, "model": "fake-model"}
    # Values are forwarded as the client's bytes, never decoded and re-encoded.
    assert b'"x_vendor_field":' + odd in rec.body
    assert b'"temperature":0.70' in rec.body


def test_body_is_byte_identical_when_model_is_not_rewritten(
    client: httpx.Client, up: FakeUpstream
) -> None:
    n = len(up.requests)
    body = (
        b'{ "model" : "fake-model",\n  "messages": [{"role":"user","content":"hi"}],'
        b'  "unheard_of": {"a": [1.0, 2e3]}, "stream": false }'
    )
    resp = client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert only_new(up, n).body == body


def test_stream_request_asks_upstream_for_usage_and_keeps_other_fields(
    client: httpx.Client, up: FakeUpstream
) -> None:
    n = len(up.requests)
    payload = chat("mapped", stream=True, logit_bias={"50256": -100}, x_custom=[1, "two"])
    with client.stream("POST", "/v1/chat/completions", json=payload) as resp:
        assert resp.status_code == 200
        resp.read()
    rec = only_new(up, n)
    assert rec.json["stream_options"] == {"include_usage": True}
    assert rec.json["logit_bias"] == {"50256": -100}
    assert rec.json["x_custom"] == [1, "two"]
    assert rec.json["model"] == "fake-model"


# --- request headers ------------------------------------------------------------------------


def test_upstream_headers_backend_credentials_extra_headers_and_request_id(
    client: httpx.Client, up: FakeUpstream
) -> None:
    n = len(up.requests)
    resp = client.post(
        "/v1/chat/completions",
        json=chat("mapped"),
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-api-key": CLIENT_KEY,
            "api-key": CLIENT_KEY,
            "cookie": "session=client-cookie-value",
            "x-request-id": "client-chosen-id-123",
            "x-client-trace": "kept",
        },
    )
    assert resp.status_code == 200, resp.text
    h = only_new(up, n).headers
    assert h.getall("authorization") == [f"Bearer {UPSTREAM_KEY}"]
    assert h["x-extra"] == "extra-value"
    assert h.getall("openai-organization") == ["org-configured"]
    assert h.getall("x-request-id") == ["client-chosen-id-123"]
    assert h["x-client-trace"] == "kept"
    assert "x-api-key" not in h
    assert "api-key" not in h
    assert "cookie" not in h
    assert CLIENT_KEY not in json.dumps(list(h.items()))
    assert resp.headers["x-request-id"] == "client-chosen-id-123"


def test_gateway_request_id_goes_upstream_when_client_sends_none(
    client: httpx.Client, up: FakeUpstream
) -> None:
    n = len(up.requests)
    resp = client.post("/v1/chat/completions", json=chat("mapped"))
    assert resp.status_code == 200
    rid = resp.headers["x-request-id"]
    assert rid
    assert only_new(up, n).headers.getall("x-request-id") == [rid]


def _raw_post(gw: Gateway, path: str, body: bytes, headers: list[tuple[str, str]]) -> int:
    """POST with exactly these headers (http.client sends what it is told)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.putrequest("POST", path, skip_host=False, skip_accept_encoding=True)
        for name, value in [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers,
        ]:
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_hop_by_hop_headers_are_not_forwarded(gw: Gateway, up: FakeUpstream) -> None:
    n = len(up.requests)
    code = _raw_post(
        gw,
        "/v1/chat/completions",
        json.dumps(chat("mapped")).encode(),
        [
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5, max=100"),
            ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("X-Ordinary", "forwarded"),
        ],
    )
    assert code == 200
    h = only_new(up, n).headers
    for name in ("keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer"):
        assert name not in h, f"hop-by-hop header {name!r} was forwarded"
    assert h.get("connection", "").lower() in ("", "keep-alive")
    assert h["x-ordinary"] == "forwarded"


def test_connection_nominated_headers_are_not_forwarded(gw: Gateway, up: FakeUpstream) -> None:
    n = len(up.requests)
    code = _raw_post(
        gw,
        "/v1/chat/completions",
        json.dumps(chat("mapped")).encode(),
        [("Connection", "keep-alive, X-Hop"), ("X-Hop", "only-for-the-next-hop")],
    )
    assert code == 200
    assert "x-hop" not in only_new(up, n).headers


# --- response headers -----------------------------------------------------------------------


def test_response_headers_name_backend_model_attempts_and_overhead(
    client: httpx.Client,
) -> None:
    resp = client.post("/v1/chat/completions", json=chat("mapped"))
    assert resp.status_code == 200
    h = resp.headers
    assert h["x-request-id"]
    assert h["x-proxy-backend"] == "fake"
    assert h["x-proxy-model"] == "fake-model"
    assert h["x-proxy-attempts"] == "1"
    assert float(h["x-proxy-overhead-ms"]) >= 0
    assert h["content-type"].startswith("application/json")
    assert resp.json()["choices"][0]["message"]["content"].startswith("Hello from fake-model")


def test_query_string_is_ignored_and_not_forwarded(client: httpx.Client, up: FakeUpstream) -> None:
    n = len(up.requests)
    resp = client.post("/v1/chat/completions?foo=1&api-version=x", json=chat("mapped"))
    assert resp.status_code == 200, resp.text
    rec = only_new(up, n)
    assert rec.path == "/v1/chat/completions"
    assert rec.query == {}


# --- streaming ------------------------------------------------------------------------------


def _content(event: Event) -> str:
    if event.data.startswith("[DONE]"):
        return ""
    choices = json.loads(event.data).get("choices") or []
    return "".join((c.get("delta") or {}).get("content") or "" for c in choices)


def test_stream_is_relayed_chunk_by_chunk_not_buffered(
    client: httpx.Client, up: TimedUpstream
) -> None:
    n = len(up.requests)
    up.script(slow_stream(interval=0.3, chunks=5))
    decoder = Decoder()
    events: list[Event] = []
    upstream_done_at_first_chunk: bool | None = None
    with client.stream("POST", "/v1/chat/completions", json=chat("mapped", stream=True)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-proxy-backend"] == "fake"
        assert resp.headers["x-proxy-model"] == "fake-model"
        for raw in resp.iter_raw():
            events.extend(decoder.feed(raw))
            if upstream_done_at_first_chunk is None and any(_content(e) for e in events):
                # the client holds content while the upstream still has chunks to send
                upstream_done_at_first_chunk = n in up.stream_done
    assert upstream_done_at_first_chunk is False
    assert n in up.stream_done
    assert "".join(_content(e) for e in events) == "w0 w1 w2 w3 w4"
    assert events[-1].data == "[DONE]"
    assert not any('"usage"' in e.data and '"choices":[]' in e.data for e in events)


# --- backend types and aliases --------------------------------------------------------------


def test_azure_backend_deployment_url_api_version_and_api_key(
    client: httpx.Client, up: FakeUpstream
) -> None:
    n = len(up.requests)
    resp = client.post(
        "/v1/chat/completions",
        json=chat("azm"),
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert resp.status_code == 200, resp.text
    rec = only_new(up, n)
    assert rec.path == "/openai/deployments/my-deploy/chat/completions"
    assert rec.query == {"api-version": "2024-06-01"}
    assert rec.headers.getall("api-key") == ["az-key-pt-77"]
    assert "authorization" not in rec.headers
    assert resp.headers["x-proxy-backend"] == "az"
    assert resp.headers["x-proxy-model"] == "my-deploy"
    assert resp.json()["model"] == "my-deploy"

    n = len(up.requests)
    emb = client.post("/v1/embeddings", json={"model": "azm", "input": "x"})
    assert emb.status_code == 200, emb.text
    assert only_new(up, n).path == "/openai/deployments/my-deploy/embeddings"


def test_glob_alias_passes_the_matched_text_as_the_model(
    client: httpx.Client, up: FakeUpstream, heavy: FakeUpstream
) -> None:
    n = len(up.requests)
    resp = client.post("/v1/chat/completions", json=chat("ollama/llama3.2:3b"))
    assert resp.status_code == 200, resp.text
    assert only_new(up, n).json["model"] == "llama3.2:3b"
    assert resp.headers["x-proxy-model"] == "llama3.2:3b"

    m = len(heavy.requests)  # an exact alias wins over the glob
    resp = client.post("/v1/chat/completions", json=chat("ollama/pinned"))
    assert resp.status_code == 200
    assert only_new(heavy, m).json["model"] == "pinned-exact"

    listed = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert "ollama/pinned" in listed
    assert not any("*" in alias for alias in listed)
    one = client.get("/v1/models/ollama/pinned")
    assert one.status_code == 200, one.text
    assert one.json()["id"] == "ollama/pinned"


def test_weighted_targets_share_traffic_roughly_by_weight(
    client: httpx.Client, heavy: FakeUpstream, light: FakeUpstream
) -> None:
    h0, l0 = len(heavy.requests), len(light.requests)
    total = 80
    for _ in range(total):
        resp = client.post("/v1/chat/completions", json=chat("weighted"))
        assert resp.status_code == 200
    to_heavy, to_light = len(heavy.requests) - h0, len(light.requests) - l0
    assert to_heavy + to_light == total
    # weight 3:1 expects 60:20; generous bounds (about 4 standard deviations)
    assert 44 <= to_heavy <= 74, (to_heavy, to_light)
    assert to_light >= 6


def test_priority_tiers_lower_first_higher_only_on_failure(
    client: httpx.Client, heavy: FakeUpstream, light: FakeUpstream
) -> None:
    h0, l0 = len(heavy.requests), len(light.requests)
    for _ in range(8):
        resp = client.post("/v1/chat/completions", json=chat("tiered"))
        assert resp.status_code == 200
        assert resp.headers["x-proxy-model"] == "first"
    assert len(heavy.requests) - h0 == 8
    assert len(light.requests) == l0

    heavy.script(status(503))
    resp = client.post("/v1/chat/completions", json=chat("tiered"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-proxy-backend"] == "light"
    assert resp.headers["x-proxy-model"] == "second"
    assert resp.headers["x-proxy-attempts"] == "2"
    assert light.requests[-1].json["model"] == "second"


def test_upstream_answer_passes_through_unchanged(client: httpx.Client, up: FakeUpstream) -> None:
    up.script(ok(text="exact words", usage=(3, 2)))
    resp = client.post("/v1/chat/completions", json=chat("fake-model"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["choices"][0]["message"]["content"] == "exact words"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert body["id"].startswith("chatcmpl-fake-")


# --- the shipped routes.yaml and its demo mock ----------------------------------------------

# A developer's own keys must not switch on real backends (no network in tests).
_NO_KEYS = {
    "OPENAI_API_KEY": "",
    "ANTHROPIC_API_KEY": "",
    "GEMINI_API_KEY": "",
    "LLM_PROXY_ADMIN_KEY": "",
    "OLLAMA_URL": "http://127.0.0.1:9/v1",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        serve(REPO / "routes.yaml", tmp_path_factory.mktemp("demo"), env=_NO_KEYS) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10, trust_env=False) as c,
    ):
        yield c


def test_demo_chat(demo: httpx.Client) -> None:
    resp = demo.post("/v1/chat/completions", json=chat("demo"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] > 0
    assert resp.headers["x-proxy-backend"] == "demo"
    again = demo.post("/v1/chat/completions", json=chat("demo")).json()
    assert again["choices"][0]["message"]["content"] == body["choices"][0]["message"]["content"]


def test_demo_stream_matches_the_plain_answer(demo: httpx.Client) -> None:
    plain = demo.post("/v1/chat/completions", json=chat("demo")).json()
    decoder = Decoder()
    events: list[Event] = []
    with demo.stream("POST", "/v1/chat/completions", json=chat("demo", stream=True)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for raw in resp.iter_raw():
            events.extend(decoder.feed(raw))
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any(c.get("usage") for c in chunks)  # the gateway's own usage ask is stripped
    text = "".join(_content(e) for e in events)
    assert text == plain["choices"][0]["message"]["content"]


def test_demo_completions(demo: httpx.Client) -> None:
    resp = demo.post("/v1/completions", json={"model": "demo", "prompt": "Say hi"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"]
    assert body["choices"][0]["finish_reason"] == "stop"


def test_demo_embeddings(demo: httpx.Client) -> None:
    resp = demo.post("/v1/embeddings", json={"model": "demo", "input": ["a", "b"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(isinstance(x, float) for x in body["data"][0]["embedding"])
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]


def test_demo_models_list_only_enabled_aliases(demo: httpx.Client) -> None:
    ids = [m["id"] for m in demo.get("/v1/models").json()["data"]]
    assert "demo" in ids
    assert "gpt-4o-mini" not in ids  # its backend's key is empty: disabled
    assert not any("*" in i for i in ids)


def test_an_upstreams_cookie_is_never_sent_back(client: httpx.Client, up: FakeUpstream) -> None:
    """A shared gateway must not keep what one answer set and hand it to the next client's
    request: the upstream's `Set-Cookie` goes nowhere, and no request carries a cookie. (The
    backend is named by host name: a cookie jar ignores cookies from IP addresses.)"""
    up.script(ok(headers={"set-cookie": "sticky=client-a-session; Path=/"}))
    n = len(up.requests)
    first = client.post("/v1/chat/completions", json=chat("by-name"))
    second = client.post("/v1/chat/completions", json=chat("by-name"))
    assert first.status_code == second.status_code == 200
    assert "set-cookie" not in first.headers
    sent = up.requests[n:]
    assert len(sent) == 2
    assert all("cookie" not in r.headers for r in sent)
