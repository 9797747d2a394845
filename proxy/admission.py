"""The concurrency cap: `settings.max_concurrent` requests in flight per worker, the rest
refused with 503 + `retry-after`, or queued up to `settings.queue_timeout` first.

Invariants: `in_flight` never exceeds the limit; a slot is handed to the longest waiter
(first in, first out) the moment one frees; a waiter that times out or is cancelled (client
gone) never holds a slot, even when one was handed to it in the same instant; the queue is
bounded, so a flood is refused rather than parked. Counters feed `/metrics`.
"""

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable

from proxy import errors

MAX_WAITERS = 10_000  # beyond this, refuse at once even with a queue_timeout


class Overloaded(errors.ProxyError):
    """More requests in flight than `settings.max_concurrent` allows."""

    status, type, anthropic_type = 503, "service_unavailable", "overloaded_error"
    code = "gateway_overloaded"


class Gate:
    __slots__ = (
        *("_count", "_waiters", "admitted", "in_flight", "limit", "queue_timeout", "queued"),
        "refused",
    )

    def __init__(
        self,
        limit: int | None = None,
        queue_timeout: float | None = None,
        count: Callable[[str], None] | None = None,  # metrics.admission: one call per result
    ) -> None:
        self._count = count or (lambda _: None)
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self.admitted = 0  # counters, for /metrics
        self.queued = 0
        self.refused = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def configure(self, limit: int | None, queue_timeout: float | None) -> None:
        """New settings (a reload); a raised limit lets waiters in at once."""
        self.limit, self.queue_timeout = limit, queue_timeout
        self._hand_over()

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the `async with`; Overloaded when none comes."""
        await self.enter()
        try:
            yield
        finally:
            self.leave()

    def _take(self) -> bool:
        """Take a slot if one is free with nobody queued ahead: True. False: queue for one."""
        if self.limit is None:
            self.in_flight += 1
            return True
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            self.admitted += 1
            self._count("admitted")
            return True
        return False

    async def enter(self) -> None:
        """Take a slot, queueing up to `queue_timeout` for one; Overloaded when none comes.
        Every `enter()` that returns is paired with one `leave()`."""
        if self._take():
            return
        await self._wait()
        self.admitted += 1
        self._count("admitted")

    def leave(self) -> None:
        self.in_flight -= 1
        if self._waiters:
            self._hand_over()

    async def _wait(self) -> None:
        wait = self.queue_timeout or 0.0
        if wait <= 0 or len(self._waiters) >= MAX_WAITERS:
            self._refuse()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self.queued += 1
        self._count("queued")
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=wait)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if future.done() and not future.cancelled():
                self.in_flight -= 1  # handed a slot in the same instant: give it back
                self._hand_over()
            else:
                future.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._refuse()

    def _hand_over(self) -> None:
        while self._waiters and (self.limit is None or self.in_flight < self.limit):
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1  # the slot is the waiter's from this moment
                future.set_result(None)

    def _refuse(self) -> None:
        self.refused += 1
        self._count("refused")
        wait = max(1, math.ceil(self.queue_timeout or 1))
        raise Overloaded(
            f"the gateway is at its limit of {self.limit} concurrent requests "
            "(settings.max_concurrent); retry shortly",
            headers=(("retry-after", str(wait)),),
        )
