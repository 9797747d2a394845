"""One worker's governance, for the request path: three calls per request.

    governor = await Governor.start(settings, workers, state_dir(env, home), env)  # lifespan
    verdict = await governor.admit(key, alias, len(body), max_tokens)   # after model allowed
    cost = await governor.finish(verdict, key.name, alias, backend, ...)  # at the end
    await governor.close()                                                # lifespan end

`admit` returns None when nothing governs the key (no store call); a refused verdict is for
`governance.refusal`; an allowed one's `governance.headers` go on the response. `finish`
settles the reservation (real tokens, cost) and adds the request to the ledger, which is
flushed off the request path every second. The store is chosen once per worker at start:
changing `settings.state` takes a restart.
"""

import asyncio
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path

from proxy import pricing
from proxy.config import ClientKey, Price, Settings
from proxy.observe import metrics
from proxy.state import governance
from proxy.state.connect import connect
from proxy.state.guard import GuardedStore
from proxy.state.ledger import FLUSH_INTERVAL, Ledger
from proxy.state.store import UsageFilter, UsageRow, Verdict

LEASE_MARGIN = 30.0  # seconds past timeouts.total before a lost parallel slot frees itself


class Governor:
    def __init__(
        self,
        store: GuardedStore,
        lease: float,
        overrides: Mapping[str, tuple[float, float]],
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.store = store
        self.ledger = Ledger(store)
        self.lease = lease
        self.overrides = overrides
        self._flusher = asyncio.create_task(self.ledger.run(flush_interval))

    @classmethod
    async def start(
        cls,
        settings: Settings,
        workers: int,
        directory: Path,
        env: Mapping[str, str],
        flush_interval: float = FLUSH_INTERVAL,
    ) -> "Governor":
        """Open the store `settings.state` names (blocking briefly for a SQLite file)."""
        store = await connect(settings, workers, directory, time.time(), metrics.state_failed)
        lease = settings.timeouts.total + LEASE_MARGIN
        return cls(store, lease, metrics.load_prices(env), flush_interval)

    async def admit(
        self, key: ClientKey, alias: str, body_size: int, max_tokens: int | None
    ) -> Verdict | None:
        estimate = governance.estimate_tokens(body_size, max_tokens)
        ask = governance.ask_for(key, alias, estimate, self.lease)
        if ask is None:
            return None
        verdict = await self.store.admit(ask, time.time())
        if verdict.budget is not None:
            metrics.budget_remaining(key.name, verdict.budget.usd - verdict.budget.spent)
        return verdict

    async def finish(
        self,
        verdict: Verdict | None,
        *,
        key_name: str,
        alias: str,
        backend: str,
        provider_model: str,
        price: Price | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int = 0,
        error: bool = False,
    ) -> float | None:
        """Settle and count one finished request; its cost in USD (None: price unknown)."""
        now = time.time()
        found = pricing.price_for(price, backend, provider_model, self.overrides)
        cost = pricing.cost(found, input_tokens, output_tokens, cached_tokens)
        # The ledger first: it needs no await, so a cancellation below can't lose the count.
        self.ledger.add(
            key=key_name, alias=alias, backend=backend, now=now,
            input_tokens=input_tokens or 0, output_tokens=output_tokens or 0,
            cached_tokens=cached_tokens, cost=cost or 0.0, error=error,
        )  # fmt: skip
        if verdict is not None and verdict.reservation is not None:
            used = (input_tokens or 0) + (output_tokens or 0)
            await self.store.settle(verdict.reservation, used, cost or 0.0, now)
        return cost

    async def usage(self, where: UsageFilter) -> list[UsageRow]:
        await self.ledger.flush()  # this worker's last second too
        return await self.store.usage(where)

    async def close(self) -> None:
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        await self.ledger.flush()
        await self.store.close()
