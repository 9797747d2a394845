"""The harness itself, normal answers: each wire's bodies and frames, driven by a plain
aiohttp client and by the official SDKs; recording and scripting.

Answers must parse on all three wires, as the real APIs' clients parse them.
"""

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from proxy.sse import Decoder
from tests.integration.upstream_checks import WEATHER, call, chat, stream_events
from tests.upstreams import FakeUpstream, Wire, ok, rate_limited, status

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        yield client


# --- OpenAI wire ----------------------------------------------------------------------------


async def test_chat_answer_echoes_model_and_prompt(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{upstream.url}/chat/completions", json=chat()) as resp:
        assert resp.status == 200
        assert resp.headers["x-request-id"] == "req_fake_0"
        body = await resp.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-x"
    (choice,) = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Hello from gpt-x. You said: hi there",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_stream_frames(upstream: FakeUpstream, session: aiohttp.ClientSession) -> None:
    upstream.script(ok(chunks=["Hel", "lo", "!"], usage=(7, 3)))
    events = await stream_events(session, f"{upstream.url}/chat/completions", chat(stream=True))
    assert all(e.event == "" for e in events)  # OpenAI frames are data-only
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["Hel", "lo", "!"]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert all("usage" not in c for c in chunks)  # not asked for


async def test_chat_stream_usage_chunk_only_when_asked(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(ok(text="a b", usage=(7, 3)))
    body = chat(stream=True, stream_options={"include_usage": True})
    events = await stream_events(session, f"{upstream.url}/chat/completions", body)
    assert events[-1].data == "[DONE]"
    *chunks, last = [json.loads(e.data) for e in events[:-1]]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert all(c["usage"] is None for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_chat_tool_calls_stream_and_not(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    calls = [WEATHER, ("get_time", '{"tz":"CET"}')]
    upstream.script(ok(tool_calls=calls), ok(tool_calls=calls))
    url = f"{upstream.url}/chat/completions"
    events = await stream_events(session, url, chat(stream=True))
    chunks = [json.loads(e.data) for e in events[:-1]]
    entries = [t for c in chunks for t in c["choices"][0]["delta"].get("tool_calls", [])]
    for index, (name, arguments) in enumerate(calls):
        mine = [t for t in entries if t["index"] == index]
        assert mine[0]["id"] == f"call_0_{index}"
        assert mine[0]["function"] == {"name": name, "arguments": ""}
        assert all("id" not in t and "name" not in t["function"] for t in mine[1:])
        assert len(mine) > 2  # arguments arrive in fragments
        assert "".join(t["function"]["arguments"] for t in mine) == arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    async with session.post(url, json=chat()) as resp:
        message = (await resp.json())["choices"][0]["message"]
    assert message["content"] is None
    assert [t["function"]["name"] for t in message["tool_calls"]] == ["get_weather", "get_time"]
    assert message["tool_calls"][0]["function"]["arguments"] == WEATHER[1]


async def test_legacy_completions(upstream: FakeUpstream, session: aiohttp.ClientSession) -> None:
    upstream.script(ok(text="one two"), ok(text="one two"))
    url = f"{upstream.url}/completions"
    async with session.post(url, json={"model": "davinci", "prompt": "say"}) as resp:
        body = await resp.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "one two"
    assert body["choices"][0]["finish_reason"] == "stop"

    events = await stream_events(
        session, url, {"model": "davinci", "prompt": "say", "stream": True}
    )
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == "one two"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_embeddings_float_and_base64_agree(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    url = f"{upstream.url}/embeddings"
    request = {"model": "emb", "input": ["a", "b c"], "dimensions": 4}
    async with session.post(url, json=request) as resp:
        floats = await resp.json()
    async with session.post(url, json={**request, "encoding_format": "base64"}) as resp:
        packed = await resp.json()
    assert floats["object"] == "list"
    assert floats["model"] == "emb"
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    for as_list, as_b64 in zip(floats["data"], packed["data"], strict=True):
        raw = base64.b64decode(as_b64["embedding"])
        assert list(struct.unpack("<4f", raw)) == as_list["embedding"]
    async with session.post(url, json={"model": "emb", "input": [1, 2, 3]}) as resp:
        tokens = await resp.json()
    assert len(tokens["data"]) == 1  # one token array is one input
    assert len(tokens["data"][0]["embedding"]) == 8


@pytest.mark.parametrize(
    ("wire", "path", "check"),
    [
        ("openai", "/v1/models", lambda b: b["data"][0]["object"] == "model"),
        ("anthropic", "/v1/models", lambda b: b["data"][0]["type"] == "model"),
        ("gemini", "/v1beta/models", lambda b: b["models"][0]["name"] == "models/fake-model"),
    ],
)
async def test_model_lists(
    make_upstream: Any, session: aiohttp.ClientSession, wire: Wire, path: str, check: Any
) -> None:
    up: FakeUpstream = make_upstream(wire)
    async with session.get(up.root + path) as resp:
        assert resp.status == 200
        assert check(await resp.json())


async def test_azure_deployment_path(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    url = f"{upstream.root}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    async with session.post(url, json={"messages": []}) as resp:
        assert (await resp.json())["model"] == "gpt4o-prod"
    assert upstream.requests[0].query == {"api-version": "2024-10-21"}


# --- Anthropic wire ---------------------------------------------------------------------------


async def test_anthropic_message(make_upstream: Any, session: aiohttp.ClientSession) -> None:
    up: FakeUpstream = make_upstream("anthropic")
    url, body = call(up, stream=False, model="claude-x")
    async with session.post(url, json=body) as resp:
        assert resp.headers["request-id"] == "req_fake_0"
        message = await resp.json()
    assert message["type"] == "message"
    assert message["model"] == "claude-x"
    assert message["content"] == [
        {"type": "text", "text": "Hello from claude-x. You said: hi there"}
    ]
    assert message["stop_reason"] == "end_turn"
    assert set(message["usage"]) == {"input_tokens", "output_tokens"}


async def test_anthropic_stream_canonical_order(
    make_upstream: Any, session: aiohttp.ClientSession
) -> None:
    up: FakeUpstream = make_upstream("anthropic")
    up.script(ok(text="Hi there", tool_calls=[WEATHER], usage=(5, 9)))
    events = await stream_events(session, *call(up, stream=True))
    data = [json.loads(e.data) for e in events]
    assert [e.event for e in events] == [d["type"] for d in data]  # event: names data.type
    types = [d["type"] for d in data]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert data[0]["message"]["stop_reason"] is None
    assert data[0]["message"]["content"] == []
    blocks = [d for d in data if d["type"] == "content_block_start"]
    assert [b["index"] for b in blocks] == [0, 1]
    assert blocks[1]["content_block"]["name"] == "get_weather"
    deltas = [d for d in data if d["type"] == "content_block_delta"]
    assert "".join(d["delta"]["text"] for d in deltas if d["index"] == 0) == "Hi there"
    assert "".join(d["delta"]["partial_json"] for d in deltas if d["index"] == 1) == WEATHER[1]
    assert data[-2]["delta"]["stop_reason"] == "tool_use"
    assert data[-2]["usage"] == {"output_tokens": 9}

    up.script(ok(tool_calls=[WEATHER]))
    url, body = call(up, stream=False)
    async with session.post(url, json=body) as resp:
        content = (await resp.json())["content"]
    assert content == [
        {"type": "tool_use", "id": "toolu_1_0", "name": "get_weather", "input": {"city": "Paris"}}
    ]


# --- Gemini wire ------------------------------------------------------------------------------


async def test_gemini_generate_and_stream(
    make_upstream: Any, session: aiohttp.ClientSession
) -> None:
    up: FakeUpstream = make_upstream("gemini")
    up.script(ok(text="a b c"), ok(text="a b c"))
    url, request = call(up, stream=False, model="gem-1")
    async with session.post(url, json=request) as resp:
        body = await resp.json()
    (candidate,) = body["candidates"]
    assert candidate["content"] == {"parts": [{"text": "a b c"}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    assert body["usageMetadata"]["totalTokenCount"] > 0
    assert body["modelVersion"] == "gem-1"

    url, request = call(up, stream=True)
    async with session.post(url, json=request) as resp:
        raw = await resp.read()
    assert b"\r\n\r\n" in raw  # Gemini's frames end in CRLF CRLF
    assert b"[DONE]" not in raw
    records = [json.loads(e.data) for e in Decoder().feed(raw)]
    texts = [r["candidates"][0]["content"]["parts"][0]["text"] for r in records]
    assert "".join(texts) == "a b c"
    assert [r["candidates"][0].get("finishReason") for r in records] == [None, None, "STOP"]
    assert "usageMetadata" in records[-1]
    assert up.requests[1].query == {"alt": "sse"}


async def test_gemini_function_call_and_json_array_stream(
    make_upstream: Any, session: aiohttp.ClientSession
) -> None:
    up: FakeUpstream = make_upstream("gemini")
    up.script(ok(tool_calls=[WEATHER]), ok(text="x y"))
    events = await stream_events(session, *call(up, stream=True))
    (record,) = [json.loads(e.data) for e in events]
    part = record["candidates"][0]["content"]["parts"][0]
    assert part == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}

    url = f"{up.url}/v1beta/models/m:streamGenerateContent"  # no alt=sse: one JSON array
    async with session.post(url, json=call(up, stream=True)[1]) as resp:
        array = await resp.json()
    assert [r["candidates"][0]["content"]["parts"][0]["text"] for r in array] == ["x", " y"]


# --- recording and scripting ------------------------------------------------------------------


async def test_records_every_request(make_upstream: Any, session: aiohttp.ClientSession) -> None:
    up: FakeUpstream = make_upstream("anthropic")
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    url, body = call(up, stream=False)
    async with session.post(f"{url}?beta=true", json=body, headers=headers) as resp:
        assert resp.status == 200
    async with session.get(f"{up.url}/nowhere") as resp:
        assert resp.status == 404
        assert (await resp.json())["type"] == "error"
    await asyncio.to_thread(up.wait_for_requests, 2, 1)
    first, second = up.requests
    assert (first.index, first.method, first.path) == (0, "POST", "/v1/messages")
    assert first.query == {"beta": "true"}
    assert first.headers["X-Api-Key"] == "k"  # case-insensitive
    assert first.json == body
    assert json.loads(first.body) == body
    assert not first.stream
    assert (second.method, second.path, second.json, second.body) == ("GET", "/nowhere", None, b"")


async def test_script_runs_in_order_then_default(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(status(500), status(503))
    upstream.script(ok(text="third"))
    assert upstream.pending == 3
    seen = []
    for _ in range(4):
        async with session.post(f"{upstream.url}/chat/completions", json=chat()) as resp:
            seen.append(resp.status)
            body = await resp.json()
    assert seen == [500, 503, 200, 200]
    assert body["choices"][0]["message"]["content"].startswith("Hello from gpt-x")
    assert upstream.pending == 0
    upstream.default = status(502)
    async with session.post(f"{upstream.url}/chat/completions", json=chat()) as resp:
        assert resp.status == 502


# --- the official SDKs parse what the fakes send ----------------------------------------------


def test_openai_sdk_reads_the_fake(upstream: FakeUpstream) -> None:
    upstream.script(ok(text="Hi there"), ok(chunks=["Hi", " there"], tool_calls=[WEATHER]))
    client = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0, timeout=5)
    messages: Any = [{"role": "user", "content": "hi"}]
    reply = client.chat.completions.create(model="gpt-x", messages=messages)
    assert reply.choices[0].message.content == "Hi there"
    with client.chat.completions.stream(
        model="gpt-x", messages=messages, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hi there"
    (tool,) = final.choices[0].message.tool_calls or []
    assert (tool.id, tool.function.name, tool.function.arguments) == ("call_1_0", *WEATHER)
    assert final.usage is not None
    assert final.usage.total_tokens == 4  # 1 prompt word; 2 pieces + 1 tool call
    vectors = client.embeddings.create(model="emb", input=["a", "b"])  # SDK asks for base64
    assert len(vectors.data[0].embedding) == 8
    assert upstream.requests[2].json["encoding_format"] == "base64"
    assert [m.id for m in client.models.list()] == ["fake-model"]
    upstream.script(rate_limited("1"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-x", messages=messages)


def test_anthropic_sdk_reads_the_fake(make_upstream: Any) -> None:
    up: FakeUpstream = make_upstream("anthropic")
    up.script(ok(text="Hi", tool_calls=[WEATHER], usage=(4, 6)), status(529))
    client = anthropic.Anthropic(base_url=up.url, api_key="k", max_retries=0, timeout=5)
    with client.messages.stream(
        model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Hi"
    assert final.content[1].type == "tool_use"
    assert final.content[1].input == {"city": "Paris"}
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 6)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 529
