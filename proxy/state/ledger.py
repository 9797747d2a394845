"""The usage ledger's write side: counts per key x alias x backend x UTC day, flushed in batches.

A finished request is added to an in-memory row (no IO on the request path); `run` hands
the rows to the store every `interval` (at most 1 s), so a crash loses at most that much.
A failed flush keeps its rows and merges them into the next one; at most `max_rows` distinct
rows wait, beyond which new ones are dropped with a warning rather than growing forever.
"""

import asyncio
import logging

from proxy.state import limits
from proxy.state.store import StateUnavailable, Store, UsageRow

log = logging.getLogger("llm_proxy.state")
FLUSH_INTERVAL = 1.0  # seconds: what a crash can lose at most
MAX_ROWS = 100_000


class Ledger:
    def __init__(self, store: Store, max_rows: int = MAX_ROWS) -> None:
        self.store = store
        self.max_rows = max_rows
        self.pending: dict[tuple[str, str, str, str], UsageRow] = {}
        self.dropped = 0

    def add(
        self,
        *,
        key: str,
        alias: str,
        backend: str,
        now: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cost: float = 0.0,
        error: bool = False,
    ) -> None:
        """Count one finished request (`now`: epoch seconds, picks the UTC day)."""
        day = limits.day_text(limits.day_number(now))
        self._merge(
            UsageRow(
                key=key,
                alias=alias,
                backend=backend,
                day=day,
                requests=1,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_tokens=cached_tokens,
                cost=cost,
                errors=int(error),
            )
        )

    def _merge(self, row: UsageRow) -> None:
        ident = row.ident()
        found = self.pending.get(ident)
        if found is not None:
            found.add(row)
        elif len(self.pending) < self.max_rows:
            self.pending[ident] = row
        else:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("usage ledger full (%d rows unflushed): dropping counts", self.max_rows)

    async def flush(self) -> bool:
        """Write what is pending; False (rows kept) when the store is unavailable."""
        if not self.pending:
            return True
        rows = list(self.pending.values())
        self.pending = {}
        try:
            await self.store.record(rows)
        except StateUnavailable as exc:
            for row in rows:
                self._merge(row)
            log.debug("ledger flush deferred: %s", exc)
            return False
        return True

    async def run(self, interval: float = FLUSH_INTERVAL) -> None:
        """Flush every `interval`, forever. On shutdown: cancel it, await it, then `flush()`."""
        while True:
            await asyncio.sleep(interval)
            await self.flush()
