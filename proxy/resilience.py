"""Circuit breakers, failure classes and Retry-After: the decisions, given `now`.

Pure: no clock, no I/O. A circuit is closed until `failure_threshold` consecutive failures,
then open until its reopen time, then lets exactly one probe through (half-open); the probe's
success closes it, its failure opens it again. A 429/529 with Retry-After cools the target for
exactly that long, whatever the count.
"""

import email.utils
from collections.abc import Mapping
from typing import Literal

State = Literal["closed", "open", "half_open"]

# Statuses that count against the target and move on to the next candidate. Everything else
# >= 400 is the client's problem and is returned as the upstream sent it.
FAILOVER_STATUSES = frozenset({401, 403, 404, 408, 409, 425, 429, 500, 502, 503, 504, 529})


MAX_RETRY_AFTER = 86400.0  # a day: an upstream can't park a target longer than that


def is_failover(status: int) -> bool:
    return status in FAILOVER_STATUSES or status >= 500


class Circuit:
    """Breaker state for one target (backend + provider model)."""

    __slots__ = ("failures", "in_flight", "last_error", "open_until", "probing", "ttfb")

    def __init__(self) -> None:
        self.failures = 0  # consecutive
        self.open_until = 0.0  # monotonic time; 0: never opened
        self.probing = False  # a half-open probe is in flight
        self.in_flight = 0
        self.last_error: str | None = None
        self.ttfb: float | None = None  # EWMA of time to first byte, seconds

    def state(self, now: float) -> State:
        if self.open_until == 0.0:
            return "closed"
        return "open" if now < self.open_until or self.probing else "half_open"

    def usable(self, now: float) -> bool:
        """May a request be sent now? In half-open state only one probe at a time."""
        return self.open_until == 0.0 or (now >= self.open_until and not self.probing)

    def begin(self, now: float) -> bool:
        """Count an attempt in; True when it is the half-open probe."""
        self.in_flight += 1
        if self.open_until != 0.0 and now >= self.open_until and not self.probing:
            self.probing = True
            return True
        return False

    def succeed(self, ttfb: float | None = None) -> None:
        # Any success proves the target healthy, probe or not: close the circuit.
        self.in_flight -= 1
        self.failures = 0
        self.open_until = 0.0
        self.probing = False
        if ttfb is not None:
            self.ttfb = ttfb if self.ttfb is None else 0.8 * self.ttfb + 0.2 * ttfb

    def fail(
        self,
        now: float,
        error: str,
        threshold: int,
        cooldown: float,
        retry_after: float | None = None,
        probe: bool = False,
    ) -> None:
        self.in_flight -= 1
        self.failures += 1
        self.last_error = error
        if retry_after is not None and retry_after > 0:
            self.open_until = now + retry_after  # the upstream said how long: exactly that
        elif probe or self.failures >= threshold:
            self.open_until = now + cooldown
        if probe:
            self.probing = False

    def release(self, probe: bool = False) -> None:
        """The attempt ended without a verdict (client went away): free its slot."""
        self.in_flight -= 1
        if probe:
            self.probing = False


def retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = -1.0
        if value > 0:
            return min(value, MAX_RETRY_AFTER)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now_epoch
    return min(seconds, MAX_RETRY_AFTER) if seconds > 0 else None
