"""The stream guard: cuts a looping stream with the protocol's error event, passes others."""

import json

import msgspec
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy import errors
from proxy.config import LoopDetection
from proxy.interactive.guard import LoopDetected, LoopGuard, guard_for

ON = LoopDetection(enabled=True, window=4096, min_repeats=6)


def frames(pieces: list[str]) -> list[bytes]:
    out = []
    for p in pieces:
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
        }
        out.append(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
    return out


def relay(guard: LoopGuard, stream: list[bytes], wire: str) -> bytes:
    """What a relay sends: frames until the guard objects, then the error event."""
    sent = []
    for frame in stream:
        cut = guard.feed(frame)
        if cut is not None:
            sent.append(errors.stream_event(cut, wire))  # type: ignore[arg-type]
            return b"".join(sent)
        sent.append(frame)
    return b"".join(sent) + b"data: [DONE]\n\n"


LOOPING = ["Sure", "."] + ["I will", " check", " the file", " again.", " "] * 40
PLAIN = [f" step {i} of the plan." for i in range(len(LOOPING))]


def test_disabled_is_none() -> None:
    assert guard_for(LoopDetection(enabled=False), "openai") is None
    assert isinstance(guard_for(ON, "openai"), LoopGuard)


def test_cuts_a_loop_and_passes_the_same_length_without_one() -> None:
    out = relay(LoopGuard(ON, "openai"), frames(LOOPING), "openai")
    assert b"[DONE]" not in out and b'"type":"loop_detected"' in out
    err = json.loads(out.rsplit(b"data: ", 1)[1])["error"]
    assert err["code"] == "loop_detected" and "29-character fragment" in err["message"]
    clean = relay(LoopGuard(ON, "openai"), frames(PLAIN), "openai")
    assert clean.endswith(b"data: [DONE]\n\n") and b"loop_detected" not in clean


def test_tool_argument_loops() -> None:
    guard = LoopGuard(ON, "openai")
    cut = None
    for _ in range(60):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": '{"path": "a.txt"}, '}}]}
        chunk = {"choices": [{"index": 0, "delta": delta}]}
        cut = cut or guard.feed(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
    assert isinstance(cut, LoopDetected) and "tool-call arguments" in cut.message


def test_anthropic_event() -> None:
    guard = LoopGuard(ON, "anthropic")
    cut = None
    for _ in range(60):
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "all work and no play. "},
        }
        cut = cut or guard.feed(
            b"event: content_block_delta\ndata: " + msgspec.json.encode(delta) + b"\n\n"
        )
    assert cut is not None
    event = errors.stream_event(cut, "anthropic")
    assert event.startswith(b"event: error\ndata: ")
    body = json.loads(event.split(b"data: ", 1)[1])
    assert body["type"] == "error" and body["error"]["type"] == "loop_detected"


async def sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(relay(LoopGuard(ON, "openai"), frames(LOOPING), "openai"))
    return resp


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_post("/v1/chat/completions", sse)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield str(srv.make_url(""))
    finally:
        await srv.close()


async def test_the_openai_sdk_raises_on_the_cut(server: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="k", max_retries=0, timeout=10)
    async with client:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="loop_detected"):
            async for _ in stream:
                pass
