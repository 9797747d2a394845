"""The per-worker Governor: admit and finish as the request path calls them, the ledger it
flushes, and `llm-proxy usage` reading what it wrote."""

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from proxy.config import ClientKey, Price, parse
from proxy.config.governance import Budget
from proxy.observe import metrics
from proxy.state.governor import Governor
from proxy.state.store import UsageFilter
from tests.conftest import REPO, RoutesFile, free_port
from tests.state.conftest import RedisServer

CONFIG = """\
version: 1
settings:
  state: {state}
  state_timeout: 200ms
backends:
  demo: {{type: mock}}
models:
  demo:
    targets: [{{backend: demo, price: {{input: 1000, output: 2000}}}}]
"""
PRICE = Price(input=1000.0, output=2000.0)  # USD per million: 1000 tokens in cost $1
KEY = ClientKey(name="team", digest=b"d", rpm=2, tpm=5000, budget=Budget(usd=3.0, period="1d"))


async def _governor(tmp_path: Path, state: str, workers: int) -> Governor:
    config = parse(CONFIG.format(state=state), {})
    return await Governor.start(config.settings, workers, tmp_path, {}, flush_interval=0.05)


async def _one(gov: Governor, alias: str = "demo") -> tuple[bool, float | None]:
    verdict = await gov.admit(KEY, alias, body_size=400, max_tokens=100)
    assert verdict is not None
    if not verdict.allowed:
        return False, None
    cost = await gov.finish(
        verdict, key_name="team", alias=alias, backend="demo", provider_model="demo",
        price=PRICE, input_tokens=1000, output_tokens=500, cached_tokens=0,
    )  # fmt: skip
    return True, cost


@pytest.mark.parametrize(("state", "workers"), [("memory", 1), ("memory", 2), ("redis", 1)])
async def test_admit_finish_and_the_ledger(
    tmp_path: Path, request: pytest.FixtureRequest, state: str, workers: int
) -> None:
    url = request.getfixturevalue("redis_server").url if state == "redis" else "memory"
    gov = await _governor(tmp_path, url, workers)
    try:
        for _ in range(2):
            allowed, cost = await _one(gov)
            assert allowed and cost == pytest.approx(2.0)
        assert await _one(gov) == (False, None)  # rpm: 2
        bare = ClientKey(name="bare", digest=b"b")
        assert await gov.admit(bare, "demo", 10, None) is None  # nothing governs it
        rows = await gov.usage(UsageFilter(key="team"))
        assert [(r.requests, r.input_tokens, r.output_tokens) for r in rows] == [(2, 2000, 1000)]
        assert rows[0].cost == pytest.approx(4.0)
    finally:
        await gov.close()
    # a restart sees the spend: $4 of a $3 budget
    again = await _governor(tmp_path, url, workers)
    try:
        refused = await again.admit(KEY, "demo", 10, 10)
        assert refused is not None and refused.reason == "budget"
        left = metrics.REGISTRY.scalars["llm_proxy_budget_remaining_usd"][("team",)]
        assert left == pytest.approx(-1.0)
    finally:
        await again.close()


async def test_a_dead_store_is_counted_and_answered_open(tmp_path: Path) -> None:
    gov = await _governor(tmp_path, f"redis://127.0.0.1:{free_port()}/0", 1)
    failures = metrics.REGISTRY.scalars["llm_proxy_state_failures_total"]
    before = failures.get(("admit",), 0.0)
    try:
        verdict = await gov.admit(KEY, "demo", 10, 10)
        assert verdict is not None and verdict.allowed and verdict.degraded
        assert failures[("admit",)] == before + 1
    finally:
        await gov.close()


async def test_the_usage_command_prints_what_the_governor_wrote(tmp_path: Path) -> None:
    gov = await _governor(tmp_path, "memory", 1)
    try:
        await _one(gov)
        await _one(gov, alias="other")
    finally:
        await gov.close()
    path = RoutesFile(tmp_path)(CONFIG.format(state="memory"))
    env = {**os.environ, "LLM_PROXY_STATE_DIR": str(tmp_path)}

    def usage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "proxy", "usage", "--config", str(path), *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return done.stdout

    table = usage("--group", "model").splitlines()
    assert table[0].split()[:3] == ["model", "requests", "input_tokens"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["demo", "1"],
        ["other", "1"],
        ["total", "2"],
    ]
    doc = msgspec.json.decode(usage("--format", "json", "--model", "other"))
    assert [(r["model"], r["requests"], r["cost"]) for r in doc["rows"]] == [("other", 1, 2.0)]
    bad = subprocess.run(  # noqa: ASYNC221  (a CLI run, in a test)
        [sys.executable, "-m", "proxy", "usage", "--config", str(path), "--from", "soon"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "from must be a date" in bad.stderr


def test_redis_server_fixture_is_used(redis_server: RedisServer) -> None:
    assert redis_server.ping()


async def test_the_store_follows_state_and_the_worker_count(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from proxy.state.connect import open_store
    from proxy.state.memory import MemoryStore
    from proxy.state.redis import RedisStore
    from proxy.state.sqlite import SqliteStore

    memory = parse(CONFIG.format(state="memory"), {}).settings
    redis = parse(CONFIG.format(state=redis_server.url), {}).settings
    for settings, workers, kind in [
        (memory, 1, MemoryStore), (memory, 4, SqliteStore), (redis, 4, RedisStore),
    ]:  # fmt: skip
        store = await open_store(settings, workers, tmp_path, 0.0)
        try:
            assert type(store) is kind
        finally:
            await store.close()
