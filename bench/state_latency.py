"""Added latency of governance per request, per store: one `admit` + one `settle`.

    python bench/state_latency.py [--requests 2000] [--redis redis://127.0.0.1:6379/0]

Reports p50/p99 microseconds of admit+settle, one request at a time (the latency a request
sees), for the in-process store, the shared SQLite file (alone, and with a second process
hammering the same file, as `--workers 2` would), and Redis when `--redis` is given.
A small script, not a test: numbers depend on the machine.
"""

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config.governance import Budget, Limits
from proxy.state.memory import MemoryStore
from proxy.state.redis import RedisStore
from proxy.state.sqlite import SqliteStore
from proxy.state.store import Ask, Scope, Store

ASK = Ask(
    "bench",
    (Scope("bench", Limits(rpm=10**9, tpm=10**12, max_parallel=10**6)),),
    500,
    Budget(usd=10**9, period="month"),
    600.0,
)


async def measure(store: Store, n: int) -> tuple[list[float], list[float]]:
    """Microseconds of each admit (before the upstream call) and each settle (after it)."""
    admits, settles = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        v = await store.admit(ASK, time.time())
        t1 = time.perf_counter()
        assert v.reservation is not None
        await store.settle(v.reservation, 400, 0.001, time.time())
        admits.append((t1 - t0) * 1e6)
        settles.append((time.perf_counter() - t1) * 1e6)
    await store.close()
    return admits, settles


def _hammer(path: str, stop: float) -> None:
    async def run() -> None:
        store = SqliteStore(Path(path), 5.0)
        while time.time() < stop:
            v = await store.admit(ASK, time.time())
            if v.reservation is not None:
                await store.settle(v.reservation, 400, 0.001, time.time())
        await store.close()

    asyncio.run(run())


def report(name: str, measured: tuple[list[float], list[float]]) -> None:
    for what, us in zip(("admit", "settle"), measured, strict=True):
        us.sort()
        p50, p99 = statistics.median(us), us[int(len(us) * 0.99) - 1]
        print(f"{name:26s} {what:6s} p50 {p50:8.1f} us   p99 {p99:8.1f} us   (n={len(us)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--redis", default="")
    args = parser.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        report("memory", asyncio.run(measure(MemoryStore(), n)))
        path = Path(tmp) / "alone.sqlite3"
        report("sqlite file, 1 process", asyncio.run(measure(SqliteStore(path), n)))
        shared = Path(tmp) / "shared.sqlite3"
        SqliteStore(shared)  # create the schema before the other process starts
        other = multiprocessing.Process(target=_hammer, args=(str(shared), time.time() + 60))
        other.start()
        try:
            report("sqlite file, 2 processes", asyncio.run(measure(SqliteStore(shared, 5.0), n)))
        finally:
            other.terminate()
            other.join(5)
        if args.redis:
            report("redis", asyncio.run(measure(RedisStore(args.redis, 1.0), n)))


if __name__ == "__main__":
    main()
