"""Per-key request and token rate limits (`rpm`, `tpm`), as sliding one-minute windows.

Pure: every decision takes `now`. Each window keeps two fixed-minute buckets and weighs the
previous one by how much of it still overlaps the last 60 s (the approximation nginx and
Cloudflare use): O(1) memory per key, no per-request log. Tokens are charged when a response
reports its usage, so a burst can overshoot `tpm` by at most the requests already in flight.

With several granian workers each enforces `limit / workers` (rounded up): workers share no
memory, and granian spreads connections evenly enough for that to hold in practice.
"""

import math
from typing import NamedTuple

WINDOW = 60.0


class _Window:
    __slots__ = ("current", "previous", "start")

    def __init__(self, now: float) -> None:
        self.start = now - now % WINDOW
        self.current = 0.0
        self.previous = 0.0

    def _roll(self, now: float) -> None:
        start = now - now % WINDOW
        if start == self.start:
            return
        self.previous = self.current if start - self.start == WINDOW else 0.0
        self.current = 0.0
        self.start = start

    def used(self, now: float) -> float:
        self._roll(now)
        overlap = 1.0 - (now - self.start) / WINDOW
        return self.current + self.previous * overlap

    def add(self, now: float, amount: float) -> None:
        self._roll(now)
        self.current += amount

    def wait(self, now: float, limit: float) -> float:
        """Seconds until `used` drops below `limit` (at most the rest of this window)."""
        over = self.used(now) - limit + 1
        if self.previous <= 0:
            return self.start + WINDOW - now
        # `previous` decays linearly over the window: solve previous*(1 - t/W) drops by `over`.
        return min(self.start + WINDOW - now, max(0.0, over / self.previous * WINDOW))


class Verdict(NamedTuple):
    allowed: bool
    retry_after: float  # seconds; 0 when allowed
    reason: str  # "" when allowed; else which limit


class Limiter:
    """Counts for every key this worker has seen; keys without limits are never stored."""

    def __init__(self, workers: int = 1) -> None:
        self._workers = max(1, workers)
        self._requests: dict[str, _Window] = {}
        self._tokens: dict[str, _Window] = {}

    def share(self, limit: int) -> float:
        return math.ceil(limit / self._workers)

    def admit(self, key: str, rpm: int | None, tpm: int | None, now: float) -> Verdict:
        if rpm is not None:
            window = self._requests.get(key)
            if window is None:
                window = self._requests[key] = _Window(now)
            share = self.share(rpm)
            if window.used(now) + 1 > share:
                return Verdict(False, window.wait(now, share), f"rpm={rpm}")
        if tpm is not None:
            tokens = self._tokens.get(key)
            if tokens is not None:
                share = self.share(tpm)
                if tokens.used(now) >= share:
                    return Verdict(False, tokens.wait(now, share), f"tpm={tpm}")
        if rpm is not None:
            self._requests[key].add(now, 1)
        return Verdict(True, 0.0, "")

    def charge(self, key: str, tokens: int, tpm: int | None, now: float) -> None:
        if tpm is None or tokens <= 0:
            return
        window = self._tokens.get(key)
        if window is None:
            window = self._tokens[key] = _Window(now)
        window.add(now, tokens)
