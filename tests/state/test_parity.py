"""The Lua rules in Redis decide exactly as the Python rules: random request sequences give the
same verdicts from the memory, SQLite and Redis stores."""

import asyncio
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.governance import Budget, Limits
from proxy.state.memory import MemoryStore
from proxy.state.redis import RedisStore
from proxy.state.sqlite import SqliteStore
from proxy.state.store import Reservation, Scope, Store, Verdict
from tests.state.conftest import RedisServer
from tests.state.stores import NOW, ask

_examples = itertools.count()
steps = st.lists(
    st.tuples(
        st.sampled_from(["admit", "settle"]),
        st.integers(0, 400),  # an estimate, or the tokens really used
        st.sampled_from([0.0, 0.5, 3.0, 20.0]),  # seconds that pass first
    ),
    min_size=1,
    max_size=25,
)


def _shape(v: Verdict) -> tuple[object, ...]:
    def q(quota: object) -> object:
        return None if quota is None else (quota[0], quota[1], round(quota[2], 6))  # type: ignore[index]

    spent = None if v.budget is None else round(v.budget.spent, 9)
    return (v.allowed, v.reason, round(v.retry_after, 6), q(v.requests), q(v.tokens), spent)


async def _play(store: Store, n: int, plan: list[tuple[str, int, float]]) -> list[object]:
    per_model = Scope(f"p{n}|m", Limits(rpm=4, tpm=600))
    now, held, out = NOW, list[Reservation](), list[object]()
    for op, amount, dt in plan:
        now += dt
        if op == "admit":
            own = ask(
                f"p{n}", rpm=6, tpm=900, max_parallel=3, estimate=amount, extra=(per_model,),
                budget=Budget(usd=0.5, period="1d"),
            )  # fmt: skip
            v = await store.admit(own, now)
            out.append(_shape(v))
            if v.reservation is not None:
                held.append(v.reservation)
        elif held:
            await store.settle(held.pop(0), amount, amount / 2000, now)  # 400 tokens: $0.20
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
def test_every_store_decides_alike(
    redis_server: RedisServer, tmp_path: Path, plan: list[tuple[str, int, float]]
) -> None:
    n = next(_examples)

    async def play_all() -> list[list[object]]:
        stores: list[Store] = [
            MemoryStore(),
            SqliteStore(tmp_path / f"parity-{n}.sqlite3"),
            RedisStore(redis_server.url),
        ]
        try:
            return [await _play(s, n, plan) for s in stores]
        finally:
            for s in stores:
                await s.close()

    memory, sqlite, redis = asyncio.run(play_all())
    assert memory == sqlite
    assert memory == redis


@pytest.mark.parametrize("n", [10_000])
async def test_the_parity_plan_exercises_refusals(n: int) -> None:
    plan = [("admit", 300, 0.0)] * 8 + [("settle", 0, 0.0)] * 2 + [("admit", 100, 0.5)] * 3
    shapes = await _play(MemoryStore(), n, plan)
    reasons = {s[1] for s in shapes}  # type: ignore[index]
    assert {"tpm", "max_parallel"} <= reasons or {"tpm", "rpm"} <= reasons
    budget_plan = [("admit", 0, 0.0), ("settle", 1000, 0.0), ("admit", 0, 0.0)]
    assert [s[1] for s in await _play(MemoryStore(), n + 1, budget_plan)] == ["", "budget"]  # type: ignore[index]
