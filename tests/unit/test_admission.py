"""proxy.admission: the max_concurrent cap refuses or queues, never over-admits, never hangs."""

import asyncio

import pytest

from proxy.admission import Gate, Overloaded
from proxy.errors import render

pytestmark = pytest.mark.timeout(20)


async def _crowd(gate: Gate, n: int, release: asyncio.Event) -> tuple[list[str], int]:
    peak = 0

    async def one() -> str:
        nonlocal peak
        try:
            async with gate.admit():
                peak = max(peak, gate.in_flight)
                await release.wait()
                return "ok"
        except Overloaded as err:
            assert dict(err.headers)["retry-after"] == "1"
            return "503"

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    for _ in range(100):  # let every task reach the gate (bounded)
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    return results, peak


async def test_fifty_parallel_over_a_cap_of_five_without_a_queue() -> None:
    gate = Gate(5)
    results, peak = await _crowd(gate, 50, asyncio.Event())
    assert results.count("ok") == 5 and results.count("503") == 45
    assert peak == 5
    assert (gate.in_flight, gate.admitted, gate.refused) == (0, 5, 45)


async def test_a_queue_lets_waiters_in_as_slots_free() -> None:
    gate = Gate(2, queue_timeout=30.0)
    results, peak = await _crowd(gate, 20, asyncio.Event())
    assert results == ["ok"] * 20
    assert peak == 2 and gate.in_flight == 0 and gate.queued == 18


async def test_waiters_time_out_with_503_and_hold_no_slot() -> None:
    gate = Gate(1, queue_timeout=0.01)
    hold = asyncio.Event()

    async def holder() -> None:
        async with gate.admit():
            await hold.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        async with gate.admit():
            pass
    assert gate.in_flight == 1 and not gate._waiters
    hold.set()
    await first
    async with gate.admit():  # the slot came back
        assert gate.in_flight == 1
    assert gate.in_flight == 0


async def test_a_cancelled_waiter_gives_its_slot_to_the_next() -> None:
    gate = Gate(1, queue_timeout=30.0)
    hold = asyncio.Event()
    entered: list[int] = []

    async def use(n: int) -> None:
        async with gate.admit():
            entered.append(n)
            await hold.wait()

    tasks = [asyncio.create_task(use(n)) for n in range(3)]
    for _ in range(10):
        await asyncio.sleep(0)
    tasks[1].cancel()  # the client went away while queued
    hold.set()
    await asyncio.gather(tasks[0], tasks[2])
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert entered == [0, 2] and gate.in_flight == 0


async def test_raising_the_limit_on_reload_admits_waiters() -> None:
    gate = Gate(1, queue_timeout=30.0)
    hold = asyncio.Event()

    async def use() -> None:
        async with gate.admit():
            await hold.wait()

    tasks = [asyncio.create_task(use()) for _ in range(4)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert gate.in_flight == 1 and len(gate._waiters) == 3
    gate.configure(10, 30.0)
    assert gate.in_flight == 4 and not gate._waiters  # handed over at once, before `hold`
    hold.set()
    await asyncio.gather(*tasks)
    assert gate.in_flight == 0


def test_no_limit_admits_everyone() -> None:
    async def run() -> int:
        gate = Gate(None)
        results, peak = await _crowd(gate, 50, asyncio.Event())
        assert results == ["ok"] * 50
        return peak

    assert asyncio.run(run()) == 50


def test_the_error_renders_as_503_with_retry_after() -> None:
    status, headers, body = render(Overloaded("full", headers=(("retry-after", "1"),)), "openai")
    assert status == 503 and (b"retry-after", b"1") in headers
    assert b"gateway_overloaded" in body


async def test_every_result_is_counted_for_metrics() -> None:
    seen: list[str] = []
    gate = Gate(1, queue_timeout=0.01, count=seen.append)
    hold = asyncio.Event()

    async def holder() -> None:
        async with gate.admit():
            await hold.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        async with gate.admit():
            pass
    hold.set()
    await first
    assert seen == ["admitted", "queued", "refused"]
