"""proxy.resilience: the circuit breaker, failover classes and Retry-After parsing."""

import email.utils
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from proxy.resilience import MAX_RETRY_AFTER, Circuit, is_failover, retry_after

T0 = 1000.0  # a monotonic clock reading; never 0.0, which the circuit reads as "never opened"
THRESHOLD = 3
COOLDOWN = 30.0


def opened(now: float = T0) -> Circuit:
    """A circuit that has just opened after THRESHOLD failures at `now`."""
    c = Circuit()
    for _ in range(THRESHOLD):
        c.begin(now)
        c.fail(now, "boom", THRESHOLD, COOLDOWN)
    return c


# --- Circuit: examples ----------------------------------------------------------------------


def test_new_circuit_is_closed_and_usable() -> None:
    c = Circuit()
    assert c.state(T0) == "closed"
    assert c.usable(T0)
    assert c.in_flight == 0


def test_opens_after_threshold_consecutive_failures() -> None:
    c = Circuit()
    for i in range(THRESHOLD - 1):
        c.begin(T0)
        c.fail(T0, f"err {i}", THRESHOLD, COOLDOWN)
        assert c.state(T0) == "closed"
        assert c.usable(T0)
    c.begin(T0)
    c.fail(T0, "last straw", THRESHOLD, COOLDOWN)
    assert c.state(T0) == "open"
    assert not c.usable(T0)
    assert c.last_error == "last straw"
    assert c.in_flight == 0


def test_a_success_resets_the_consecutive_count() -> None:
    c = Circuit()
    for _ in range(THRESHOLD - 1):
        c.begin(T0)
        c.fail(T0, "e", THRESHOLD, COOLDOWN)
    c.begin(T0)
    c.succeed()
    for _ in range(THRESHOLD - 1):
        c.begin(T0)
        c.fail(T0, "e", THRESHOLD, COOLDOWN)
    assert c.state(T0) == "closed"


def test_half_open_after_cooldown_lets_exactly_one_probe_through() -> None:
    c = opened()
    assert c.state(T0 + COOLDOWN - 0.001) == "open"
    assert not c.usable(T0 + COOLDOWN - 0.001)
    now = T0 + COOLDOWN
    assert c.state(now) == "half_open"
    assert c.usable(now)
    c.begin(now)  # the probe
    assert not c.usable(now)
    assert not c.usable(now + 10 * COOLDOWN)  # however long the probe takes
    assert c.state(now) == "open"


def test_probe_success_closes() -> None:
    c = opened()
    c.begin(T0 + COOLDOWN)
    c.succeed(ttfb=0.25)
    assert c.state(T0 + COOLDOWN) == "closed"
    assert c.usable(T0 + COOLDOWN)
    assert c.failures == 0
    assert c.ttfb == 0.25


def test_probe_failure_reopens_for_a_full_cooldown() -> None:
    c = opened()
    now = T0 + COOLDOWN + 5
    probe = c.begin(now)
    assert probe
    c.fail(now, "still down", THRESHOLD, COOLDOWN, probe=probe)
    assert c.state(now + COOLDOWN - 0.001) == "open"
    assert not c.usable(now + COOLDOWN - 0.001)
    assert c.state(now + COOLDOWN) == "half_open"
    assert c.usable(now + COOLDOWN)


def test_probe_failure_reopens_even_with_a_threshold_not_reached_again() -> None:
    # The count is not reset by opening, but a probe failure must reopen regardless.
    c = Circuit()
    c.begin(T0)
    c.fail(T0, "429", threshold=100, cooldown=COOLDOWN, retry_after=5.0)
    assert c.state(T0 + 5) == "half_open"
    c.begin(T0 + 5)
    c.fail(T0 + 5, "again", threshold=100, cooldown=COOLDOWN)
    assert c.state(T0 + 5 + COOLDOWN - 0.001) == "open"


def test_retry_after_cools_for_exactly_that_long_whatever_the_count() -> None:
    c = Circuit()
    c.begin(T0)
    c.fail(T0, "429", THRESHOLD, COOLDOWN, retry_after=7.5)
    assert c.failures == 1
    assert c.state(T0 + 7.4999) == "open"
    assert c.state(T0 + 7.5) == "half_open"


def test_retry_after_overrides_a_longer_cooldown() -> None:
    c = Circuit()
    for _ in range(THRESHOLD):
        c.begin(T0)
        c.fail(T0, "429", THRESHOLD, cooldown=600.0, retry_after=2.0)
    assert c.state(T0 + 2.0) == "half_open"


@pytest.mark.parametrize("ra", [0.0, -3.0, None])
def test_no_positive_retry_after_falls_back_to_the_threshold_rule(ra: float | None) -> None:
    c = Circuit()
    c.begin(T0)
    c.fail(T0, "e", THRESHOLD, COOLDOWN, retry_after=ra)
    assert c.state(T0) == "closed"


def test_release_frees_the_probe_slot_without_a_verdict() -> None:
    c = opened()
    now = T0 + COOLDOWN
    probe = c.begin(now)
    c.release(probe)
    assert c.in_flight == 0
    assert c.state(now) == "half_open"
    assert c.usable(now)
    assert c.failures == THRESHOLD  # no verdict: nothing counted either way


def test_in_flight_counts_concurrent_attempts() -> None:
    c = Circuit()
    for _ in range(3):
        c.begin(T0)
    assert c.in_flight == 3
    c.succeed()
    c.fail(T0, "e", THRESHOLD, COOLDOWN)
    c.release()
    assert c.in_flight == 0


def test_ttfb_is_a_moving_average() -> None:
    c = Circuit()
    c.begin(T0)
    c.succeed(ttfb=1.0)
    c.begin(T0)
    c.succeed(ttfb=2.0)
    assert c.ttfb == pytest.approx(1.2)
    c.begin(T0)
    c.succeed()  # no measurement: unchanged
    assert c.ttfb == pytest.approx(1.2)


def test_release_of_a_stale_attempt_keeps_the_probe_exclusive() -> None:
    c = Circuit()
    c.begin(T0)  # a slow attempt started while closed
    for _ in range(THRESHOLD):
        c.begin(T0)
        c.fail(T0, "e", THRESHOLD, COOLDOWN)
    now = T0 + COOLDOWN
    c.begin(now)  # the probe
    assert not c.usable(now)
    c.release()  # the slow attempt's client went away
    assert not c.usable(now)  # the probe is still in flight


def test_failure_of_a_stale_attempt_keeps_the_probe_exclusive() -> None:
    c = Circuit()
    c.begin(T0)  # a slow attempt started while closed
    c.begin(T0)
    c.fail(T0, "429", THRESHOLD, COOLDOWN, retry_after=5.0)
    now = T0 + 5.0
    c.begin(now)  # the probe
    c.fail(now + 1, "slow one timed out", THRESHOLD, COOLDOWN)
    assert not c.usable(now + 1)
    # The probe is still out: no second probe however long it takes.
    assert not c.usable(now + 1 + COOLDOWN)


# --- Circuit: model-based --------------------------------------------------------------------


@dataclass
class Reference:
    """The documented behaviour, written plainly: who is the probe is tracked by identity."""

    threshold: int
    cooldown: float
    failures: int = 0
    open_until: float | None = None  # None: closed
    probe: int | None = None  # the attempt that is the half-open probe
    outstanding: set[int] = field(default_factory=set)

    def usable(self, now: float) -> bool:
        if self.open_until is None:
            return True
        return now >= self.open_until and self.probe is None

    def state(self, now: float) -> str:
        if self.open_until is None:
            return "closed"
        if now < self.open_until or self.probe is not None:
            return "open"
        return "half_open"

    def begin(self, attempt: int, now: float) -> None:
        self.outstanding.add(attempt)
        if self.open_until is not None and now >= self.open_until:
            self.probe = attempt

    def succeed(self, attempt: int) -> None:
        self.outstanding.discard(attempt)
        self.failures = 0
        self.open_until = None
        self.probe = None

    def fail(self, attempt: int, now: float, ra: float | None) -> None:
        self.outstanding.discard(attempt)
        self.failures += 1
        was_probe = self.probe == attempt
        if ra is not None and ra > 0:
            self.open_until = now + ra
        elif was_probe or self.failures >= self.threshold:
            self.open_until = now + self.cooldown
        if was_probe:
            self.probe = None

    def release(self, attempt: int) -> None:
        self.outstanding.discard(attempt)
        if self.probe == attempt:
            self.probe = None


DT = st.sampled_from([0.0, 0.0, 0.3, 1.0, 6.0, 40.0])


class CircuitMachine(RuleBasedStateMachine):
    attempts = Bundle("attempts")

    def __init__(self) -> None:
        super().__init__()
        self.circuit = Circuit()
        self.ref = Reference(THRESHOLD, COOLDOWN)
        self.now = T0
        self.next_id = 0
        self.probe_of: dict[int, bool] = {}  # what `begin` said about each attempt

    @initialize(threshold=st.integers(1, 4), cooldown=st.sampled_from([0.5, 5.0, 30.0]))
    def configure(self, threshold: int, cooldown: float) -> None:
        self.ref.threshold = threshold
        self.ref.cooldown = cooldown

    def may_end(self, attempt: int) -> bool:
        return True  # every interleaving is compared, stale attempts ending included

    # Every step may first let time pass (a separate tick rule would crowd out the others).
    # The circuit never sees a clock: `now` is whatever the step says it is.

    @rule(target=attempts, dt=DT)
    def begin(self, dt: float) -> int:
        self.now += dt
        if not self.circuit.usable(self.now):
            return -1  # forward.py skips a target that is not usable
        attempt = self.next_id
        self.next_id += 1
        self.probe_of[attempt] = self.circuit.begin(self.now)
        self.ref.begin(attempt, self.now)
        return attempt

    @rule(attempt=consumes(attempts), dt=DT, ttfb=st.none() | st.floats(0.0, 10.0))
    def succeed(self, attempt: int, dt: float, ttfb: float | None) -> None:
        self.now += dt
        if attempt >= 0:
            self.circuit.succeed(ttfb)
            self.ref.succeed(attempt)

    @rule(
        attempt=consumes(attempts),
        dt=DT,
        ra=st.none() | st.sampled_from([-1.0, 0.0, 0.5, 2.0, 60.0]),
    )
    def fail(self, attempt: int, dt: float, ra: float | None) -> None:
        self.now += dt
        if attempt >= 0 and self.may_end(attempt):
            probe = self.probe_of.get(attempt, False)
            self.circuit.fail(self.now, "e", self.ref.threshold, self.ref.cooldown, ra, probe)
            self.ref.fail(attempt, self.now, ra)

    @rule(attempt=consumes(attempts), dt=DT)
    def release(self, attempt: int, dt: float) -> None:
        self.now += dt
        if attempt >= 0 and self.may_end(attempt):
            self.circuit.release(self.probe_of.get(attempt, False))
            self.ref.release(attempt)

    @invariant()
    def agrees_with_reference(self) -> None:
        for dt in (0.0, 0.25, 1.0, 10.0):
            at = self.now + dt
            assert self.circuit.state(at) == self.ref.state(at)
            assert self.circuit.usable(at) == self.ref.usable(at)
        assert self.circuit.failures == self.ref.failures
        assert self.circuit.in_flight == len(self.ref.outstanding)

    @invariant()
    def at_most_one_probe(self) -> None:
        if self.ref.probe is not None:
            assert not self.circuit.usable(self.now)
            assert self.circuit.state(self.now) == "open"


CircuitMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestCircuitStateMachine = CircuitMachine.TestCase


# --- is_failover -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 408, 429, 500, 502, 503, 504, 529, 599])
def test_failover_statuses(status: int) -> None:
    assert is_failover(status)


@pytest.mark.parametrize("status", [200, 201, 204, 400, 402, 405, 413, 415, 422])
def test_client_errors_and_successes_do_not_fail_over(status: int) -> None:
    assert not is_failover(status)


@given(st.integers(500, 599))
def test_every_5xx_fails_over(status: int) -> None:
    assert is_failover(status)


# --- retry_after -----------------------------------------------------------------------------

NOW = 1_700_000_000.0


def test_retry_after_ms_wins_and_is_in_seconds() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}, NOW) == 1.5


def test_retry_after_seconds() -> None:
    assert retry_after({"retry-after": "7"}, NOW) == 7.0
    assert retry_after({"retry-after": "2.5"}, NOW) == 2.5


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(NOW + 30, usegmt=True)  # "Tue, 14 Nov 2023 22:13:50 GMT"
    assert retry_after({"retry-after": when}, NOW) == 30.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"retry-after": "soon"},
        {"retry-after": ""},
        {"retry-after": "0"},
        {"retry-after": "-5"},
        {"retry-after": "nan"},
        {"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)},
        {"retry-after": "Mon, 32 Jan 2024 99:00:00 GMT"},
        {"retry-after-ms": "0"},
        {"retry-after-ms": "later"},
    ],
)
def test_retry_after_none_when_absent_garbage_or_not_positive(headers: dict[str, str]) -> None:
    assert retry_after(headers, NOW) is None


@pytest.mark.parametrize("ms", ["0", "-100", "junk", "nan"])
def test_unusable_retry_after_ms_falls_back_to_retry_after(ms: str) -> None:
    assert retry_after({"retry-after-ms": ms, "retry-after": "3"}, NOW) == 3.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "999999999"},
        {"retry-after": "inf"},
        {"retry-after-ms": str(10**12)},
        {"retry-after": email.utils.formatdate(NOW + 10 * 86400, usegmt=True)},
    ],
)
def test_retry_after_is_capped(headers: dict[str, str]) -> None:
    assert retry_after(headers, NOW) == MAX_RETRY_AFTER


@given(st.text(max_size=40), st.text(max_size=40))
@settings(max_examples=300)
def test_retry_after_never_raises_and_stays_in_range(a: str, b: str) -> None:
    for headers in (
        {"retry-after": a},
        {"retry-after-ms": a},
        {"retry-after-ms": a, "retry-after": b},
    ):
        got = retry_after(headers, NOW)
        assert got is None or 0 < got <= MAX_RETRY_AFTER


@given(st.integers(1, 86400))
def test_retry_after_seconds_and_dates_agree(seconds: int) -> None:
    by_seconds = retry_after({"retry-after": str(seconds)}, NOW)
    by_date = retry_after({"retry-after": email.utils.formatdate(NOW + seconds, usegmt=True)}, NOW)
    assert by_seconds == by_date == float(seconds)
