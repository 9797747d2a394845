"""The pure rules: limit decisions, budget periods, rate-limit headers, refusals, prices."""

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import ClientKey
from proxy.config.governance import Budget, Limits, Price
from proxy.pricing import cost, price_for
from proxy.state import governance, limits
from proxy.state.limits import Bucket, ScopeState
from proxy.state.store import Quota, Scope, Verdict
from tests.state.stores import NOW, ask

FRESH = ScopeState(None, None, 0)


def run(a_rpm: int, n: int) -> int:
    """Admit `n` requests at one instant against `rpm`, the counters kept like a store does."""
    state, allowed = FRESH, 0
    for i in range(n):
        d = limits.decide(ask(rpm=a_rpm), [state], 0.0, 0.0, NOW, str(i))
        if d.verdict.allowed:
            allowed += 1
            state = ScopeState(d.requests[0], None, 0)
    return allowed


@given(st.integers(1, 200), st.integers(0, 300))
def test_a_burst_gets_exactly_the_limit(rpm: int, n: int) -> None:
    assert run(rpm, n) == min(rpm, n)


@given(
    st.integers(1, 10_000),
    st.floats(-10_000, 10_000),
    st.floats(0, 1e6),
    st.floats(0, 1e6),
)
def test_a_bucket_refills_at_its_rate_and_never_past_full(
    cap: int, left: float, at: float, later: float
) -> None:
    left = min(left, cap)
    got = limits.level(Bucket(left, at), cap, at + later)
    assert got <= cap
    assert got == pytest.approx(min(cap, left + later * cap / 60), rel=1e-9, abs=1e-6)
    assert limits.level(Bucket(left, at), cap, at - 5) == pytest.approx(left)  # no clock rewind


@given(
    st.integers(1, 1000),
    st.integers(0, 2000),
    st.integers(0, 5000),
    st.integers(0, 5000),
)
def test_reconcile_charges_the_difference_within_one_minute_of_debt(
    tpm: int, left: int, estimate: int, used: int
) -> None:
    bucket = Bucket(float(min(left, tpm)), NOW)
    got = limits.reconcile(bucket, tpm, estimate, used, NOW)
    assert got.level == pytest.approx(max(-tpm, min(tpm, min(left, tpm) + estimate - used)))


@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=3),
    st.integers(0, 500),
    st.floats(0, 5),
    st.floats(0, 5),
)
def test_a_refusal_changes_nothing_and_an_admission_takes_from_every_scope(
    parallel: list[int], estimate: int, budget: float, spent: float
) -> None:
    scopes = tuple(
        Scope(f"s{i}", Limits(rpm=5, tpm=300, max_parallel=2)) for i in range(len(parallel))
    )
    a = ask(estimate=estimate, budget=Budget(usd=budget), extra=scopes)
    states = [ScopeState(None, None, p) for p in parallel]
    d = limits.decide(a, states, spent, NOW + 100, NOW, "r")
    expect = all(p < 2 for p in parallel) and spent < budget
    assert d.verdict.allowed == expect
    if not expect:
        assert d.requests == d.tokens == (None,) * len(scopes)
        assert d.verdict.reservation is None and d.verdict.retry_after > 0
    else:
        assert all(b is not None and b.level == 4 for b in d.requests)
        assert all(b is not None and b.level == 300 - estimate for b in d.tokens)
        assert d.verdict.reservation is not None
        assert d.verdict.reservation.parallel_scopes == tuple(s.id for s in scopes)


def test_an_estimate_larger_than_the_bucket_waits_for_a_full_one() -> None:
    a = ask(tpm=100, estimate=500)
    assert limits.decide(a, [FRESH], 0, 0, NOW, "r").verdict.allowed
    half = ScopeState(None, Bucket(50.0, NOW), 0)
    v = limits.decide(a, [half], 0, 0, NOW, "r").verdict
    assert (v.allowed, v.reason) == (False, "tpm")
    assert v.retry_after == pytest.approx(30.0)


@given(st.floats(0, 4e9), st.sampled_from(["1d", "7d", "30d", "month"]))
def test_a_period_holds_now_and_starts_where_it_should(now: float, period: str) -> None:
    first, end = limits.period_days(period, now)  # type: ignore[arg-type]
    today = limits.day_number(now)
    assert first <= today < end
    start = datetime.date(1970, 1, 1) + datetime.timedelta(days=first)
    if period == "1d":
        assert end - first == 1
    elif period == "7d":
        assert end - first == 7 and start.weekday() == 0
    elif period == "30d":
        assert end - first == 30 and first % 30 == 0
    else:
        assert start.day == 1 and 28 <= end - first <= 31
    assert limits.day_of(limits.day_text(today)) == today


def test_scopes_are_the_keys_own_then_the_first_matching_model_entry() -> None:
    key = ClientKey(
        name="team",
        digest=b"x",
        rpm=100,
        limits=(("gpt-4o", Limits(rpm=1)), ("gpt-*", Limits(tpm=5)), ("*", Limits(rpm=9))),
    )
    assert governance.scopes_for(key, "gpt-4o") == (
        Scope("team", Limits(rpm=100)),
        Scope("team|gpt-4o", Limits(rpm=1)),
    )
    assert governance.scopes_for(key, "gpt-3")[1] == Scope("team|gpt-*", Limits(tpm=5))
    bare = ClientKey(name="bare", digest=b"y")
    assert governance.ask_for(bare, "m", 10, 60) is None  # nothing to ask the store
    budgeted = ClientKey(name="b", digest=b"z", budget=Budget(usd=5))
    got = governance.ask_for(budgeted, "m", 10, 60)
    assert got is not None and got.scopes == () and got.budget == Budget(usd=5)


def test_headers_and_refusals_are_what_clients_read() -> None:
    v = Verdict(False, "rpm", 5.2, Quota(10, 0, 59.5), Quota(1000, 250, 0.25), None, None)
    assert governance.headers(v) == [
        (b"x-ratelimit-limit-requests", b"10"),
        (b"x-ratelimit-remaining-requests", b"0"),
        (b"x-ratelimit-reset-requests", b"59.5s"),
        (b"x-ratelimit-limit-tokens", b"1000"),
        (b"x-ratelimit-remaining-tokens", b"250"),
        (b"x-ratelimit-reset-tokens", b"250ms"),
    ]
    r = governance.refusal(v, "team")
    assert (r.status, r.retry_after) == (429, 6)
    assert "team" in r.message and "rpm" in r.message and "6s" in r.message
    assert (b"retry-after", b"6") in r.headers and (b"retry-after-ms", b"5200") in r.headers
    assert governance.reset_text(360) == "6m0s"


def test_the_error_a_refused_request_raises() -> None:
    from proxy import errors

    err = governance.error_for(Verdict(False, "tpm", 0.2, tokens=Quota(10, 0, 1.0)), "team")
    assert isinstance(err, errors.RateLimited) and err.status == 429
    assert err.code == "rate_limit_exceeded"
    assert ("retry-after", "1") in err.headers and ("retry-after-ms", "200") in err.headers
    assert ("x-ratelimit-remaining-tokens", "0") in err.headers
    down = governance.error_for(Verdict(False, "state", 1.0), "team")
    assert (down.status, down.code) == (503, "state_unavailable")


def test_a_budget_refusal_names_the_budget_the_spend_and_the_reset() -> None:
    from proxy.state.store import BudgetState

    midnight = (limits.day_number(NOW) + 1) * 86400.0
    v = Verdict(False, "budget", midnight - NOW, budget=BudgetState(50.0, 50.4, midnight))
    r = governance.refusal(v, "team")
    assert r.status == 429
    assert "$50.40 of $50.00" in r.message and "2027-01-16T00:00:00Z" in r.message
    closed = governance.refusal(Verdict(False, "state", 1.0), "team")
    assert closed.status == 503 and "state_failure" in closed.message


def test_cost_uses_the_override_first_and_charges_cached_input_apart() -> None:
    price = Price(input=2.5, output=10.0, cached_input=1.25)
    assert cost(price, 1_000_000, 100_000) == pytest.approx(3.5)
    assert cost(price, 1_000_000, 0, cached_tokens=400_000) == pytest.approx(1.5 + 0.5)
    assert cost(Price(input=2.0), 1000, 0, cached_tokens=1000) == pytest.approx(0.002)
    assert cost(None, 10, 10) is None and cost(price, None, None) is None
    overrides = {"azure/gpt4o": (1.0, 2.0), "gpt-4o": (3.0, 4.0)}
    assert price_for(price, "azure", "gpt4o", overrides) == Price(input=1.0, output=2.0)
    assert price_for(price, "openai", "gpt-4o", overrides) == Price(input=3.0, output=4.0)
    assert price_for(price, "openai", "other", overrides) is price


@given(st.integers(0, 10**7), st.none() | st.integers(-1, 10**5))
def test_the_estimate_grows_with_the_body_and_the_allowed_output(size: int, mx: int | None) -> None:
    got = governance.estimate_tokens(size, mx)
    assert got >= size // 4
    assert got == size // 4 + (governance.DEFAULT_OUTPUT if mx is None or mx < 0 else mx)


def test_max_tokens_is_read_from_the_split_body() -> None:
    import msgspec

    def split(body: dict[str, object]) -> dict[str, msgspec.Raw]:
        return msgspec.json.decode(msgspec.json.encode(body), type=dict[str, msgspec.Raw])

    assert governance.max_tokens_of(split({"max_tokens": 50})) == 50
    assert governance.max_tokens_of(split({"max_completion_tokens": 7, "max_tokens": 50})) == 7
    assert governance.max_tokens_of(split({"max_tokens": None})) is None
    assert governance.max_tokens_of(split({"model": "m"})) is None
