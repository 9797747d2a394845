"""Which store `settings.state` names, opened and wrapped in its failure mode.

- `memory` with one worker: `MemoryStore`, the ledger (and so spend) in the SQLite file.
- `memory` with `--workers N`: every worker opens the same SQLite file (`SqliteStore`), so
  limits are exact across workers with nothing else to start.
- `redis://`, `rediss://`, `unix://`: `RedisStore`, ledger included.
The file lives in the state directory: `LLM_PROXY_STATE_DIR`, else
`$XDG_STATE_HOME/llm-proxy`, else `~/.local/state/llm-proxy`.
"""

from collections.abc import Callable, Mapping
from pathlib import Path

from proxy.config import Settings
from proxy.state.guard import GuardedStore
from proxy.state.memory import MemoryStore
from proxy.state.redis import RedisStore
from proxy.state.sqlite import FILE_NAME, SqliteStore
from proxy.state.store import Store, UsageFilter, UsageRow

STATE_DIR_ENV = "LLM_PROXY_STATE_DIR"


def state_dir(env: Mapping[str, str], home: Path) -> Path:
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "llm-proxy"
    return home / ".local" / "state" / "llm-proxy"


def is_redis(state: str) -> bool:
    return state.lower().startswith(("redis://", "rediss://", "unix://"))


async def open_store(settings: Settings, workers: int, directory: Path, now: float) -> Store:
    """The bare store (blocking while a SQLite file is opened: call it at startup)."""
    if is_redis(settings.state):
        return RedisStore(settings.state, settings.state_timeout)
    shared = SqliteStore(directory / FILE_NAME, settings.state_timeout)
    if workers > 1:
        return shared
    return await MemoryStore.open(shared, now)


async def connect(
    settings: Settings,
    workers: int,
    directory: Path,
    now: float,
    on_failure: Callable[[str], None] = lambda op: None,
) -> GuardedStore:
    store = await open_store(settings, workers, directory, now)
    return GuardedStore(store, settings.state_failure, settings.state_timeout, on_failure)


async def read_usage(settings: Settings, directory: Path, where: UsageFilter) -> list[UsageRow]:
    """The ledger rows a running gateway with these settings writes (for `llm-proxy usage`)."""
    store: Store
    if is_redis(settings.state):
        store = RedisStore(settings.state, max(settings.state_timeout, 5.0))
    else:
        store = SqliteStore(directory / FILE_NAME, max(settings.state_timeout, 5.0))
    try:
        return await store.usage(where)
    finally:
        await store.close()
