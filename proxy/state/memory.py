"""The in-process store: limits and spend in this process's memory; exact with one worker.

Every operation runs without an await between reading and writing its counters, so on one
event loop it is atomic. The ledger is not kept here: `record` and `usage` go to the given
persistent store (the SQLite file under the state directory), and the spend of the current
periods is read back from it at `open`, so a restart keeps budgets.
"""

import itertools
import os

from proxy.state import limits
from proxy.state.limits import Bucket, ScopeState
from proxy.state.store import Ask, Reservation, Store, UsageFilter, UsageRow, Verdict

SPEND_DAYS = 31  # the longest budget period, in days: spend older than this is never asked


class MemoryStore:
    def __init__(self, ledger: Store | None = None) -> None:
        self._ledger = ledger
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}
        self._slots: dict[str, dict[str, float]] = {}  # scope -> reservation id -> expiry
        self._spend: dict[tuple[str, int], float] = {}  # (key, day number) -> USD
        self._ids = itertools.count()
        self._prefix = f"{os.getpid()}-"

    @classmethod
    async def open(cls, ledger: Store | None, now: float) -> "MemoryStore":
        """A store whose spend starts from what `ledger` holds for the last `SPEND_DAYS`."""
        store = cls(ledger)
        if ledger is not None:
            first = limits.day_text(limits.day_number(now) - SPEND_DAYS)
            for row in await ledger.usage(UsageFilter(first=first)):
                day = (row.key, limits.day_of(row.day))
                store._spend[day] = store._spend.get(day, 0.0) + row.cost
        return store

    def spent(self, key: str, first_day: int, end_day: int) -> float:
        spend = self._spend
        return sum(spend.get((key, d), 0.0) for d in range(first_day, end_day))

    def _parallel(self, scope: str, now: float) -> int:
        slots = self._slots.get(scope)
        if not slots:
            return 0
        for rid in [rid for rid, expiry in slots.items() if expiry <= now]:
            del slots[rid]  # a slot whose request never settled (bounded by the lease)
        return len(slots)

    async def admit(self, ask: Ask, now: float) -> Verdict:
        states = [
            ScopeState(
                self._requests.get(s.id),
                self._tokens.get(s.id),
                self._parallel(s.id, now) if s.limits.max_parallel is not None else 0,
            )
            for s in ask.scopes
        ]
        spent, resets_at = 0.0, 0.0
        if ask.budget is not None:
            first, end = limits.period_days(ask.budget.period, now)
            spent, resets_at = self.spent(ask.key, first, end), end * float(limits.DAY)
        rid = self._prefix + str(next(self._ids))
        decision = limits.decide(ask, states, spent, resets_at, now, rid)
        if decision.verdict.allowed:
            for scope, r, t in zip(ask.scopes, decision.requests, decision.tokens, strict=True):
                if r is not None:
                    self._requests[scope.id] = r
                if t is not None:
                    self._tokens[scope.id] = t
                if scope.limits.max_parallel is not None:
                    self._slots.setdefault(scope.id, {})[rid] = now + ask.lease
        return decision.verdict

    async def settle(self, reservation: Reservation, tokens: int, cost: float, now: float) -> None:
        for scope, tpm in reservation.token_scopes:
            self._tokens[scope] = limits.reconcile(
                self._tokens.get(scope), tpm, reservation.estimate, tokens, now
            )
        for scope in reservation.parallel_scopes:
            self._slots.get(scope, {}).pop(reservation.id, None)
        if cost:
            day = (reservation.key, limits.day_number(now))
            if day not in self._spend:
                self._forget_before(day[1] - SPEND_DAYS)
            self._spend[day] = self._spend.get(day, 0.0) + cost

    def _forget_before(self, first: int) -> None:
        """Drop spend no budget period can reach any more (runs once per key and day)."""
        for old in [d for d in self._spend if d[1] < first]:
            del self._spend[old]

    async def record(self, rows: list[UsageRow]) -> None:
        if self._ledger is not None:
            await self._ledger.record(rows)

    async def usage(self, where: UsageFilter) -> list[UsageRow]:
        return [] if self._ledger is None else await self._ledger.usage(where)

    async def close(self) -> None:
        if self._ledger is not None:
            await self._ledger.close()
