"""The official `openai` SDK parses what the Responses translators emit.

A tiny aiohttp server on 127.0.0.1 answers `POST /v1/responses` by running a golden upstream
transcript (chosen by the request's `model`) through the translator for its wire, with the
SDK's own request echoed, and streams the events back as SSE (or, unstreamed, the translated
answer). `client.responses.stream`, `client.responses.create(stream=True)` and
`client.responses.create` read it; a broken upstream stream makes the SDK raise.
"""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.sse import Decoder, encode
from proxy.translate import pick, responses_chat

pytestmark = pytest.mark.timeout(30)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "up",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"city": "Paris"}'},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}


async def answer(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    req = responses_chat.decode(body)
    if not req.stream:
        out = responses_chat.response(
            json.dumps(COMPLETION).encode(), req.model, id="resp_plain", created=7, request=req
        )
        return web.Response(body=out, content_type="application/json")
    translator = pick("responses", req.model.split("_")[0])
    assert translator is not None
    stream = translator.Stream(req.model, include_usage=True, id="resp_replay", created=7)
    decoder = Decoder()
    events = [
        e
        for raw in decoder.feed((GOLDEN / f"{req.model}.sse").read_bytes())
        for e in stream.feed(raw)
    ]
    events += stream.close()
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for event in events:  # one write per frame: the SDK reassembles across reads
        await resp.write(encode(event.data, event.event))
    await resp.write_eof()
    return resp


@pytest.fixture
async def client(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> AsyncIterator[openai.AsyncOpenAI]:
    app = web.Application()
    app.router.add_post("/v1/responses", answer)
    server = await aiohttp_server(app)
    sdk = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0, timeout=10
    )
    try:
        yield sdk
    finally:
        await sdk.close()


TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        "strict": False,
    }
]


@pytest.mark.parametrize("model", ["openai_text", "anthropic_text", "gemini_text"])
async def test_stream_helper_text(client: openai.AsyncOpenAI, model: str) -> None:
    deltas = []
    async with client.responses.stream(model=model, input="hi") as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = await stream.get_final_response()
    assert final.status == "completed" and final.id == "resp_replay"
    assert final.output_text == "".join(deltas) and deltas
    assert final.usage is not None and final.usage.total_tokens > 0


@pytest.mark.parametrize("model", ["openai_tools", "anthropic_tools", "gemini_tools"])
async def test_stream_helper_function_calls(client: openai.AsyncOpenAI, model: str) -> None:
    async with client.responses.stream(model=model, input="weather?", tools=TOOLS) as stream:
        final = await stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 2
    assert all(c.call_id and c.name == "get_weather" for c in calls)
    assert all(isinstance(json.loads(c.arguments), dict) for c in calls)


@pytest.mark.parametrize("model", ["openai_error", "anthropic_error", "gemini_error"])
async def test_a_broken_stream_raises_in_the_sdk(client: openai.AsyncOpenAI, model: str) -> None:
    seen = []
    with pytest.raises(openai.APIError) as err:
        stream = await client.responses.create(model=model, input="hi", stream=True)
        async for event in stream:
            seen.append(event.type)
    assert "response.failed" in seen and "response.completed" not in seen
    assert err.value.message


async def test_the_stream_helper_raises_too(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIError):
        async with client.responses.stream(model="openai_error", input="hi") as stream:
            await stream.get_final_response()


async def test_create_unstreamed_with_json_schema(client: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    r = await client.responses.create(
        model="alias",
        input="where?",
        instructions="answer in JSON",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
    )
    assert r.id == "resp_plain" and r.status == "completed"
    assert json.loads(r.output_text) == {"city": "Paris"}
    assert r.instructions == "answer in JSON"
    assert r.text is not None and r.text.format is not None
    assert r.text.format.type == "json_schema"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (12, 5)
