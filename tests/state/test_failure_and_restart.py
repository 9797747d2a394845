"""The state store going away and coming back; the gateway restarting on kept state."""

import asyncio
import os
import signal
from pathlib import Path

import pytest

from proxy.config.governance import Budget, StateFailure
from proxy.state import guard
from proxy.state.guard import GuardedStore
from proxy.state.ledger import Ledger
from proxy.state.memory import MemoryStore
from proxy.state.redis import RedisStore
from proxy.state.sqlite import FILE_NAME, SqliteStore
from proxy.state.store import StateUnavailable, UsageFilter
from tests.conftest import free_port
from tests.state.conftest import RedisServer
from tests.state.stores import NOW, ask

TIMEOUT = 0.2  # the guard's bound on one store call
HANG_GUARD = 5.0  # a test fails rather than hangs if the bound were not kept


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("failure", ["open", "closed"])
async def test_redis_killed_gives_the_configured_verdict_and_recovers(
    redis_server: RedisServer, failure: StateFailure
) -> None:
    clock, failed = Clock(), list[str]()
    store = GuardedStore(
        RedisStore(redis_server.url, TIMEOUT), failure, TIMEOUT, failed.append, clock
    )
    a = ask(rpm=5)
    try:
        assert (await store.admit(a, NOW)).allowed
        redis_server.kill()
        async with asyncio.timeout(HANG_GUARD):
            down = await store.admit(a, NOW)
            again = await store.admit(a, NOW)  # paused: answered without trying the store
        if failure == "open":
            assert (down.allowed, down.degraded, down.reservation) == (True, True, None)
        else:
            assert (down.allowed, down.reason) == (False, "state")
            assert down.retry_after == guard.RETRY_CLOSED
        assert again == down
        assert failed == ["admit"]
        redis_server.start()  # same port: the client reconnects by itself
        clock.now += guard.PAUSE
        back = await store.admit(a, NOW)
        assert back.allowed and not back.degraded
        # this Redis keeps nothing on disk: its counters start again from full
        assert back.requests is not None and back.requests.remaining == 4
    finally:
        await store.close()


async def test_a_hung_redis_costs_at_most_the_timeout(redis_server: RedisServer) -> None:
    failed: list[str] = []
    store = GuardedStore(RedisStore(redis_server.url, TIMEOUT), "open", TIMEOUT, failed.append)
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    try:
        assert (await store.admit(ask(rpm=5), NOW)).allowed
        os.kill(pid, signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            async with asyncio.timeout(HANG_GUARD):
                verdict = await store.admit(ask(rpm=5), NOW)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert verdict.degraded and failed == ["admit"]
    finally:
        await store.close()


async def test_settle_failure_is_swallowed_and_record_failure_is_raised() -> None:
    nothing = f"redis://127.0.0.1:{free_port()}/0"  # refused at once
    store = GuardedStore(RedisStore(nothing, TIMEOUT), "open", TIMEOUT)
    try:
        verdict = await store.admit(ask(rpm=1), NOW)
        assert verdict.degraded
        ledger = Ledger(store)
        ledger.add(key="k", alias="m", backend="b", now=NOW, input_tokens=3)
        assert not await ledger.flush()
        assert sum(r.input_tokens for r in ledger.pending.values()) == 3  # kept for next time
        with pytest.raises(StateUnavailable):
            await store.record([])
    finally:
        await store.close()


async def test_one_worker_restart_keeps_spend_through_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    store = await MemoryStore.open(SqliteStore(path), NOW)
    ledger = Ledger(store)
    ledger.add(key="team", alias="m", backend="b", now=NOW, cost=1.5)
    assert await ledger.flush()
    await store.close()
    again = await MemoryStore.open(SqliteStore(path), NOW + 60)
    try:
        verdict = await again.admit(ask(budget=Budget(usd=1.0, period="month")), NOW + 60)
        assert (verdict.allowed, verdict.reason) == (False, "budget")
        assert verdict.budget is not None and verdict.budget.spent == pytest.approx(1.5)
    finally:
        await again.close()


async def test_shared_file_restart_keeps_spend(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    store = SqliteStore(path)
    verdict = await store.admit(ask(budget=Budget(usd=1.0, period="7d")), NOW)
    assert verdict.reservation is not None
    await store.settle(verdict.reservation, 0, 2.0, NOW)
    await store.close()
    again = SqliteStore(path)
    try:
        assert (await again.admit(ask(budget=Budget(usd=1.0, period="7d")), NOW)).reason == "budget"
    finally:
        await again.close()


async def test_redis_keeps_spend_for_a_new_client(redis_server: RedisServer) -> None:
    first = RedisStore(redis_server.url)
    verdict = await first.admit(ask(budget=Budget(usd=1.0, period="30d")), NOW)
    assert verdict.reservation is not None
    await first.settle(verdict.reservation, 0, 2.0, NOW)
    await first.close()
    second = RedisStore(redis_server.url)
    try:
        refused = await second.admit(ask(budget=Budget(usd=1.0, period="30d")), NOW)
        assert refused.reason == "budget"
        assert await second.usage(UsageFilter()) == []  # spend is not usage: the ledger is apart
    finally:
        await second.close()


async def test_going_from_one_worker_to_several_keeps_spend(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    one = await MemoryStore.open(SqliteStore(path), NOW)
    ledger = Ledger(one)
    ledger.add(key="team", alias="m", backend="b", now=NOW, cost=1.5)
    assert await ledger.flush()
    await one.close()
    shared = SqliteStore(path)  # what each of N workers opens
    try:
        verdict = await shared.admit(ask(budget=Budget(usd=1.0, period="1d")), NOW + 60)
        assert verdict.reason == "budget"
        assert verdict.budget is not None and verdict.budget.spent == pytest.approx(1.5)
    finally:
        await shared.close()


async def test_memory_forgets_spend_older_than_any_period() -> None:
    from proxy.state.memory import SPEND_DAYS

    store = MemoryStore()
    budget = ask(budget=Budget(usd=100.0, period="month"))
    for day in range(SPEND_DAYS + 5):
        verdict = await store.admit(budget, NOW + day * 86400)
        assert verdict.reservation is not None
        await store.settle(verdict.reservation, 0, 1.0, NOW + day * 86400)
    assert len(store._spend) <= SPEND_DAYS + 1
