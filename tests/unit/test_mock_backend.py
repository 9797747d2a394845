"""proxy.providers.mock: the in-process OpenAI-compatible backend, through its transport."""

import asyncio
import base64
import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import Backend, parse
from proxy.providers.base import Endpoint, Unsupported
from proxy.providers.mock import MockAdapter, MockResponse, MockTransport
from proxy.sse import Decoder, Event


def backend(knobs: str = "") -> Backend:
    text = f"""\
version: 1
backends:
  demo:
    type: mock
{knobs}
models:
  demo:
    targets: [{{backend: demo}}]
"""
    return parse(text, {}).backend("demo")


DEFAULT = backend()


async def call(
    endpoint: Endpoint, body: dict[str, Any] | bytes, b: Backend = DEFAULT
) -> tuple[MockResponse, list[bytes]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = MockAdapter(b).build(endpoint, raw, "demo", stream=False)
    response = await MockTransport(b).send(request)
    chunks = []
    while chunk := await response.read_chunk():
        chunks.append(chunk)
    return response, chunks


async def complete(endpoint: Endpoint, body: dict[str, Any], b: Backend = DEFAULT) -> Any:
    response, chunks = await call(endpoint, body, b)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert len(chunks) == 1
    return json.loads(chunks[0])


async def stream(endpoint: Endpoint, body: dict[str, Any], b: Backend = DEFAULT) -> list[Event]:
    response, chunks = await call(endpoint, {**body, "stream": True}, b)
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    d = Decoder()
    events = [e for c in chunks for e in d.feed(c)]
    assert not d.pending
    # Every chunk the transport yields is whole frames: the relay may forward them as they come.
    assert all(c.endswith(b"\n\n") for c in chunks)
    return events


def hello(text: str = "hello there") -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": text}]}


# --- chat, not streaming --------------------------------------------------------------------


async def test_chat_completion_shape() -> None:
    out = await complete("chat", hello())
    assert out["object"] == "chat.completion"
    assert out["id"].startswith("chatcmpl-")
    assert out["model"] == "demo"
    assert isinstance(out["created"], int)
    (choice,) = out["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    words = choice["message"]["content"].split(" ")
    assert len(words) == DEFAULT.tokens == 16
    assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 16, "total_tokens": 18}


async def test_same_prompt_same_answer() -> None:
    first = await complete("chat", hello("what is a gateway?"))
    again = await complete("chat", hello("what is a gateway?"))
    assert first["choices"] == again["choices"]
    assert first["id"] == again["id"]
    other = await complete("chat", hello("something else entirely"))
    assert other["id"] != first["id"]


async def test_prompt_is_every_message_text_including_parts() -> None:
    as_parts = {
        "model": "demo",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
        ],
    }
    as_string = {
        "model": "demo",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi "}],
    }
    a = await complete("chat", as_parts)
    b = await complete("chat", as_string)
    assert a["choices"] == b["choices"]
    assert a["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize("tokens", [1, 3, 40])
async def test_tokens_knob_sets_the_reply_length(tokens: int) -> None:
    b = backend(f"    tokens: {tokens}")
    out = await complete("chat", hello(), b)
    assert len(out["choices"][0]["message"]["content"].split(" ")) == tokens
    assert out["usage"]["completion_tokens"] == tokens


# --- chat, streaming ------------------------------------------------------------------------


async def test_chat_stream_is_valid_chunks_ending_in_done() -> None:
    events = await stream("chat", hello())
    assert events[-1] == Event("[DONE]")
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert all(e.event == "" for e in events)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["model"] == "demo" for c in chunks)
    assert all(len(c["choices"]) == 1 and c["choices"][0]["index"] == 0 for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + [
        "stop"
    ]
    assert all("usage" not in c for c in chunks)


async def test_streamed_text_equals_the_non_streamed_text() -> None:
    whole = await complete("chat", hello("same either way"))
    events = await stream("chat", hello("same either way"))
    deltas = [json.loads(e.data)["choices"][0]["delta"] for e in events[:-1]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == whole["choices"][0]["message"]["content"]
    assert json.loads(events[0].data)["id"] == whole["id"]


@pytest.mark.parametrize(("chunks", "content_frames"), [(0, 16), (1, 1), (4, 4), (99, 16)])
async def test_chunks_knob_sets_the_number_of_content_frames(
    chunks: int, content_frames: int
) -> None:
    b = backend(f"    chunks: {chunks}")
    events = await stream("chat", hello(), b)
    deltas = [json.loads(e.data)["choices"][0]["delta"] for e in events[:-1]]
    assert sum(1 for d in deltas if d.get("content")) == content_frames


async def test_usage_chunk_only_when_asked() -> None:
    asked = await stream("chat", {**hello(), "stream_options": {"include_usage": True}})
    assert asked[-1] == Event("[DONE]")
    usage_chunk = json.loads(asked[-2].data)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 16,
        "total_tokens": 18,
    }
    # WIRE.md 8.7: with include_usage, every earlier chunk says `usage: null`.
    assert all(json.loads(e.data)["usage"] is None for e in asked[:-2])

    for options in ({"include_usage": False}, {}, None):
        body = {**hello(), "stream_options": options} if options is not None else hello()
        events = await stream("chat", body)
        assert all("usage" not in json.loads(e.data) for e in events[:-1])
        assert len(events) == len(asked) - 1


async def test_stream_bytes_split_anywhere_decode_the_same() -> None:
    response, chunks = await call("chat", {**hello(), "stream": True})
    assert response.status == 200
    raw = b"".join(chunks)
    whole = Decoder().feed(raw)
    d = Decoder()
    assert [e for i in range(0, len(raw), 7) for e in d.feed(raw[i : i + 7])] == whole


# --- legacy completions ---------------------------------------------------------------------


async def test_legacy_completion_shape() -> None:
    out = await complete("completions", {"model": "demo", "prompt": "once upon a time"})
    assert out["object"] == "text_completion"
    assert out["id"].startswith("cmpl-")
    (choice,) = out["choices"]
    assert set(choice) == {"index", "text", "finish_reason", "logprobs"}
    assert choice["finish_reason"] == "stop"
    assert len(choice["text"].split(" ")) == 16
    assert out["usage"]["prompt_tokens"] == 4


async def test_legacy_completion_stream() -> None:
    body = {"model": "demo", "prompt": "once upon a time"}
    whole = await complete("completions", body)
    events = await stream("completions", body)
    assert events[-1] == Event("[DONE]")
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# --- embeddings -----------------------------------------------------------------------------


async def test_embeddings_as_floats() -> None:
    out = await complete("embeddings", {"model": "demo", "input": ["a cat", "a dog", "a cat"]})
    assert out["object"] == "list"
    assert out["model"] == "demo"
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in out["data"])
    vectors = [d["embedding"] for d in out["data"]]
    assert all(len(v) == 16 and all(-1.0 <= x < 1.0 for x in v) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert out["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


async def test_embeddings_single_string_and_token_array_are_one_input() -> None:
    one = await complete("embeddings", {"model": "demo", "input": "a cat"})
    assert len(one["data"]) == 1
    tokens = await complete("embeddings", {"model": "demo", "input": [1, 2, 3]})
    assert len(tokens["data"]) == 1


async def test_embeddings_as_base64_are_little_endian_float32() -> None:
    body = {"model": "demo", "input": ["a cat", "a dog"]}
    floats = await complete("embeddings", body)
    packed = await complete("embeddings", {**body, "encoding_format": "base64"})
    for as_float, as_b64 in zip(floats["data"], packed["data"], strict=True):
        raw = base64.b64decode(as_b64["embedding"], validate=True)
        assert len(raw) == 4 * 16
        assert list(struct.unpack("<16f", raw)) == as_float["embedding"]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"'])
async def test_bad_json_is_a_400_with_an_openai_envelope(body: bytes) -> None:
    response, chunks = await call("chat", body)
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"
    out = json.loads(b"".join(chunks))
    assert set(out) == {"error"}
    assert set(out["error"]) == {"message", "type", "param", "code"}
    assert out["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in out["error"]["message"]


@pytest.mark.parametrize("endpoint", ["messages", "count_tokens"])
def test_adapter_refuses_endpoints_it_does_not_serve(endpoint: Endpoint) -> None:
    with pytest.raises(Unsupported):
        MockAdapter(DEFAULT).build(endpoint, b"{}", "demo", stream=False)


def test_adapter_builds_mock_urls() -> None:
    request = MockAdapter(DEFAULT).build(
        "chat", b"{}", "demo", stream=True, forward=[("x-request-id", "r1")]
    )
    assert request.method == "POST"
    assert request.url == "mock://demo/chat/completions"
    assert list(request.headers) == [("x-request-id", "r1")]
    assert request.body == b"{}"


async def test_release_ends_the_response() -> None:
    request = MockAdapter(DEFAULT).build(
        "chat", json.dumps({**hello(), "stream": True}).encode(), "demo", stream=True
    )
    response = await MockTransport(DEFAULT).send(request)
    assert await response.read_chunk()
    response.release()
    assert await response.read_chunk() == b""


# --- determinism, as a property -------------------------------------------------------------


_by_tokens: dict[int, Backend] = {}


@given(st.text(max_size=40), st.integers(1, 24))
@settings(max_examples=40, deadline=None)
def test_any_prompt_answers_deterministically_with_tokens_words(prompt: str, tokens: int) -> None:
    b = _by_tokens.get(tokens) or _by_tokens.setdefault(tokens, backend(f"    tokens: {tokens}"))

    async def twice() -> tuple[Any, Any]:
        return await complete("chat", hello(prompt), b), await complete("chat", hello(prompt), b)

    first, again = asyncio.run(twice())
    assert first["choices"] == again["choices"]
    assert len(first["choices"][0]["message"]["content"].split(" ")) == tokens
