"""The governance parts of routes.yaml: state settings, key limits, budgets, prices."""

from hypothesis import given
from hypothesis import strategies as st

from proxy.config import Budget, Limits, Price, Secret, parse
from tests.unit.config_support import MINIMAL, problems, with_settings

KEYED = """\
version: 1
backends:
  demo: {type: mock}
models:
  demo:
    targets: [{backend: demo, price: {input: 2.5, output: 10, cached_input: 1.25}}]
keys:
  - name: team-a
    key: secret-a
    rpm: 600
    tpm: 200000
    max_parallel: 8
    budget: {usd: 50, period: 7d}
    limits:
      "gpt-*": {rpm: 10, max_parallel: 2}
      demo: {tpm: 1000}
"""


def test_defaults_keep_the_store_in_memory_and_fail_open() -> None:
    s = parse(MINIMAL, {}).settings
    assert (s.state, s.state_failure, s.state_timeout, s.metrics_key) == (
        "memory", "open", 0.25, None,
    )  # fmt: skip


def test_state_settings() -> None:
    text = with_settings(
        "state: ${REDIS_URL}\nstate_failure: closed\nstate_timeout: 50ms\n"
        "metrics_key: ${METRICS_KEY}"
    )
    s = parse(text, {"REDIS_URL": "rediss://:pw@cache:6380/2", "METRICS_KEY": "m"}).settings
    assert (s.state, s.state_failure, s.state_timeout) == (
        "rediss://:pw@cache:6380/2",
        "closed",
        0.05,
    )
    assert s.metrics_key == Secret("m")
    assert parse(with_settings("state: unix:///run/redis.sock"), {}).settings.state.startswith(
        "unix"
    )


def test_bad_state_settings_are_reported_without_echoing_the_url() -> None:
    found = problems(with_settings("state: http://:hunter2@cache\nstate_failure: maybe"))
    assert any("expected memory, redis://" in p for p in found)
    assert any("state_failure" in p or "'maybe'" in p for p in found)
    assert not any("hunter2" in p for p in found)


def test_key_limits_budget_and_target_price() -> None:
    config = parse(KEYED, {})
    assert config.keys is not None
    key = config.keys[0]
    assert (key.rpm, key.tpm, key.max_parallel) == (600, 200000, 8)
    assert key.budget == Budget(usd=50.0, period="7d")
    assert key.limits == (
        ("gpt-*", Limits(rpm=10, max_parallel=2)),
        ("demo", Limits(tpm=1000)),
    )
    assert config.models[0].targets[0].price == Price(input=2.5, output=10.0, cached_input=1.25)


def test_governance_problems_are_each_reported() -> None:
    text = (
        KEYED.replace("usd: 50, period: 7d", "period: fortnight")
        .replace("rpm: 10, max_parallel: 2", "rpm: 0, burst: 2")
        .replace("demo: {tpm: 1000}", "demo: {}")
        .replace("output: 10", "output: -1")
        .replace("max_parallel: 8", "max_parallel: lots")
    )
    found = problems(text)
    for fragment in [
        "budget of team-a needs usd",
        "'fortnight'",
        "unknown key 'burst'",
        "expected an integer >= 1, got 0",
        "limits for 'demo' of team-a set none of rpm, tpm, max_parallel",
        "expected a number of at least 0",
        "'lots'",
    ]:
        assert any(fragment in p for p in found), (fragment, found)


@given(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e6, allow_nan=False))
def test_any_non_negative_price_reads_back(pin: float, pout: float) -> None:
    text = MINIMAL.replace(
        "[{backend: demo}]", f"[{{backend: demo, price: {{input: {pin!r}, output: {pout!r}}}}}]"
    )
    price = parse(text, {}).models[0].targets[0].price
    assert price == Price(input=pin, output=pout)
