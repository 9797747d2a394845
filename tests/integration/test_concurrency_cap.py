"""settings.max_concurrent over real HTTP: 50 parallel requests against a cap of 5 (a slow
mock backend holds the slots): the excess get 503 + retry-after at once, none hang; with a
queue_timeout they wait for a slot instead; the refusals are counted in /metrics."""

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, RoutesFile

pytestmark = pytest.mark.timeout(90)

CONFIG = """
version: 1
settings:
  max_concurrent: 5
  {queue}
backends:
  slow: {{type: mock, latency: {latency}}}
models:
  slow: {{targets: [{{backend: slow}}]}}
"""
HELLO = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}


async def _fire(url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n + 5)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as c:
        return await asyncio.gather(*(c.post("/v1/chat/completions", json=HELLO) for _ in range(n)))


async def test_fifty_parallel_over_a_cap_of_five(
    tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(RoutesFile(tmp_path)(CONFIG.format(queue="", latency="3s")))
    responses = await _fire(gw.url, 50)
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 5 and codes.count(503) == 45, codes
    for r in responses:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "gateway_overloaded"
            assert r.headers["x-request-id"]
    async with httpx.AsyncClient(base_url=gw.url, trust_env=False) as c:
        metrics = (await c.get("/metrics")).text
    refused = re.search(r'llm_proxy_admission_total\{result="refused"\} (\S+)', metrics)
    assert refused is not None and float(refused[1]) == 45
    assert (
        'llm_proxy_requests_total{alias="",backend="",status="503"}' in metrics or "503" in metrics
    )


async def test_a_queue_timeout_lets_everyone_through(
    tmp_path: Path, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(RoutesFile(tmp_path)(CONFIG.format(queue="queue_timeout: 60s", latency="50ms")))
    responses = await _fire(gw.url, 50)
    assert [r.status_code for r in responses] == [200] * 50
