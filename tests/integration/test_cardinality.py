"""Issue 20 item 6 (part): 5,000 client-invented names under a glob alias keep `/metrics` and
`/admin/backends` small (label sets and per-target state are bounded)."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.timeout(120)

NAMES = 5000
CONFIG = """\
version: 1
backends:
  up: {type: mock, tokens: 2}
models:
  fixed:
    targets: [{backend: up}]
  "up/*":
    targets: [{backend: up}]
"""


async def _send(url: str, names: list[str]) -> list[int]:
    statuses: list[int] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            name = queue.get_nowait()
            body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                await resp.read()
                statuses.append(resp.status)

    async with aiohttp.ClientSession(trust_env=False) as session:
        await asyncio.gather(*(worker(session) for _ in range(16)))
    return statuses


async def _get(url: str) -> bytes:
    async with aiohttp.ClientSession(trust_env=False) as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


async def test_metrics_and_admin_stay_small_after_thousands_of_glob_names(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(CONFIG)
    gw = gateway(routes)
    statuses = await _send(gw.url, ["fixed"] + [f"up/rand-{n}" for n in range(NAMES)])
    assert statuses.count(200) == NAMES + 1, set(statuses)
    metrics = (await _get(f"{gw.url}/metrics")).decode()
    backends = await _get(f"{gw.url}/admin/backends")
    # Unbounded, these were 1.6 MB and 781 KB.
    assert len(metrics) < 150_000, len(metrics)
    assert len(backends) < 100_000, len(backends)
    # The alias label is the pattern; the fixed target's circuit is still reported.
    assert 'alias="up/*"' in metrics and "up/rand-" not in metrics.split("upstream_attempts")[0]
    assert 'llm_proxy_circuit_state{backend="up",model="fixed",state="closed"} 1' in metrics
    assert b'"model":"fixed"' in backends.replace(b" ", b"")
