"""Shared by the harness's own tests (test_upstreams_*.py): requests on each wire, and how
to read the frames a fake sends (which carry content, which one terminates).
"""

import json
from typing import Any

import aiohttp

from proxy.sse import Decoder, Event
from tests.upstreams import FakeUpstream, Wire

WIRES: tuple[Wire, ...] = ("openai", "anthropic", "gemini")
SHORT = aiohttp.ClientTimeout(total=0.3)
WEATHER = ("get_weather", '{"city":"Paris"}')


def chat(model: str = "gpt-x", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi there"}], **extra}


def call(up: FakeUpstream, *, stream: bool, model: str = "m-1") -> tuple[str, dict[str, Any]]:
    """URL and body of a generation request on the upstream's own wire."""
    if up.wire == "openai":
        return f"{up.url}/chat/completions", chat(model, stream=stream)
    if up.wire == "anthropic":
        return f"{up.url}/v1/messages", chat(model, max_tokens=64, stream=stream)
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]}
    return f"{up.url}/v1beta/models/{model}:{action}", body


async def read_sse(resp: aiohttp.ClientResponse, into: list[Event]) -> None:
    """Decode frames into `into` as they arrive, so a test still has them after an error."""
    decoder = Decoder()
    async for chunk in resp.content.iter_any():
        into.extend(decoder.feed(chunk))


async def stream_events(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> list[Event]:
    async with session.post(url, json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        events: list[Event] = []
        await read_sse(resp, events)
        return events


def is_content(wire: Wire, event: Event) -> bool:
    """Carries text, a tool call or a finish: what may commit a gateway's stream."""
    if event.data == "[DONE]":
        return False
    data = json.loads(event.data)
    if wire == "openai":
        if not data["choices"]:
            return False
        choice = data["choices"][0]
        delta = choice["delta"]
        return bool(delta.get("content") or delta.get("tool_calls") or choice["finish_reason"])
    if wire == "anthropic":
        block = data.get("content_block", {})
        return data["type"] in ("content_block_delta", "message_delta") or (
            block.get("type") == "tool_use"
        )
    return True


def is_terminator(wire: Wire, event: Event) -> bool:
    return event.data == "[DONE]" if wire == "openai" else event.event == "message_stop"
