"""A separate process that admits requests against a shared store, for the exactness tests.

`python -m tests.state.admitter KIND TARGET COUNT NOW GO_FILE`: opens the store (`sqlite`:
TARGET is the file; `redis`: TARGET is the URL), prints `ready`, waits for GO_FILE to exist
(so the processes start together), sends COUNT admits at once against `rpm: 10` and prints
how many were allowed.
"""

import asyncio
import sys
import time
from pathlib import Path

from proxy.state.redis import RedisStore
from proxy.state.sqlite import SqliteStore
from proxy.state.store import Store
from tests.state.stores import ask

DEADLINE = 20.0


async def admit(kind: str, target: str, count: int, now: float) -> int:
    store: Store = SqliteStore(Path(target), 5.0) if kind == "sqlite" else RedisStore(target, 5.0)
    try:
        a = ask("shared", rpm=10)
        verdicts = await asyncio.gather(*(store.admit(a, now) for _ in range(count)))
        return sum(v.allowed for v in verdicts)
    finally:
        await store.close()


def main(kind: str, target: str, count: int, now: float, go: Path) -> int:
    print("ready", flush=True)
    end = time.monotonic() + DEADLINE
    while not go.exists():  # the processes start their admits together
        if time.monotonic() > end:
            return 2
        time.sleep(0.005)
    print(asyncio.run(admit(kind, target, count, now)), flush=True)
    return 0


if __name__ == "__main__":
    kind, target, count, now, go = sys.argv[1:6]
    sys.exit(main(kind, target, int(count), float(now), Path(go)))
