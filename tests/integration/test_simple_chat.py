"""POST /chat over real HTTP (mock backend and a fake OpenAI upstream), streamed and not;
direct addressing allowed and refused by a key; the default model; x-internal-auth."""

import json
from collections.abc import Iterator

import httpx
import pytest

from proxy.sse import Decoder
from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream

pytestmark = pytest.mark.timeout(60)

ALL_KEY = "chat-all-key-5d1e"
LIMITED_KEY = "chat-limited-key-90af"
ALL = {"x-internal-auth": ALL_KEY}
LIMITED = {"authorization": f"Bearer {LIMITED_KEY}"}


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=("fake-model", "gpt-x", "gpt-4.1")) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("simple-chat")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          direct_addressing: true
          default_model: demo
          key_headers: [authorization, x-api-key, x-internal-auth]
        backends:
          demo: {{type: mock}}
          openai: {{type: openai, base_url: "{up.url}", api_key: sk-upstream}}
        models:
          demo: {{targets: [{{backend: demo}}]}}
          gpt-4o-mini: {{targets: [{{backend: openai, model: fake-model}}]}}
        keys:
          - {{name: all, key: {ALL_KEY}}}
          - {{name: limited, key: {LIMITED_KEY}, models: [demo, "openai:*"]}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=20, trust_env=False) as c:
        yield c


def _events(text: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.event, json.loads(e.data)) for e in Decoder().feed(text.encode())]


def test_chat_answers_with_the_text(client: httpx.Client, up: FakeUpstream) -> None:
    before = len(up.requests)
    resp = client.post(
        "/chat",
        json={"model": "gpt-4o-mini", "prompt": "Hello", "system": "Be brief"},
        headers={**ALL, "x-request-id": "chat-rid-1"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"text", "model", "backend", "usage", "request_id"}
    assert body["text"].startswith("Hello from fake-model.")
    assert (body["backend"], body["model"], body["request_id"]) == (
        "openai", "fake-model", "chat-rid-1",
    )  # fmt: skip
    assert body["usage"]["total_tokens"] > 0
    assert resp.headers["x-request-id"] == "chat-rid-1"
    assert resp.headers["x-proxy-backend"] == "openai"
    sent = up.requests[before].json
    assert sent["model"] == "fake-model"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hello"},
    ]
    assert "sk-upstream" not in resp.text and ALL_KEY not in up.requests[before].body.decode()


def test_the_request_id_is_one_and_the_same(client: httpx.Client) -> None:
    resp = client.post("/chat", json={"prompt": "hi"}, headers=ALL)
    assert resp.status_code == 200
    assert resp.headers.get_list("x-request-id") == [resp.json()["request_id"]]


def test_chat_streams_deltas_and_a_summary(client: httpx.Client) -> None:
    plain = client.post("/chat", json={"model": "gpt-4o-mini", "prompt": "Hi"}, headers=ALL)
    with client.stream(
        "POST", "/chat", json={"model": "gpt-4o-mini", "prompt": "Hi", "stream": True}, headers=ALL
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = resp.read().decode()
    *deltas, (kind, summary) = _events(text)
    assert kind == ""
    assert "".join(str(d["text"]) for _, d in deltas) == plain.json()["text"]
    assert summary["done"] is True and summary["backend"] == "openai"
    assert summary["usage"] == plain.json()["usage"]  # include_usage was asked upstream


def test_chat_streams_from_the_mock_backend(client: httpx.Client) -> None:
    with client.stream("POST", "/chat", json={"prompt": "hi", "stream": True}, headers=ALL) as r:
        assert r.status_code == 200
        events = _events(r.read().decode())
    assert len(events) >= 2 and events[-1][1]["done"] is True
    assert events[-1][1]["backend"] == "demo"  # the default model


def test_default_model_and_messages(client: httpx.Client) -> None:
    resp = client.post(
        "/chat", json={"model": "", "messages": [{"role": "user", "content": "x"}]}, headers=ALL
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["backend"] == "demo"


def test_provider_addresses_a_backend_directly(client: httpx.Client, up: FakeUpstream) -> None:
    before = len(up.requests)
    resp = client.post(
        "/chat", json={"provider": "openai", "model": "gpt-x", "prompt": "hi"}, headers=LIMITED
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "gpt-x"
    assert up.requests[before].json["model"] == "gpt-x"


def test_direct_addressing_on_the_openai_door(client: httpx.Client, up: FakeUpstream) -> None:
    before = len(up.requests)
    body = {"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    resp = client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {ALL_KEY}"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-proxy-model"] == "gpt-4.1"
    assert up.requests[before].json["model"] == "gpt-4.1"
    refused = client.post("/v1/chat/completions", json=body, headers=LIMITED)
    assert refused.status_code == 403  # its globs allow openai:*, not openai/*
    assert len(up.requests) == before + 1


def test_errors_keep_the_openai_shape(client: httpx.Client) -> None:
    unknown = client.post("/chat", json={"model": "nope", "prompt": "hi"}, headers=ALL)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    nokey = client.post("/chat", json={"prompt": "hi"})
    assert nokey.status_code == 401
    assert "x-internal-auth" in nokey.json()["error"]["message"]
    bad = client.post("/chat", json={"model": "demo"}, headers=ALL)
    assert bad.status_code == 400
    assert client.get("/chat", headers=ALL).status_code == 405


def test_default_model_and_internal_auth_on_the_openai_door(client: httpx.Client) -> None:
    hello = [{"role": "user", "content": "hi"}]
    for body in ({"messages": hello}, {"model": "", "messages": hello}):
        resp = client.post("/v1/chat/completions", json=body, headers=ALL)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-proxy-backend"] == "demo"
    anthropic = {"max_tokens": 16, "messages": hello}
    resp = client.post("/v1/messages", json=anthropic, headers={"x-api-key": ALL_KEY})
    assert resp.status_code == 200, resp.text
    assert resp.json()["type"] == "message"


def test_chat_takes_json_only(client: httpx.Client, up: FakeUpstream) -> None:
    before = len(up.requests)
    body = b'{"model": "gpt-4o-mini", "prompt": "hi"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        resp = client.post("/chat", content=body, headers={**ALL, "content-type": content_type})
        assert resp.status_code == 415, resp.text
    assert len(up.requests) == before  # a cross-site form post spends nothing
