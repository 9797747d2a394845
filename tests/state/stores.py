"""Building every store kind for the scenario tests, and small request builders."""

from pathlib import Path

from proxy.config.governance import Budget, Limits
from proxy.state.memory import MemoryStore
from proxy.state.redis import RedisStore
from proxy.state.sqlite import FILE_NAME, SqliteStore
from proxy.state.store import Ask, Scope, Store

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a fixed clock, so no test depends on timing
KINDS = ("memory", "sqlite", "redis")


async def make_store(kind: str, directory: Path, redis_url: str = "") -> Store:
    if kind == "memory":
        return await MemoryStore.open(SqliteStore(directory / FILE_NAME), NOW)
    if kind == "sqlite":
        return SqliteStore(directory / FILE_NAME, timeout=2.0)
    return RedisStore(redis_url, timeout=2.0)


def ask(
    key: str = "team",
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    max_parallel: int | None = None,
    estimate: int = 0,
    budget: Budget | None = None,
    lease: float = 600.0,
    extra: tuple[Scope, ...] = (),
) -> Ask:
    own = Limits(rpm=rpm, tpm=tpm, max_parallel=max_parallel)
    scopes = ((Scope(key, own),) if not own.empty else ()) + extra
    return Ask(key, scopes, estimate, budget, lease)
