"""The Responses API pieces put together the way the request path will (a reference for the
wiring, until `/v1/responses` is served): decode → stored history → `responses_route` → the
backend's real adapter and transport → translate (or relay) → store. Real fake upstreams on
127.0.0.1 (chat, Anthropic, Gemini, and OpenAI's Responses API) and the built-in mock; what
comes back is read with openai-python's own types and accumulator.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from proxy import providers
from proxy.config import Backend, Timeouts
from proxy.errors import UpstreamFailure
from proxy.responses_route import route
from proxy.responses_store import MemoryStore, record
from proxy.sse import Decoder, Event, encode
from proxy.translate import TranslationError, responses_chat
from proxy.translate.responses_replay import replay, stream_usage
from tests.unit.responses_support import check_responses, responses_final
from tests.upstreams import FakeUpstream, ok, reset_mid_stream

pytestmark = pytest.mark.timeout(20)
WEATHER = ("get_weather", '{"city": "Paris"}')
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


async def drive(backend: Backend, body: dict[str, Any], store: MemoryStore, rid: str) -> bytes:
    """One `/v1/responses` request on one backend, as the request path will run it."""
    raw = json.dumps(body).encode()
    req = responses_chat.decode(raw)
    history = None
    if req.previous_response_id:
        found = await store.get(req.previous_response_id)
        history = responses_chat.stored_items(found.conversation) if found else None
    adapter = providers.adapter(backend)
    stream = bool(req.stream) and backend.stream
    r = route(raw, req, backend, adapter.wire, "up-model", stream, history)
    transport = providers.transport(backend, Timeouts(connect=2, first_byte=5, idle=5, total=10))
    try:
        upstream = await transport.send(adapter.build(r.endpoint, r.body, "up-model", stream))
        try:
            if upstream.status >= 400:
                data = await upstream.read(2**20)
                return r.translator.error(upstream.status, data) if r.translator else data
            if not stream:
                data = await upstream.read(2**20)
                if r.translator is not None:
                    data = r.translator.response(data, "alias", id=rid, created=7, request=req)
                    kept = record(req, history or (), data)
                    if kept is not None:
                        await store.put(kept)
                return replay(data) if req.stream else data
            if r.translator is None:  # pass-through: bytes as they come
                chunks = []
                while chunk := await upstream.read_chunk():
                    chunks.append(chunk)
                return b"".join(chunks)
            s = r.translator.Stream("alias", id=rid, created=7, request=req)
            decoder, out = Decoder(), []
            try:
                while chunk := await upstream.read_chunk():
                    out += [e for event in decoder.feed(chunk) for e in s.feed(event)]
                out += s.close()
            except UpstreamFailure as exc:  # after commit: the client gets a failure, not an end
                out += s.fail("api_error", str(exc))
            if s.response is not None:
                kept = record(req, history or (), s.response)
                if kept is not None:
                    await store.put(kept)
            return b"".join(encode(e.data, e.event) for e in out)
        finally:
            upstream.release()
    finally:
        await transport.close()


def events(raw: bytes) -> list[Event]:
    out = Decoder().feed(raw)
    check_responses(out)
    return out


@pytest.fixture
def anthropic_up() -> Iterator[FakeUpstream]:
    with FakeUpstream(wire="anthropic") as up:
        yield up


@pytest.fixture
def gemini_up() -> Iterator[FakeUpstream]:
    with FakeUpstream(wire="gemini") as up:
        yield up


def backends(openai_up: FakeUpstream, anthropic_up: FakeUpstream, gemini_up: FakeUpstream) -> Any:
    return {
        "compatible": (Backend(name="c", type="openai", base_url=openai_up.url), openai_up),
        "anthropic": (Backend(name="a", type="anthropic", base_url=anthropic_up.url), anthropic_up),
        "gemini": (Backend(name="g", type="gemini", base_url=gemini_up.url), gemini_up),
    }


@pytest.mark.parametrize("kind", ["compatible", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_two_turns_with_a_function_call(
    kind: str,
    stream: bool,
    upstream: FakeUpstream,
    anthropic_up: FakeUpstream,
    gemini_up: FakeUpstream,
) -> None:
    backend, up = backends(upstream, anthropic_up, gemini_up)[kind]
    up.script(ok(text="Checking.", tool_calls=[WEATHER]), ok(text="Sunny in Paris."))
    store = MemoryStore(ttl=60)
    first = {"model": "alias", "input": "weather in Paris?", "tools": TOOLS, "stream": stream}
    out = await drive(backend, first, store, "resp_1")
    answer = responses_final(events(out)) if stream else json.loads(out)
    output = answer.model_dump()["output"] if stream else answer["output"]
    [call] = [o for o in output if o["type"] == "function_call"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert await store.get("resp_1") is not None

    second = {
        "model": "alias",
        "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}],
        "tools": TOOLS,
        "stream": stream,
    }
    out = await drive(backend, second, store, "resp_2")
    text = responses_final(events(out)).output_text if stream else json.loads(out)["output"]
    if not stream:
        text = text[0]["content"][0]["text"]
    assert text == "Sunny in Paris."
    sent = json.dumps(up.requests[1].json)
    assert "weather in Paris?" in sent and "sunny" in sent and "get_weather" in sent


async def test_mock_backend_streams_a_response() -> None:
    backend = Backend(name="demo", type="mock")
    out = await drive(
        backend, {"model": "demo", "input": "hi", "stream": True}, MemoryStore(60), "r"
    )
    final = responses_final(events(out))
    assert final.output_text and final.usage is not None and final.usage.output_tokens > 0


async def test_stream_false_backend_is_replayed(upstream: FakeUpstream) -> None:
    backend = Backend(name="c", type="openai", base_url=upstream.url, stream=False)
    out = await drive(backend, {"model": "a", "input": "hi", "stream": True}, MemoryStore(60), "r")
    assert responses_final(events(out)).output_text.startswith("Hello from up-model")
    assert upstream.requests[0].json.get("stream") is not True


async def test_responses_backend_passes_bytes_through(upstream: FakeUpstream) -> None:
    backend = Backend(name="o", type="openai", base_url=upstream.url, responses=True)
    body = {"model": "alias", "input": "hi", "stream": True, "include": ["future.thing"]}
    out = await drive(backend, body, MemoryStore(60), "unused")
    assert upstream.requests[0].path == "/v1/responses"
    assert upstream.requests[0].json == {**body, "model": "up-model"}
    evs = events(out)
    final = responses_final(evs)
    assert final.id == "resp_fake_0" and final.usage is not None
    usage = (final.usage.input_tokens, final.usage.output_tokens)
    assert [stream_usage(e) for e in evs if stream_usage(e)] == [usage]


async def test_an_unknown_previous_id_is_a_400_before_any_upstream_call(
    upstream: FakeUpstream,
) -> None:
    backend = Backend(name="c", type="openai", base_url=upstream.url)
    with pytest.raises(TranslationError):
        await drive(
            backend,
            {"model": "a", "input": "x", "previous_response_id": "resp_no"},
            MemoryStore(60),
            "r",
        )
    assert upstream.requests == []


async def test_a_reset_after_commit_fails_the_response(upstream: FakeUpstream) -> None:
    backend = Backend(name="c", type="openai", base_url=upstream.url)
    upstream.script(reset_mid_stream(after_chunks=2))
    store = MemoryStore(60)
    out = await drive(
        backend, {"model": "a", "input": "one two three", "stream": True}, store, "resp_x"
    )
    evs = events(out)
    assert [e.event for e in evs[-2:]] == ["response.failed", "error"]
    assert await store.get("resp_x") is None  # nothing to continue from a failed response
