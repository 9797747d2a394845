"""One set of scenarios against every store: memory, the shared SQLite file, a real Redis.

The clock is an argument (`NOW`), so every expectation is exact.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.config.governance import Budget, Limits
from proxy.state import limits
from proxy.state.store import Scope, Store, UsageFilter, UsageRow
from tests.state.conftest import RedisServer
from tests.state.stores import KINDS, NOW, ask, make_store


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    s = await make_store(request.param, tmp_path, url)
    try:
        yield s
    finally:
        await s.close()


async def test_rpm_admits_exactly_the_limit_of_concurrent_requests(store: Store) -> None:
    a = ask(rpm=10)
    verdicts = await asyncio.gather(*(store.admit(a, NOW) for _ in range(40)))
    assert sum(v.allowed for v in verdicts) == 10
    refused = [v for v in verdicts if not v.allowed]
    assert {v.reason for v in refused} == {"rpm"}
    assert all(v.retry_after == pytest.approx(6.0) for v in refused)  # one request per 6 s
    assert sorted(v.requests.remaining for v in verdicts if v.allowed and v.requests) == list(
        range(10)
    )
    assert all(v.reservation is None for v in refused)
    # the bucket refills one request every 6 s
    assert not (await store.admit(a, NOW + 5.9)).allowed
    assert (await store.admit(a, NOW + 6.0)).allowed
    assert not (await store.admit(a, NOW + 6.0)).allowed


async def test_tpm_admits_what_the_estimates_fit_under_concurrency(store: Store) -> None:
    a = ask(tpm=1000, estimate=300)
    verdicts = await asyncio.gather(*(store.admit(a, NOW) for _ in range(12)))
    assert sum(v.allowed for v in verdicts) == 3  # 3 x 300 fit in 1000; a 4th would not
    assert {v.reason for v in verdicts if not v.allowed} == {"tpm"}


async def test_refused_requests_take_nothing(store: Store) -> None:
    a = ask(rpm=2, tpm=100, estimate=60)
    first = await store.admit(a, NOW)
    assert first.allowed and first.tokens is not None and first.tokens.remaining == 40
    second = await store.admit(a, NOW)  # 40 tokens left < 60: refused on tpm
    assert (second.allowed, second.reason) == (False, "tpm")
    assert second.requests is not None and second.requests.remaining == 1  # untouched
    third = await store.admit(ask(rpm=2, tpm=100, estimate=40), NOW)
    assert third.allowed and third.requests is not None and third.requests.remaining == 0


async def test_token_reservation_is_reconciled_with_real_usage(store: Store) -> None:
    a = ask(tpm=1000, estimate=400)
    v1, v2 = await store.admit(a, NOW), await store.admit(a, NOW)
    assert v1.tokens is not None and v2.tokens is not None
    assert (v1.tokens.remaining, v2.tokens.remaining) == (600, 200)
    assert (await store.admit(a, NOW)).reason == "tpm"
    assert v1.reservation is not None and v2.reservation is not None
    await store.settle(v1.reservation, 100, 0.0, NOW)  # used 300 fewer than reserved
    v4 = await store.admit(a, NOW)
    assert v4.allowed and v4.tokens is not None and v4.tokens.remaining == 100
    await store.settle(v2.reservation, 900, 0.0, NOW)  # used 500 more: the bucket owes 400
    v5 = await store.admit(a, NOW)
    assert (v5.allowed, v5.reason) == (False, "tpm")
    assert v5.retry_after == pytest.approx((400 + 400) * 60 / 1000)
    assert v5.tokens is not None and v5.tokens.remaining == 0


async def test_max_parallel_holds_slots_until_settled_or_the_lease_ends(store: Store) -> None:
    a = ask(max_parallel=2, lease=30.0)
    verdicts = await asyncio.gather(*(store.admit(a, NOW) for _ in range(6)))
    held = [v for v in verdicts if v.allowed]
    assert len(held) == 2
    assert {v.reason for v in verdicts if not v.allowed} == {"max_parallel"}
    assert held[0].reservation is not None
    await store.settle(held[0].reservation, 0, 0.0, NOW + 1)
    assert (await store.admit(a, NOW + 1)).allowed
    assert not (await store.admit(a, NOW + 1)).allowed
    # a slot never settled (its worker died) frees itself when its lease ends
    assert (await store.admit(a, NOW + 31)).allowed


async def test_per_model_limits_on_a_key_are_their_own_counters(store: Store) -> None:
    per_model = Scope("team|gpt-*", Limits(rpm=2))
    gpt = ask(rpm=100, extra=(per_model,))
    results = [(await store.admit(gpt, NOW)).allowed for _ in range(3)]
    assert results == [True, True, False]
    other = ask(rpm=100)  # another model of the same key: only the key's own limit
    verdict = await store.admit(other, NOW)
    assert verdict.allowed and verdict.requests is not None
    assert verdict.requests.remaining == 100 - 3


async def test_budget_refuses_once_spend_reaches_it_and_resets_next_period(store: Store) -> None:
    a = ask(budget=Budget(usd=1.0, period="1d"))
    v = await store.admit(a, NOW)
    assert v.allowed and v.budget is not None and v.budget.spent == 0
    assert v.reservation is not None
    await store.settle(v.reservation, 0, 0.6, NOW)
    v = await store.admit(a, NOW + 1)  # 0.60 spent of 1.00: a request may still cross it
    assert v.allowed and v.reservation is not None
    await store.settle(v.reservation, 0, 0.6, NOW + 2)
    refused = await store.admit(a, NOW + 3)
    assert (refused.allowed, refused.reason) == (False, "budget")
    assert refused.budget is not None and refused.budget.spent == pytest.approx(1.2)
    midnight = (limits.day_number(NOW) + 1) * 86400
    assert refused.budget.resets_at == midnight
    assert refused.retry_after == pytest.approx(midnight - NOW - 3)
    assert (await store.admit(a, midnight)).allowed


async def test_ledger_sums_batches_and_filters(store: Store) -> None:
    def row(key: str, alias: str, day: str, n: int) -> UsageRow:
        return UsageRow(
            key=key, alias=alias, backend="b", day=day, requests=n, input_tokens=10 * n,
            output_tokens=20 * n, cached_tokens=n, cost=0.5 * n, errors=n // 2,
        )  # fmt: skip

    await store.record([row("a", "m1", "2027-01-14", 1), row("b", "m2", "2027-01-15", 2)])
    await store.record([row("a", "m1", "2027-01-14", 3), row("a", "m2", "2027-01-16", 1)])
    every = await store.usage(UsageFilter())
    assert len(every) == 3
    a_m1 = next(r for r in every if (r.key, r.alias) == ("a", "m1"))
    assert (a_m1.requests, a_m1.input_tokens, a_m1.output_tokens) == (4, 40, 80)
    assert (a_m1.cached_tokens, a_m1.errors) == (4, 0 + 1)
    assert a_m1.cost == pytest.approx(2.0)
    assert {r.alias for r in await store.usage(UsageFilter(key="a"))} == {"m1", "m2"}
    assert [r.key for r in await store.usage(UsageFilter(alias="m2", first="2027-01-16"))] == ["a"]
    window = await store.usage(UsageFilter(first="2027-01-15", last="2027-01-15"))
    assert [(r.key, r.requests) for r in window] == [("b", 2)]


async def test_redis_over_a_unix_socket(redis_server: RedisServer) -> None:
    from proxy.state.redis import RedisStore

    store = RedisStore(f"unix://{redis_server.socket}?db=1")
    try:
        verdicts = [await store.admit(ask(rpm=1), NOW) for _ in range(2)]
        assert [v.allowed for v in verdicts] == [True, False]
    finally:
        await store.close()
