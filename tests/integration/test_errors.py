"""Every gateway error in the front door's shape, with the right status.

OpenAI shape everywhere (`{"error": {message, type, param, code}}`, all four keys), Anthropic
shape on `/v1/messages`; upstream client errors pass through as the upstream sent them.
"""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RoutesFile, serve
from tests.upstreams import FakeUpstream, refused_url, status

pytestmark = pytest.mark.timeout(30)

HELLO = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def spare() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream, spare: FakeUpstream
) -> Iterator[httpx.Client]:
    directory = tmp_path_factory.mktemp("errors")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          max_body: 1KiB
          failure_threshold: 1
          cooldown: 600s
        backends:
          demo: {{type: mock}}
          fake: {{type: openai, base_url: "{up.url}"}}
          spare: {{type: openai, base_url: "{spare.url}"}}
          dead: {{type: openai, base_url: "{refused_url()}"}}
          tripped: {{type: openai, base_url: "{refused_url()}"}}
          dead-too: {{type: openai, base_url: "{refused_url()}"}}
          keyless:
            type: openai
            base_url: {up.url}
            api_key: ${{ERRORS_TEST_UNSET_KEY:-}}
        models:
          demo:
            targets: [{{backend: demo}}]
          fake:
            targets:
              - {{backend: fake, model: fake-model}}
              - {{backend: spare, model: fake-model, priority: 1}}
          dead:
            targets: [{{backend: dead}}]
          tripped:
            targets: [{{backend: tripped}}]
          keyless:
            targets: [{{backend: keyless}}]
          dead-too:
            targets: [{{backend: dead-too}}]
        """
    )
    with (
        serve(config, directory) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10, trust_env=False) as c,
    ):
        yield c


def openai_error(resp: httpx.Response, status_code: int) -> dict[str, Any]:
    """The error object, after checking the envelope: all four keys, JSON, a request id."""
    assert resp.status_code == status_code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-request-id"), "every response carries x-request-id"
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    return err  # type: ignore[no-any-return]


def anthropic_error(resp: httpx.Response, status_code: int) -> dict[str, Any]:
    assert resp.status_code == status_code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("request-id")
    body = resp.json()
    assert body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def post(
    client: httpx.Client, body: bytes | dict[str, Any], path: str = "/v1/chat/completions"
) -> httpx.Response:
    if isinstance(body, dict):
        return client.post(path, json=body)
    return client.post(path, content=body, headers=JSON)


# --- malformed requests ---------------------------------------------------------------------


def test_malformed_json_says_where(client: httpx.Client) -> None:
    err = openai_error(post(client, b'{"model": "demo", "messages": [}'), 400)
    assert err["type"] == "invalid_request_error"
    assert "JSON" in err["message"]
    assert re.search(r"byte \d+|line \d+|column \d+|position \d+", err["message"]), err


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"[1, 2]", b'"just a string"', b"null"],
    ids=["empty", "blank", "array", "string", "null"],
)
def test_body_that_is_not_an_object(client: httpx.Client, body: bytes) -> None:
    err = openai_error(post(client, body), 400)
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": 42, "messages": HELLO}, "model"),
        ({"model": None, "messages": HELLO}, "model"),
        ({"model": "demo"}, "messages"),
        ({"model": "demo", "messages": "hi"}, "messages"),
        ({"model": "demo", "messages": {"role": "user"}}, "messages"),
        ({"model": "demo", "messages": HELLO, "stream": "yes"}, "stream"),
    ],
    ids=[
        "model-missing", "model-int", "model-null", "messages-missing", "messages-string",
        "messages-object", "stream-string",
    ],
)  # fmt: skip
def test_missing_or_wrong_typed_fields_name_the_param(
    client: httpx.Client, body: dict[str, Any], param: str
) -> None:
    err = openai_error(post(client, body), 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert param in err["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"model": "demo"}, "prompt"),
        ("/v1/embeddings", {"model": "demo"}, "input"),
        ("/v1/embeddings", {"model": "demo", "input": "x", "stream": True}, "stream"),
    ],
    ids=["completions-prompt", "embeddings-input", "embeddings-stream"],
)
def test_other_endpoints_name_the_param(
    client: httpx.Client, path: str, body: dict[str, Any], param: str
) -> None:
    err = openai_error(post(client, body, path), 400)
    assert err["param"] == param


def test_unknown_model_is_404_and_lists_known_aliases(client: httpx.Client) -> None:
    err = openai_error(post(client, {"model": "gpt-nope", "messages": HELLO}), 404)
    assert err["code"] == "model_not_found"
    assert err["type"] == "not_found_error"
    assert err["param"] == "model"
    assert "gpt-nope" in err["message"]
    assert "demo" in err["message"]
    assert "fake" in err["message"]


def test_body_over_max_body_is_413(client: httpx.Client) -> None:
    big = {"model": "demo", "messages": [{"role": "user", "content": "x" * 2048}]}
    err = openai_error(post(client, big), 413)
    assert err["code"] == "request_too_large"
    assert "1024" in err["message"]


def test_chunked_body_over_max_body_is_413(client: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"model": "demo", "messages": [{"role": "user", "content": "'
        for _ in range(8):
            yield b"x" * 256
        yield b'"}]}'

    resp = client.post("/v1/chat/completions", content=pieces(), headers=JSON)
    assert "content-length" not in resp.request.headers
    err = openai_error(resp, 413)
    assert err["code"] == "request_too_large"


def test_body_just_under_max_body_is_served(client: httpx.Client) -> None:
    body = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
    body = body.replace(b'"hi"', b'"' + b"x" * (1024 - len(body) + 2) + b'"')
    assert len(body) == 1024
    assert post(client, body).status_code == 200


# --- upstream failures ----------------------------------------------------------------------


def test_upstream_unreachable_is_502(client: httpx.Client) -> None:
    resp = post(client, {"model": "dead", "messages": HELLO})
    err = openai_error(resp, 502)
    assert err["code"] == "upstream_failed"
    assert resp.headers["x-proxy-attempts"] == "1"


def test_every_target_circuit_open_is_503_with_retry_after(client: httpx.Client) -> None:
    openai_error(post(client, {"model": "tripped", "messages": HELLO}), 502)  # threshold 1
    resp = post(client, {"model": "tripped", "messages": HELLO})
    err = openai_error(resp, 503)
    assert err["code"] == "no_available_target"
    assert resp.headers["retry-after"].isdigit()
    assert int(resp.headers["retry-after"]) >= 1


def test_model_whose_backends_are_all_disabled_is_503(client: httpx.Client) -> None:
    resp = post(client, {"model": "keyless", "messages": HELLO})
    err = openai_error(resp, 503)
    assert "api_key" in err["message"]
    assert resp.headers["retry-after"].isdigit()


@pytest.mark.parametrize("code", [400, 413, 422])
def test_upstream_client_error_passes_through_as_sent(
    client: httpx.Client, up: FakeUpstream, spare: FakeUpstream, code: int
) -> None:
    raw = (
        b'{"error": {"message": "upstream says no (%d)", "type": "invalid_request_error", '
        b'"param": "temperature", "code": "upstream_specific"}}' % code
    )
    up.script(status(code, body=raw))
    n, m = len(up.requests), len(spare.requests)
    resp = post(client, {"model": "fake", "messages": HELLO, "temperature": 9})
    assert resp.status_code == code
    assert resp.content == raw
    assert resp.headers["x-proxy-backend"] == "fake"
    assert resp.headers.get("x-request-id")
    assert len(up.requests) == n + 1
    assert len(spare.requests) == m  # a client error is not a reason to fail over


def test_upstream_non_json_client_error_passes_through(
    client: httpx.Client, up: FakeUpstream
) -> None:
    up.script(status(400, body="plain text complaint"))
    resp = post(client, {"model": "fake", "messages": HELLO})
    assert resp.status_code == 400
    assert resp.text == "plain text complaint"


def test_upstream_failover_status_moves_to_the_next_tier(
    client: httpx.Client, up: FakeUpstream, spare: FakeUpstream
) -> None:
    up.script(status(500))
    m = len(spare.requests)
    resp = post(client, {"model": "fake", "messages": HELLO})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-proxy-backend"] == "spare"
    assert resp.headers["x-proxy-attempts"] == "2"
    assert len(spare.requests) == m + 1


# --- Anthropic shape on /v1/messages --------------------------------------------------------


def test_messages_malformed_json_is_anthropic_shaped(client: httpx.Client) -> None:
    err = anthropic_error(post(client, b'{"model": "demo", ', "/v1/messages"), 400)
    assert err["type"] == "invalid_request_error"


def test_messages_missing_max_tokens(client: httpx.Client) -> None:
    body = {"model": "demo", "messages": HELLO}
    err = anthropic_error(post(client, body, "/v1/messages"), 400)
    assert err["type"] == "invalid_request_error"
    assert "max_tokens" in err["message"]


def test_messages_unknown_model(client: httpx.Client) -> None:
    body = {"model": "claude-nope", "max_tokens": 5, "messages": HELLO}
    resp = post(client, body, "/v1/messages?beta=true")
    err = anthropic_error(resp, 404)
    assert err["type"] == "not_found_error"
    assert "claude-nope" in err["message"]
    assert resp.json().get("request_id") == resp.headers["request-id"]


def test_messages_body_too_large(client: httpx.Client) -> None:
    body = {"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 2048}]}
    err = anthropic_error(post(client, body, "/v1/messages"), 413)
    assert err["type"] == "request_too_large"


def test_messages_upstream_unreachable(client: httpx.Client) -> None:
    body = {"model": "dead-too", "max_tokens": 5, "messages": HELLO}
    err = anthropic_error(post(client, body, "/v1/messages"), 502)
    assert err["type"] == "api_error"
    err = anthropic_error(post(client, body, "/v1/messages"), 503)  # circuit open now
    assert err["type"] == "overloaded_error"


# --- wrong method, unknown path -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"]
)
def test_get_on_a_post_endpoint_is_405(client: httpx.Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 405
    assert resp.headers.get("allow") == "POST"
    if path == "/v1/messages":
        anthropic_error(resp, 405)
    else:
        openai_error(resp, 405)


def _litestar_error(resp: httpx.Response, status_code: int) -> dict[str, Any]:
    """openai_error() minus the x-request-id check (checked on its own below)."""
    assert resp.status_code == status_code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/chat/completion"])
def test_unknown_path_is_404_json(client: httpx.Client, path: str) -> None:
    err = _litestar_error(client.post(path, json={"model": "demo"}), 404)
    assert path in err["message"]
    assert err["type"] == "not_found_error"


def test_wrong_method_on_a_litestar_route_is_405_json(client: httpx.Client) -> None:
    _litestar_error(client.post("/health"), 405)


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/health")])
def test_router_errors_carry_a_request_id(client: httpx.Client, method: str, path: str) -> None:
    resp = client.request(method, path, headers={"x-request-id": "rid-router-error"})
    assert resp.status_code in (404, 405)
    assert resp.headers.get("x-request-id") == "rid-router-error"
