"""The harness itself, misbehaving: every FakeUpstream fault, driven by a plain client.

Status answers use the wire's error shape, and each fault must look to a client exactly as the
gateway's tests assume (how many frames arrive first, which error follows); so must the
places where nothing answers.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from proxy.sse import Decoder, Event
from tests.conftest import free_port
from tests.integration.upstream_checks import (
    SHORT,
    WIRES,
    call,
    chat,
    is_content,
    is_terminator,
    read_sse,
    stream_events,
)
from tests.upstreams import (
    Blackhole,
    FakeUpstream,
    Wire,
    cut_before_done,
    garbage,
    never_answer,
    ok,
    preamble_then_fail,
    rate_limited,
    refused_url,
    reset_before_headers,
    reset_mid_stream,
    slow_stream,
    stall_before_headers,
    stall_mid_stream,
    status,
    truncated_json,
    wrong_content_type,
)

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
        yield client


@pytest.fixture(params=WIRES)
def any_upstream(request: pytest.FixtureRequest, make_upstream: Any) -> FakeUpstream:
    upstream: FakeUpstream = make_upstream(request.param)
    return upstream


# --- status answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("openai", {"type": "server_error", "param": None, "code": None}),
        ("anthropic", {"type": "api_error"}),
        ("gemini", {"code": 500, "status": "INTERNAL"}),
    ],
)
async def test_status_uses_the_wire_error_shape(
    make_upstream: Any, session: aiohttp.ClientSession, wire: Wire, expected: dict[str, Any]
) -> None:
    up: FakeUpstream = make_upstream(wire)
    up.script(status(500))
    url, body = call(up, stream=True)
    async with session.post(url, json=body) as resp:
        assert resp.status == 500
        assert resp.content_type == "application/json"
        body = await resp.json()
    error = body["error"]
    assert {k: error[k] for k in expected} == expected
    assert error["message"]
    if wire == "anthropic":
        assert body["type"] == "error"


async def test_status_with_own_body_and_headers(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        status(502, "<html>bad gateway</html>", {"x-upstream": "lb"}),
        status(400, {"error": {"message": "bad", "type": "invalid_request_error"}}),
    )
    url = f"{upstream.url}/chat/completions"
    async with session.post(url, json=chat()) as resp:
        assert (resp.status, resp.content_type) == (502, "text/plain")
        assert resp.headers["x-upstream"] == "lb"
        assert await resp.text() == "<html>bad gateway</html>"
    async with session.post(url, json=chat()) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"] == "bad"


async def test_rate_limited_carries_retry_after(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    any_upstream.script(rate_limited("7", ms=1500), rate_limited(None, code=529))
    url, body = call(any_upstream, stream=False)
    async with session.post(url, json=body) as resp:
        assert resp.status == 429
        assert resp.headers["retry-after"] == "7"
        assert resp.headers["retry-after-ms"] == "1500"
        assert "error" in await resp.json()
    async with session.post(url, json=body) as resp:
        assert resp.status == 529
        assert "retry-after" not in resp.headers


# --- stalls and holds -------------------------------------------------------------------------


async def test_stall_before_headers_outlasts_a_short_timeout(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(stall_before_headers(0.5))
    with pytest.raises(TimeoutError):
        async with session.post(f"{upstream.url}/chat/completions", json=chat(), timeout=SHORT):
            pass
    assert await asyncio.to_thread(upstream.wait_closed_early, 0, 2) < 1
    async with session.post(f"{upstream.url}/chat/completions", json=chat()) as resp:
        assert resp.status == 200  # the next request is answered normally


async def test_never_answer_holds_until_the_client_leaves(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    any_upstream.script(never_answer())
    url, body = call(any_upstream, stream=True)
    with pytest.raises(TimeoutError):
        async with session.post(url, json=body, timeout=SHORT):
            pass
    await asyncio.to_thread(any_upstream.wait_closed_early, 0, 2)
    assert any_upstream.closed_early == [0]


async def test_stop_releases_holds_without_counting_them(
    session: aiohttp.ClientSession,
) -> None:
    up = FakeUpstream().start()
    try:
        up.script(never_answer())
        pending = asyncio.ensure_future(session.post(f"{up.url}/chat/completions", json=chat()))
        await asyncio.to_thread(up.wait_for_requests, 1, 2)
    finally:
        await asyncio.to_thread(up.stop)
    with pytest.raises(aiohttp.ClientError):
        await pending
    assert up.closed_early == []
    up.stop()  # idempotent


async def test_stall_mid_stream_gap(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    wire = any_upstream.wire
    any_upstream.script(stall_mid_stream(1, 0.5), stall_mid_stream(1, 0.05))
    url, body = call(any_upstream, stream=True)
    events: list[Event] = []
    with pytest.raises(TimeoutError):  # sock_read: the idle gap a gateway would notice
        async with session.post(
            url, json=body, timeout=aiohttp.ClientTimeout(sock_read=0.2)
        ) as resp:
            await read_sse(resp, events)
    assert [is_content(wire, e) for e in events].count(True) == 1
    events = await stream_events(session, url, body)  # a short stall, then the whole stream
    assert [is_content(wire, e) for e in events].count(True) > 2
    assert wire == "gemini" or is_terminator(wire, events[-1])


# --- resets and cuts --------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
async def test_reset_mid_stream_after_n_content_frames(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession, after: int
) -> None:
    wire = any_upstream.wire
    any_upstream.script(reset_mid_stream(after))
    events: list[Event] = []
    url, body = call(any_upstream, stream=True)
    async with session.post(url, json=body) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_sse(resp, events)
    assert [is_content(wire, e) for e in events].count(True) == after
    assert not any(is_terminator(wire, e) for e in events)
    assert any_upstream.closed_early == []  # our own reset is not the client leaving


async def test_reset_variants(upstream: FakeUpstream, session: aiohttp.ClientSession) -> None:
    upstream.script(reset_mid_stream(1, rst=True), reset_mid_stream(1), reset_before_headers())
    url = f"{upstream.url}/chat/completions"
    with pytest.raises(aiohttp.ClientError):  # RST: bytes in flight may be lost
        async with session.post(url, json=chat(stream=True)) as resp:
            await resp.read()
    with pytest.raises(aiohttp.ClientPayloadError):  # non-stream: half the body, then closed
        async with session.post(url, json=chat()) as resp:
            await resp.read()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.post(url, json=chat()):
            pass


@pytest.mark.parametrize("kind", ["reset", "stall"])
async def test_preamble_then_fail_sends_nothing_committable(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession, kind: Any
) -> None:
    wire = any_upstream.wire
    any_upstream.script(preamble_then_fail(kind, seconds=2))
    events: list[Event] = []
    expected = aiohttp.ClientPayloadError if kind == "reset" else TimeoutError
    url, body = call(any_upstream, stream=True)
    with pytest.raises(expected):
        async with session.post(
            url, json=body, timeout=aiohttp.ClientTimeout(sock_read=0.2)
        ) as resp:
            await read_sse(resp, events)
    assert not any(is_content(wire, e) for e in events)
    preamble = {"openai": 1, "anthropic": 2, "gemini": 0}[wire]  # role chunk; start + block
    assert len(events) == preamble


async def test_cut_before_done_ends_cleanly(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    wire = any_upstream.wire
    any_upstream.script(cut_before_done(), cut_before_done(1))
    url, body = call(any_upstream, stream=True)
    events = await stream_events(session, url, body)  # no exception: a clean end
    assert not any(is_terminator(wire, e) for e in events)
    if wire == "openai":
        assert json.loads(events[-1].data)["choices"][0]["finish_reason"] == "stop"
    events = await stream_events(session, url, body)
    assert [is_content(wire, e) for e in events].count(True) == 1


# --- bad bodies -------------------------------------------------------------------------------


async def test_garbage_truncated_and_wrong_type(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    url = f"{upstream.url}/chat/completions"
    upstream.script(garbage(), garbage(), truncated_json(), truncated_json(), wrong_content_type())
    async with session.post(url, json=chat()) as resp:
        assert (resp.status, resp.content_type) == (200, "application/json")
        with pytest.raises(ValueError):
            json.loads(await resp.read())
    events = await stream_events(session, url, chat(stream=True))
    with pytest.raises(ValueError):
        json.loads(events[0].data)
    async with session.post(url, json=chat()) as resp:
        with pytest.raises(ValueError):
            json.loads(await resp.read())
    events = await stream_events(session, url, chat(stream=True))
    assert json.loads(events[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert len(events) == 2
    with pytest.raises(ValueError):
        json.loads(events[1].data)
    async with session.post(url, json=chat(stream=True)) as resp:
        assert (resp.status, resp.content_type) == (200, "text/html")


# --- client disconnects -----------------------------------------------------------------------


async def test_closed_early_records_a_client_leaving_mid_stream(
    any_upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    any_upstream.script(slow_stream(interval=0.05, chunks=100), ok(text="short"))
    url, body = call(any_upstream, stream=True)
    async with session.post(url, json=body) as resp:
        decoder = Decoder()
        async for chunk in resp.content.iter_any():
            if decoder.feed(chunk):
                break
        resp.close()  # the gateway hangs up mid-stream
    assert await asyncio.to_thread(any_upstream.wait_closed_early, 0, 2) < 1
    await stream_events(session, url, body)  # read to the end: not early
    assert any_upstream.closed_early == [0]


async def test_closed_early_during_first_token_wait(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(slow_stream(first_delay=5, chunks=3))
    async with session.post(f"{upstream.url}/chat/completions", json=chat(stream=True)) as resp:
        assert resp.status == 200  # headers and the role chunk come at once
        resp.close()
    await asyncio.to_thread(upstream.wait_closed_early, 0, 2)
    assert 0 in upstream.closed_at


# --- places where nothing answers -------------------------------------------------------------


async def test_refused_url_refuses(session: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ClientConnectorError):
        async with session.get(f"{refused_url()}/models"):
            pass
    assert refused_url("anthropic").count("/") == 2


async def test_blackhole_accepts_and_never_answers(
    blackhole: Blackhole, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(TimeoutError):
        async with session.post(f"{blackhole.url}/chat/completions", json=chat(), timeout=SHORT):
            pass
    await asyncio.to_thread(blackhole.wait_for_connections, 1, 2)
    assert blackhole.accepted == 1


def test_context_manager_and_free_port() -> None:
    with FakeUpstream(wire="gemini") as up:
        assert up.url == f"http://127.0.0.1:{up.port}"
        assert repr(up).startswith("FakeUpstream(wire='gemini'")
    assert 1024 < free_port() < 65536
