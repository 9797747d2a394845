"""Streaming followers of a slow leader get keepalives while they wait, and still get the
whole answer; when the leader fails after that, one of them asks and its answer is stored."""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cache.test_gateway import text_of
from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, stall_before_headers

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(wire="openai", models=("fake-model",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("cache-keepalive")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          retries: 0
          failure_threshold: 1000
          keepalive: 200ms
          timeouts: {{first_byte: 1500ms}}
          cache: {{ttl: 10m}}
        backends:
          oa: {{type: openai, base_url: "{up.url}", api_key: sk-up}}
        models:
          gpt: {{targets: [{{backend: oa, model: fake-model}}]}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


async def streamed(gw: Gateway, up: FakeUpstream, body: dict[str, Any], n: int) -> list[Any]:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:

        async def one() -> tuple[int, str, str]:
            r = await client.post("/v1/chat/completions", json=body)
            return r.status_code, r.text, text_of(r)

        seen = len(up.requests)
        leader = asyncio.create_task(one())
        await asyncio.to_thread(up.wait_for_requests, seen + 1, 10)
        rest = [asyncio.create_task(one()) for _ in range(n - 1)]
        return [await leader, *[await t for t in rest]]


async def test_waiting_followers_get_keepalives_then_the_answer(
    gw: Gateway, up: FakeUpstream
) -> None:
    up.script(stall_before_headers(1.0))
    before = len(up.requests)
    body = {
        "model": "gpt",
        "stream": True,
        "messages": [{"role": "user", "content": str(uuid.uuid4())}],
    }
    results = await streamed(gw, up, body, 5)
    assert len(up.requests) == before + 1
    assert {code for code, _, _ in results} == {200}
    assert len({text for _, _, text in results}) == 1 and results[0][2]
    assert any(": keepalive" in raw for _, raw, _ in results[1:])


async def test_after_keepalives_a_failed_leader_hands_over(gw: Gateway, up: FakeUpstream) -> None:
    up.script(stall_before_headers(2.5))  # past first_byte: the leader's stream gets an error
    before = len(up.requests)
    body = {
        "model": "gpt",
        "stream": True,
        "messages": [{"role": "user", "content": str(uuid.uuid4())}],
    }
    results = await streamed(gw, up, body, 4)
    assert '"error"' in results[0][1]
    assert all(text for _, _, text in results[1:]) and len({t for _, _, t in results[1:]}) == 1
    assert len(up.requests) == before + 2
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        again = await client.post("/v1/chat/completions", json=body)
    assert again.headers["x-proxy-cache"] == "hit" and text_of(again) == results[1][2]
    assert len(up.requests) == before + 2
