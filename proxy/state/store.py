"""The state store interface governance needs, and the values that cross it.

A store answers a handful of atomic operations: `admit` checks every limit of a request
(rpm, tpm, max_parallel per scope, the key's budget) and, only when all pass, reserves a
request, the token estimate and a parallel slot, in one step no other worker or instance can
interleave with; `settle` reconciles the reservation with the real usage and cost and frees
the slot; `record` adds ledger rows; `usage` reads them back. Implementations: `memory`
(one process), `sqlite` (the workers of one machine, through one file), `redis` (instances).
Every value here is plain data: nothing holds a connection or a clock.
"""

from typing import Literal, NamedTuple, Protocol

import msgspec

from proxy.config.governance import Budget, Limits, Period

__all__ = [
    "Ask",
    "Budget",
    "BudgetState",
    "Limits",
    "Period",
    "Quota",
    "Reason",
    "Reservation",
    "Scope",
    "StateUnavailable",
    "Store",
    "UsageFilter",
    "UsageRow",
    "Verdict",
]

Reason = Literal["", "rpm", "tpm", "max_parallel", "budget", "state"]


class Scope(NamedTuple):
    """One set of limits and the counters it is enforced on (`id` names those counters)."""

    id: str  # "team-a" for the key, "team-a|gpt-*" for a per-model entry on it
    limits: Limits


class Ask(NamedTuple):
    """What one request asks of the store."""

    key: str  # the client key's name (never the key itself)
    scopes: tuple[Scope, ...]  # the key's own limits first, then the matching model entry
    estimate: int  # tokens reserved against tpm until `settle` says the real number
    budget: Budget | None
    lease: float  # seconds a parallel slot is held at most (a crashed worker's slot expires)


class Quota(NamedTuple):
    """One `x-ratelimit-*` trio."""

    limit: int
    remaining: int
    reset: float  # seconds until the quota is whole again


class BudgetState(NamedTuple):
    usd: float
    spent: float
    resets_at: float  # epoch seconds (UTC) when the period ends


class Reservation(NamedTuple):
    """What `settle` needs to undo or reconcile an admitted request."""

    id: str
    key: str
    token_scopes: tuple[tuple[str, int], ...]  # (scope id, its tpm) that took the estimate
    parallel_scopes: tuple[str, ...]  # scope ids where a slot is held
    estimate: int


class Verdict(NamedTuple):
    allowed: bool
    reason: Reason = ""  # which limit refused; "" when allowed
    retry_after: float = 0.0  # seconds; 0 when allowed
    requests: Quota | None = None  # the tightest request quota, for the headers
    tokens: Quota | None = None  # the tightest token quota
    budget: BudgetState | None = None
    reservation: Reservation | None = None  # None when refused, or when nothing is reserved
    degraded: bool = False  # the store was unreachable and `state_failure: open` let it through


class UsageRow(msgspec.Struct, kw_only=True):
    """Ledger counts for one key x alias x backend x UTC day (YYYY-MM-DD)."""

    key: str
    alias: str
    backend: str
    day: str
    requests: int = 0
    input_tokens: int = 0  # every prompt token, cached ones included
    output_tokens: int = 0
    cached_tokens: int = 0  # the cached part of input_tokens, when reported
    cost: float = 0.0  # USD
    errors: int = 0

    def ident(self) -> tuple[str, str, str, str]:
        return (self.key, self.alias, self.backend, self.day)

    def add(self, other: "UsageRow") -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cost += other.cost
        self.errors += other.errors


class UsageFilter(NamedTuple):
    """Which ledger rows to read: days inclusive, YYYY-MM-DD; None: no bound."""

    key: str | None = None
    alias: str | None = None
    first: str | None = None
    last: str | None = None


class StateUnavailable(Exception):
    """The store could not answer in time (connection refused, timeout, busy file)."""


class Store(Protocol):
    async def admit(self, ask: Ask, now: float) -> Verdict:
        """Check every limit in `ask` and, only if all pass, reserve; atomic. `now`: epoch s."""
        ...

    async def settle(self, reservation: Reservation, tokens: int, cost: float, now: float) -> None:
        """The request is over: `tokens` really used (0 if none), `cost` USD spent."""
        ...

    async def record(self, rows: list[UsageRow]) -> None:
        """Add these counts to the ledger (called off the request path, in batches)."""
        ...

    async def usage(self, where: UsageFilter) -> list[UsageRow]:
        """Ledger rows matching `where`, one per key x alias x backend x day."""
        ...

    async def close(self) -> None: ...
