"""Limits are exact across processes: two workers on one SQLite file, two instances on Redis."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.state.sqlite import FILE_NAME
from tests.conftest import REPO
from tests.state.conftest import RedisServer
from tests.state.stores import NOW

DEADLINE = 30.0


def _race(kind: str, target: str, go: Path, processes: int = 2, each: int = 20) -> list[int]:
    """Start `processes` admitters, release them together, return each one's allowed count."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.state.admitter",
                kind,
                target,
                str(each),
                str(NOW),
                str(go),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        go.touch()
        counts = []
        for proc in procs:
            out, err = proc.communicate(timeout=DEADLINE)
            assert proc.returncode == 0, err
            counts.append(int(out.strip()))
        return counts
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


def test_two_workers_sharing_the_state_file_admit_exactly_the_limit(tmp_path: Path) -> None:
    counts = _race("sqlite", str(tmp_path / FILE_NAME), tmp_path / "go")
    assert sum(counts) == 10


def test_two_instances_sharing_redis_admit_exactly_the_limit(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    counts = _race("redis", redis_server.url, tmp_path / "go")
    assert sum(counts) == 10


async def test_a_burst_larger_than_the_redis_pool_waits_for_connections(
    redis_server: RedisServer,
) -> None:
    import asyncio

    from proxy.state.redis import MAX_CONNECTIONS, RedisStore
    from tests.state.stores import ask

    store = RedisStore(redis_server.url, timeout=5.0)
    try:
        a = ask("burst", rpm=100)
        verdicts = await asyncio.gather(*(store.admit(a, NOW) for _ in range(5 * MAX_CONNECTIONS)))
        assert sum(v.allowed for v in verdicts) == 100
    finally:
        await store.close()


class _Racing:
    """A connection whose first `locked` statements fail as a fresh file does when another
    worker is switching it to WAL in the same instant."""

    def __init__(self, db: sqlite3.Connection, locked: int, message: str) -> None:
        self.db, self.locked, self.message = db, locked, message
        self.tries = 0

    def execute(self, sql: str) -> object:
        if sql.startswith("PRAGMA journal_mode"):
            self.tries += 1
            if self.tries <= self.locked:
                raise sqlite3.OperationalError(self.message)
        return self.db.execute(sql)

    def executescript(self, sql: str) -> object:
        return self.db.executescript(sql)


def test_a_state_file_locked_at_setup_is_retried_not_fatal(tmp_path: Path) -> None:
    from proxy.state.sqlite import _setup

    db = sqlite3.connect(tmp_path / "state.sqlite3", isolation_level=None)
    racing = _Racing(db, 3, "database is locked")
    _setup(racing, within=5)  # type: ignore[arg-type]
    assert racing.tries == 4
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT count(*) FROM ledger").fetchone() == (0,)

    with pytest.raises(sqlite3.OperationalError, match="locked"):  # bounded: it gives up
        _setup(_Racing(db, 10**6, "database is locked"), within=0.05)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError, match="malformed"):  # not a lock: at once
        _setup(_Racing(db, 1, "database disk image is malformed"), within=5)  # type: ignore[arg-type]
