"""The store the workers of one machine share: one SQLite file in WAL mode.

`--workers N` needs limits exact across processes with nothing else to install or start;
SQLite is in the standard library and serialises writers with a file lock, so each
operation is one `BEGIN IMMEDIATE` transaction (read the counters, decide with the pure
rules in `limits`, write) that no other worker can interleave with. The same file holds
the usage ledger for every store but Redis, so a restart keeps spend and usage.

The calls block, so they run on one thread per process, off the event loop; each waits
for the file lock at most `timeout` seconds, then raises `StateUnavailable`.
"""

import asyncio
import concurrent.futures
import itertools
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from proxy.state import limits
from proxy.state.limits import Bucket, ScopeState
from proxy.state.store import (
    Ask,
    Reservation,
    StateUnavailable,
    UsageFilter,
    UsageRow,
    Verdict,
)

FILE_NAME = "state.sqlite3"
SETUP_TIMEOUT = 10.0  # seconds: N workers starting at once all create the schema
T = TypeVar("T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS bucket (
    scope TEXT NOT NULL, kind TEXT NOT NULL, level REAL NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (scope, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slot (
    scope TEXT NOT NULL, id TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (scope, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spend (
    key TEXT NOT NULL, day INTEGER NOT NULL, usd REAL NOT NULL,
    PRIMARY KEY (key, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT NOT NULL, alias TEXT NOT NULL, backend TEXT NOT NULL, day TEXT NOT NULL,
    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL, cost REAL NOT NULL, errors INTEGER NOT NULL,
    PRIMARY KEY (key, alias, backend, day)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_day ON ledger (day);
CREATE INDEX IF NOT EXISTS ledger_key_day ON ledger (key, day);
"""
_UPSERT = """
INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key, alias, backend, day) DO UPDATE SET
    requests = requests + excluded.requests,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens,
    cost = cost + excluded.cost,
    errors = errors + excluded.errors
"""
_SELECT = """
SELECT key, alias, backend, day, requests, input_tokens, output_tokens, cached_tokens, cost,
       errors
FROM ledger
WHERE (?1 IS NULL OR key = ?1) AND (?2 IS NULL OR alias = ?2)
  AND (?3 IS NULL OR day >= ?3) AND (?4 IS NULL OR day <= ?4)
ORDER BY day, key, alias, backend
"""


def _setup(db: sqlite3.Connection, within: float = SETUP_TIMEOUT) -> None:
    """WAL mode and the schema, retried while another process holds the file: switching a
    fresh file to WAL answers "database is locked" at once, without waiting on the busy
    timeout, when two workers open it in the same instant (seen in CI)."""
    deadline = time.monotonic() + within
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses no committed state
            db.executescript(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)  # in a thread: workers start unevenly


class SqliteFile:
    """The blocking operations on one file; one instance per thread."""

    def __init__(self, path: Path, timeout: float = 0.25) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            path, timeout=SETUP_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        _setup(self.db)
        self.db.execute(f"PRAGMA busy_timeout = {max(1, round(timeout * 1000))}")
        self._ids = itertools.count()
        self._prefix = f"{os.getpid()}-"

    def _run_locked(self, body: Callable[[], T]) -> T:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # "database is locked" past the timeout
            raise StateUnavailable(f"state file busy: {exc}") from exc
        try:
            result = body()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return result

    def _bucket(self, scope: str, kind: str) -> Bucket | None:
        row = self.db.execute(
            "SELECT level, at FROM bucket WHERE scope = ? AND kind = ?", (scope, kind)
        ).fetchone()
        return None if row is None else Bucket(row[0], row[1])

    def _put(self, scope: str, kind: str, bucket: Bucket) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO bucket VALUES (?, ?, ?, ?)",
            (scope, kind, bucket.level, bucket.at),
        )

    def _parallel(self, scope: str, now: float) -> int:
        self.db.execute("DELETE FROM slot WHERE scope = ? AND expires <= ?", (scope, now))
        row = self.db.execute("SELECT count(*) FROM slot WHERE scope = ?", (scope,)).fetchone()
        return int(row[0])

    def _spent(self, key: str, first: int, end: int) -> float:
        """The key's spend over days [first, end): what settles counted here, or what the
        ledger holds if more (spend from before the workers shared this file, as one worker)."""
        settled = self.db.execute(
            "SELECT total(usd) FROM spend WHERE key = ? AND day >= ? AND day < ?",
            (key, first, end),
        ).fetchone()[0]
        ledgered = self.db.execute(
            "SELECT total(cost) FROM ledger WHERE key = ? AND day >= ? AND day < ?",
            (key, limits.day_text(first), limits.day_text(end)),
        ).fetchone()[0]
        return max(float(settled), float(ledgered))

    def admit(self, ask: Ask, now: float) -> Verdict:
        rid = self._prefix + str(next(self._ids))

        def body() -> Verdict:
            states = [
                ScopeState(
                    self._bucket(s.id, "r") if s.limits.rpm is not None else None,
                    self._bucket(s.id, "t") if s.limits.tpm is not None else None,
                    self._parallel(s.id, now) if s.limits.max_parallel is not None else 0,
                )
                for s in ask.scopes
            ]
            spent, resets_at = 0.0, 0.0
            if ask.budget is not None:
                first, end = limits.period_days(ask.budget.period, now)
                spent, resets_at = self._spent(ask.key, first, end), end * float(limits.DAY)
            decision = limits.decide(ask, states, spent, resets_at, now, rid)
            if decision.verdict.allowed:
                for s, r, t in zip(ask.scopes, decision.requests, decision.tokens, strict=True):
                    if r is not None:
                        self._put(s.id, "r", r)
                    if t is not None:
                        self._put(s.id, "t", t)
                    if s.limits.max_parallel is not None:
                        self.db.execute(
                            "INSERT INTO slot VALUES (?, ?, ?)", (s.id, rid, now + ask.lease)
                        )
            return decision.verdict

        return self._run_locked(body)

    def settle(self, reservation: Reservation, tokens: int, cost: float, now: float) -> None:
        def body() -> None:
            for scope, tpm in reservation.token_scopes:
                bucket = self._bucket(scope, "t")
                self._put(
                    scope, "t", limits.reconcile(bucket, tpm, reservation.estimate, tokens, now)
                )
            for scope in reservation.parallel_scopes:
                self.db.execute(
                    "DELETE FROM slot WHERE scope = ? AND id = ?", (scope, reservation.id)
                )
            if cost:
                self.db.execute(
                    "INSERT INTO spend VALUES (?, ?, ?) "
                    "ON CONFLICT (key, day) DO UPDATE SET usd = usd + excluded.usd",
                    (reservation.key, limits.day_number(now), cost),
                )

        self._run_locked(body)

    def record(self, rows: list[UsageRow]) -> None:
        values = [
            (r.key, r.alias, r.backend, r.day, r.requests, r.input_tokens, r.output_tokens,
             r.cached_tokens, r.cost, r.errors)
            for r in rows
        ]  # fmt: skip

        def body() -> None:
            self.db.executemany(_UPSERT, values)

        self._run_locked(body)

    def usage(self, where: UsageFilter) -> list[UsageRow]:
        try:
            cursor = self.db.execute(_SELECT, (where.key, where.alias, where.first, where.last))
            return [_row(*values) for values in cursor]
        except sqlite3.OperationalError as exc:
            raise StateUnavailable(f"state file unreadable: {exc}") from exc

    def close(self) -> None:
        self.db.close()


def _row(
    key: str, alias: str, backend: str, day: str, requests: int, input_tokens: int,
    output_tokens: int, cached_tokens: int, cost: float, errors: int,
) -> UsageRow:  # fmt: skip
    return UsageRow(
        key=key, alias=alias, backend=backend, day=day, requests=requests,
        input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens,
        cost=cost, errors=errors,
    )  # fmt: skip


class SqliteStore:
    """`SqliteFile` for a request handler: each call runs on this store's own thread."""

    def __init__(self, path: Path, timeout: float = 0.25) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llm-state")
        self._file = self._pool.submit(SqliteFile, path, timeout).result()

    async def admit(self, ask: Ask, now: float) -> Verdict:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._file.admit, ask, now)

    async def settle(self, reservation: Reservation, tokens: int, cost: float, now: float) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._file.settle, reservation, tokens, cost, now)

    async def record(self, rows: list[UsageRow]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._file.record, rows)

    async def usage(self, where: UsageFilter) -> list[UsageRow]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._file.usage, where)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._file.close)
        self._pool.shutdown(wait=False)
