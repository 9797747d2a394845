"""The gateway's own replies parse in the official SDKs exactly like a backend's answer.

A tiny aiohttp server answers every request with `replies.render`; the SDKs talk to it.
"""

import json
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.interactive import replies

pytestmark = pytest.mark.timeout(30)

TEXT = 'Model set to gpt-4o.\nSet temperature=0.2 — "quoted" and ünïcode.'


async def answer(request: web.Request) -> web.Response:
    body = await request.json()
    stream = bool(body.get("stream"))
    front: replies.Front = "anthropic" if request.path == "/v1/messages" else "openai"
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    out = replies.render(
        front,
        TEXT,
        model=body["model"],
        reply_id="req-123",
        created=1_700_000_000,
        stream=stream,
        include_usage=usage,
    )
    return web.Response(body=out, headers={"content-type": replies.CONTENT_TYPE[stream].decode()})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    app.router.add_post("/v1/messages", answer)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield str(srv.make_url(""))
    finally:
        await srv.close()


def openai_client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, timeout=10)


def anthropic_client(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0, timeout=10)


HELLO: list = [{"role": "user", "content": "!/model(gpt-4o)"}]  # type: ignore[type-arg]


async def test_openai_completion(server: str) -> None:
    async with openai_client(server) as client:
        done = await client.chat.completions.create(model="demo", messages=HELLO)
    assert done.id == "chatcmpl-req-123" and done.model == "demo"
    assert done.choices[0].message.content == TEXT
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.total_tokens == 0


@pytest.mark.parametrize("include_usage", [False, True])
async def test_openai_stream(server: str, include_usage: bool) -> None:
    async with openai_client(server) as client:
        stream = await client.chat.completions.create(
            model="demo",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert {c.id for c in chunks} == {"chatcmpl-req-123"}
    assert (chunks[-1].usage is not None) == include_usage


async def test_openai_stream_helper_accumulates(server: str) -> None:
    client = openai_client(server)
    async with client, client.chat.completions.stream(model="demo", messages=HELLO) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == TEXT


async def test_anthropic_message(server: str) -> None:
    async with anthropic_client(server) as client:
        msg = await client.messages.create(model="claude", max_tokens=10, messages=HELLO)
    assert msg.id == "msg_req-123" and msg.model == "claude" and msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == TEXT  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 0


async def test_anthropic_stream(server: str) -> None:
    client = anthropic_client(server)
    async with client, client.messages.stream(model="claude", max_tokens=10, messages=HELLO) as s:
        deltas = [text async for text in s.text_stream]
        final = await s.get_final_message()
    assert "".join(deltas) == TEXT
    assert final.content[0].text == TEXT  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"


def test_render_is_the_wire_shape() -> None:
    body = json.loads(
        replies.render("openai", "hi", model="m", reply_id="r", created=5, stream=False)
    )
    assert body["object"] == "chat.completion" and body["created"] == 5
    frames = replies.render("anthropic", "hi", model="m", reply_id="r", created=5, stream=True)
    events = [line for line in frames.decode().splitlines() if line.startswith("event: ")]
    assert events == [
        "event: message_start",
        "event: content_block_start",
        "event: content_block_delta",
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
