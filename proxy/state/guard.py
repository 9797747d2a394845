"""What a request gets when the state store can't answer: `state_failure: open | closed`.

Every call to the store is bounded by `timeout`; a failure (refused connection, timeout,
busy file) gives the configured verdict at once, logs a warning (at most one per
`WARN_EVERY`), and counts `llm_proxy_state_failures_total{op}`. After a failure the store
is left alone for `PAUSE` seconds (those requests get the same verdict without waiting), then
tried again: the gateway recovers by itself when the store returns, and never hangs on it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from proxy.config.governance import StateFailure
from proxy.state.store import (
    Ask,
    Reservation,
    StateUnavailable,
    Store,
    UsageFilter,
    UsageRow,
    Verdict,
)

log = logging.getLogger("llm_proxy.state")
T = TypeVar("T")
PAUSE = 0.5  # seconds the store is skipped after a failure
WARN_EVERY = 10.0  # seconds between two warnings
RETRY_CLOSED = 1.0  # the retry-after of a request refused because the store is down


class GuardedStore:
    """A `Store` whose hot-path calls never raise and never wait past `timeout`."""

    def __init__(
        self,
        store: Store,
        failure: StateFailure,
        timeout: float,
        on_failure: Callable[[str], None] = lambda op: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.failure = failure
        self.timeout = timeout
        self._on_failure = on_failure
        self._clock = clock
        self._paused_until = 0.0
        self._warned_at = -WARN_EVERY
        self.failures = 0

    @property
    def healthy(self) -> bool:
        return self._clock() >= self._paused_until

    def _failed(self, op: str, exc: BaseException) -> None:
        now = self._clock()
        self.failures += 1
        self._paused_until = now + PAUSE
        self._on_failure(op)
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            what = "admitting" if self.failure == "open" else "refusing"
            log.warning("state store unavailable (%s: %s); %s requests", op, exc, what)

    async def _bounded(self, op: str, work: Callable[[], Awaitable[T]]) -> T:
        if not self.healthy:
            raise StateUnavailable("paused after a recent failure")
        try:
            async with asyncio.timeout(self.timeout):
                return await work()
        except (StateUnavailable, TimeoutError) as exc:
            self._failed(op, exc)
            raise StateUnavailable(str(exc) or "timed out") from exc

    async def admit(self, ask: Ask, now: float) -> Verdict:
        try:
            return await self._bounded("admit", lambda: self.store.admit(ask, now))
        except StateUnavailable:
            if self.failure == "open":
                return Verdict(True, degraded=True)
            return Verdict(False, "state", RETRY_CLOSED)

    async def settle(self, reservation: Reservation, tokens: int, cost: float, now: float) -> None:
        """Best effort: a lost settle leaves a slot until its lease ends and spend unseen."""
        with contextlib.suppress(StateUnavailable):
            await self._bounded("settle", lambda: self.store.settle(reservation, tokens, cost, now))

    async def record(self, rows: list[UsageRow]) -> None:
        """Raises `StateUnavailable`: the ledger keeps the rows for its next flush."""
        await self._bounded("record", lambda: self.store.record(rows))

    async def usage(self, where: UsageFilter) -> list[UsageRow]:
        return await self.store.usage(where)  # an admin read: its own error, no failure mode

    async def close(self) -> None:
        await self.store.close()
