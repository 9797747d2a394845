"""The official `openai` SDK against a running gateway: what real clients parse and raise.

One gateway (module scope) serves the built-in `demo` mock and a scriptable FakeUpstream.
SDK clients get `max_retries=0` and a short timeout, so their retries never hide ours.
"""

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok, refused_url, status

pytestmark = pytest.mark.timeout(30)

HELLO: Any = [{"role": "user", "content": "hello there gateway"}]
WEATHER = ("get_weather", '{"city": "Paris", "unit": "celsius", "days": [1, 2]}')
CLOCK = ("get_time", '{"tz": "Europe/Paris"}')


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=("fake-model",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("sdk")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          failure_threshold: 1
          cooldown: 600s
          max_body: 4KiB
        backends:
          demo: {{type: mock}}
          fake: {{type: openai, base_url: "{up.url}", api_key: sk-fake-upstream}}
          dead: {{type: openai, base_url: "{refused_url()}"}}
          tripped: {{type: openai, base_url: "{refused_url()}"}}
        models:
          demo:
            targets: [{{backend: demo}}]
          fake:
            targets: [{{backend: fake, model: fake-model}}]
          dead:
            targets: [{{backend: dead}}]
          tripped:
            targets: [{{backend: tripped}}]
          tools:  # own target key: a tool-call failure opens no other test's circuit
            targets: [{{backend: fake, model: tools-model}}]
          "glob/*":
            targets: [{{backend: fake, model: "*"}}]
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[openai.OpenAI]:
    http_client = httpx.Client(trust_env=False, timeout=10)
    sdk = openai.OpenAI(
        base_url=f"{gw.url}/v1",
        api_key="sk-client-unused",
        max_retries=0,
        timeout=10,
        http_client=http_client,
    )
    try:
        yield sdk
    finally:
        sdk.close()


MODELS = ("demo", "fake")


# --- chat -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_chat(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-proxy-backend"] == model
    assert raw.request_id == raw.headers["x-request-id"]


@pytest.mark.parametrize("model", MODELS)
def test_stream_text_equals_the_plain_answer(client: openai.OpenAI, model: str) -> None:
    plain = client.chat.completions.create(model=model, messages=HELLO)
    chunks = list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    assert chunks, "no chunks"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]


@pytest.mark.parametrize("model", MODELS)
def test_include_usage_gives_exactly_one_usage_chunk_at_the_end(
    client: openai.OpenAI, model: str
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    with_usage = [i for i, c in enumerate(chunks) if c.usage is not None]
    assert with_usage == [len(chunks) - 1]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0
    assert all(c.choices for c in chunks[:-1])


@pytest.mark.parametrize("model", MODELS)
def test_no_usage_chunk_unless_asked(client: openai.OpenAI, model: str, up: FakeUpstream) -> None:
    n = len(up.requests)
    chunks = list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    if model == "fake":  # the gateway asked the upstream for usage on the client's behalf
        sent = up.requests[n:]
        assert len(sent) == 1
        assert sent[0].json["stream_options"] == {"include_usage": True}


def test_include_usage_false_gets_no_usage_chunk(client: openai.OpenAI, up: FakeUpstream) -> None:
    n = len(up.requests)
    chunks = list(
        client.chat.completions.create(
            model="fake", messages=HELLO, stream=True, stream_options={"include_usage": False}
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)
    assert up.requests[n].json["stream_options"] == {"include_usage": True}


def test_non_stream_tool_calls(client: openai.OpenAI, up: FakeUpstream) -> None:
    up.script(ok(tool_calls=[WEATHER, CLOCK]))
    completion = client.chat.completions.create(model="tools", messages=HELLO)
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (WEATHER[0], json.loads(WEATHER[1])),
        (CLOCK[0], json.loads(CLOCK[1])),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_streamed_tool_calls_reassemble(client: openai.OpenAI, up: FakeUpstream) -> None:
    up.script(ok(tool_calls=[WEATHER, CLOCK]))
    calls: dict[int, dict[str, str]] = {}
    finish = None
    stream = client.chat.completions.create(model="tools", messages=HELLO, stream=True)
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or ():
                entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += tc.id or ""
                entry["name"] += (tc.function.name or "") if tc.function else ""
                entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    n = len(up.requests) - 1
    assert calls[0]["id"] == f"call_{n}_0"
    assert calls[1]["id"] == f"call_{n}_1"
    assert calls[0]["name"] == WEATHER[0]
    assert calls[1]["name"] == CLOCK[0]
    assert json.loads(calls[0]["arguments"]) == json.loads(WEATHER[1])
    assert json.loads(calls[1]["arguments"]) == json.loads(CLOCK[1])


# --- embeddings, completions, models ---------------------------------------------------------


def _fake_vector(item: object, dims: int = 8) -> list[float]:
    """The FakeUpstream's deterministic embedding (see tests/upstreams/wires.py `_embedding`)."""
    digest = b""
    seed = repr(item).encode()
    while len(digest) < dims:
        seed = hashlib.sha256(seed).digest()
        digest += seed
    return [(byte - 128) / 128 for byte in digest[:dims]]


def test_embeddings_base64_by_default(client: openai.OpenAI, up: FakeUpstream) -> None:
    n = len(up.requests)
    result = client.embeddings.create(model="fake", input=["alpha", "beta"])
    assert up.requests[n].json["encoding_format"] == "base64"  # the SDK's default
    assert [d.embedding for d in result.data] == [_fake_vector("alpha"), _fake_vector("beta")]
    assert result.usage.total_tokens > 0


def test_embeddings_float(client: openai.OpenAI, up: FakeUpstream) -> None:
    n = len(up.requests)
    result = client.embeddings.create(model="fake", input="alpha", encoding_format="float")
    assert up.requests[n].json["encoding_format"] == "float"
    assert result.data[0].embedding == _fake_vector("alpha")


def test_demo_embeddings_both_encodings_agree(client: openai.OpenAI) -> None:
    as_base64 = client.embeddings.create(model="demo", input=["one", "two"])
    as_float = client.embeddings.create(model="demo", input=["one", "two"], encoding_format="float")
    assert [d.embedding for d in as_base64.data] == [d.embedding for d in as_float.data]
    assert len(as_float.data[0].embedding) > 0
    raw = client.embeddings.with_raw_response.create(
        model="demo", input="one", encoding_format="base64"
    )
    packed = base64.b64decode(json.loads(raw.text)["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == as_float.data[0].embedding


@pytest.mark.parametrize("model", MODELS)
def test_completions(client: openai.OpenAI, model: str) -> None:
    completion = client.completions.create(model=model, prompt="Say something", max_tokens=16)
    assert completion.object == "text_completion"
    assert completion.choices[0].text
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", MODELS)
def test_completions_stream(client: openai.OpenAI, model: str) -> None:
    plain = client.completions.create(model=model, prompt="Stream me")
    chunks = list(client.completions.create(model=model, prompt="Stream me", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert all(c.usage is None and c.choices for c in chunks)
    asked = list(
        client.completions.create(
            model=model, prompt="Stream me", stream=True, stream_options={"include_usage": True}
        )
    )
    assert [i for i, c in enumerate(asked) if c.usage is not None] == [len(asked) - 1]
    assert asked[-1].choices == []


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"demo", "fake", "dead", "tripped"} <= set(ids)
    assert not any("*" in i for i in ids)
    model = client.models.retrieve("fake")
    assert model.id == "fake"
    assert model.object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


# --- errors land in the right SDK exception class ---------------------------------------------


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-nope", messages=HELLO)
    err = info.value
    assert err.status_code == 404
    assert err.code == "model_not_found"
    assert err.param == "model"
    assert "demo" in err.message
    assert err.request_id


def test_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", messages="not a list")  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert info.value.param == "messages"
    assert info.value.type == "invalid_request_error"


def test_body_too_large_is_a_plain_status_error_413(client: openai.OpenAI) -> None:
    big = [{"role": "user", "content": "x" * 8192}]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="demo", messages=big)  # type: ignore[arg-type]
    assert type(info.value) is openai.APIStatusError
    assert info.value.status_code == 413


def test_upstream_422_passes_through(client: openai.OpenAI, up: FakeUpstream) -> None:
    body = {
        "error": {
            "message": "Unprocessable: 'n' must be 1",
            "type": "invalid_request_error",
            "param": "n",
            "code": "invalid_value",
        }
    }
    up.script(status(422, body=body))
    n = len(up.requests)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="fake", messages=HELLO, n=2)
    assert info.value.status_code == 422
    assert info.value.body == body["error"]
    assert info.value.code == "invalid_value"
    assert len(up.requests) == n + 1  # no failover on a client error


def test_upstream_unreachable_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="dead", messages=HELLO)
    assert info.value.status_code == 502
    assert info.value.response.headers.get("x-should-retry") == "false"


def test_every_target_circuit_open_is_503_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as first:  # opens the circuit (threshold 1)
        client.chat.completions.create(model="tripped", messages=HELLO)
    assert first.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="tripped", messages=HELLO)
    assert info.value.status_code == 503
    retry_after = info.value.response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert info.value.code == "no_available_target"
