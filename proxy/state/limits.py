"""The limit decisions, pure: given the counters' state and `now`, admit or refuse.

Request and token rates are token buckets holding one minute's worth (`rpm`, `tpm`) and
refilling continuously, so a burst of a whole minute's quota is allowed and then the rate;
decisions are exact (no window approximation): of 40 requests at once against `rpm: 10`,
exactly 10 pass. Token limits take the request's estimate at admission and give back or
charge the difference when the real usage is known (a bucket may go into debt, at most one
minute's worth). Budgets compare the spend of the key's current period with its USD amount.

Invariant: a refused request changes nothing; an admitted one takes a request from every
request bucket, the estimate from every token bucket and a slot from every parallel limit
of its scopes. The memory and SQLite stores call these functions; the Redis store runs the
same rules in Lua (tests run one scenario against every store).
"""

import datetime
import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

from proxy.state.store import (
    Ask,
    BudgetState,
    Period,
    Quota,
    Reason,
    Reservation,
    Verdict,
)

MINUTE = 60.0
DAY = 86400


class Bucket(NamedTuple):
    level: float  # what is left; may be negative (token debt)
    at: float  # epoch seconds of that level


class ScopeState(NamedTuple):
    requests: Bucket | None  # None: never used, i.e. full
    tokens: Bucket | None
    parallel: int  # live slots held now


class Decision(NamedTuple):
    verdict: Verdict
    requests: tuple[Bucket | None, ...]  # the new request buckets, per scope (None: untouched)
    tokens: tuple[Bucket | None, ...]


def level(bucket: Bucket | None, capacity: int, now: float) -> float:
    """The bucket's level at `now`: refilled at `capacity` per minute, never above it."""
    if bucket is None:
        return float(capacity)
    return min(float(capacity), bucket.level + max(0.0, now - bucket.at) * capacity / MINUTE)


def quota(capacity: int, left: float) -> Quota:
    reset = max(0.0, (capacity - left) * MINUTE / capacity)
    return Quota(capacity, max(0, math.floor(left)), reset)


def tighter(a: Quota | None, b: Quota) -> Quota:
    if a is None or (b.remaining, -b.reset) < (a.remaining, -a.reset):
        return b
    return a


def _worse(reason: Reason, wait: float, other: Reason, other_wait: float) -> tuple[Reason, float]:
    """The refusal to report: the one that lasts longest (the first among equals)."""
    if reason == "" or other_wait > wait:
        return other, other_wait
    return reason, wait


def decide(
    ask: Ask,
    states: Sequence[ScopeState],
    spent: float,
    resets_at: float,
    now: float,
    reservation_id: str,
) -> Decision:
    """Admit `ask` or say which limit refuses it; `spent`: the key's spend this period."""
    refusal: Reason = ""
    wait = 0.0
    req_levels: list[float | None] = []
    tok_levels: list[float | None] = []
    for scope, state in zip(ask.scopes, states, strict=True):
        lim = scope.limits
        req_levels.append(None if lim.rpm is None else level(state.requests, lim.rpm, now))
        tok_levels.append(None if lim.tpm is None else level(state.tokens, lim.tpm, now))
        r, t = req_levels[-1], tok_levels[-1]
        if lim.rpm is not None and r is not None and r < 1:
            refusal, wait = _worse(refusal, wait, "rpm", (1 - r) * MINUTE / lim.rpm)
        if lim.tpm is not None and t is not None:
            # An estimate over the whole bucket waits for a full one, rather than forever.
            need = max(1, min(ask.estimate, lim.tpm))
            if t < need:
                refusal, wait = _worse(refusal, wait, "tpm", (need - t) * MINUTE / lim.tpm)
        if lim.max_parallel is not None and state.parallel >= lim.max_parallel:
            # a slot frees when some request ends: no better guess than a second
            refusal, wait = _worse(refusal, wait, "max_parallel", 1.0)
    budget = None
    if ask.budget is not None:
        budget = BudgetState(ask.budget.usd, spent, resets_at)
        if spent >= ask.budget.usd:
            refusal, wait = _worse(refusal, wait, "budget", resets_at - now)
    allowed = refusal == ""
    take_r, take_t = (1, ask.estimate) if allowed else (0, 0)
    requests: Quota | None = None
    tokens: Quota | None = None
    new_r: list[Bucket | None] = []
    new_t: list[Bucket | None] = []
    for scope, r, t in zip(ask.scopes, req_levels, tok_levels, strict=True):
        lim = scope.limits
        if lim.rpm is not None and r is not None:
            requests = tighter(requests, quota(lim.rpm, r - take_r))
            new_r.append(Bucket(r - take_r, now) if allowed else None)
        else:
            new_r.append(None)
        if lim.tpm is not None and t is not None:
            tokens = tighter(tokens, quota(lim.tpm, t - take_t))
            new_t.append(Bucket(t - take_t, now) if allowed else None)
        else:
            new_t.append(None)
    reservation = None
    if allowed:
        reservation = Reservation(
            id=reservation_id,
            key=ask.key,
            token_scopes=tuple(
                (s.id, s.limits.tpm) for s in ask.scopes if s.limits.tpm is not None
            ),
            parallel_scopes=tuple(s.id for s in ask.scopes if s.limits.max_parallel is not None),
            estimate=ask.estimate,
        )
    verdict = Verdict(allowed, refusal, wait, requests, tokens, budget, reservation)
    return Decision(verdict, tuple(new_r), tuple(new_t))


def reconcile(bucket: Bucket | None, tpm: int, estimate: int, tokens: int, now: float) -> Bucket:
    """The token bucket once a request that reserved `estimate` really used `tokens`."""
    left = level(bucket, tpm, now) + estimate - tokens
    return Bucket(min(float(tpm), max(-float(tpm), left)), now)


# --- budget periods (UTC) -------------------------------------------------------------------


def day_number(now: float) -> int:
    """Days since 1970-01-01 UTC."""
    return int(now // DAY)


@functools.lru_cache(maxsize=64)  # every request's ledger row names its day
def day_text(number: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=number)).isoformat()


def day_of(text: str) -> int:
    return (datetime.date.fromisoformat(text) - datetime.date(1970, 1, 1)).days


def period_days(period: Period, now: float) -> tuple[int, int]:
    """The period holding `now`: its first day number and the first day after it.

    `1d` is the UTC day, `7d` the ISO week (Monday to Sunday), `30d` consecutive 30-day
    blocks counted from 1970-01-01, `month` the calendar month.
    """
    today = day_number(now)
    if period == "1d":
        return today, today + 1
    if period == "7d":
        first = today - (today + 3) % 7  # 1970-01-01 was a Thursday
        return first, first + 7
    if period == "30d":
        first = today - today % 30
        return first, first + 30
    date = datetime.date(1970, 1, 1) + datetime.timedelta(days=today)
    start = date.replace(day=1)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    epoch = datetime.date(1970, 1, 1)
    return (start - epoch).days, (end - epoch).days
