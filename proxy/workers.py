"""What `serve` tells its granian workers: one typed object, read from the environment once.

`serve` is the only writer (`WorkerSettings.to_env()` into its own environment before granian
forks or spawns the workers); every worker reads it through `current()`, which parses the
environment on first use and then keeps that value. Without `serve` (the app in a test client,
or under another ASGI server) every field has its one-process default: no stamp, one worker,
no shared metrics directory, `LLM_PROXY_CONFIG` or None for the config path.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

CONFIG_ENV = "LLM_PROXY_CONFIG"
STAMP_ENV = "LLM_PROXY_RELOAD_STAMP"
WORKERS_ENV = "LLM_PROXY_WORKER_COUNT"  # rate limits are split across workers
METRICS_DIR_ENV = "LLM_PROXY_METRICS_DIR"
HOST_ENV = "LLM_PROXY_BIND_HOST"
GRACE_ENV = "LLM_PROXY_GRACE"


class WorkerSettings(NamedTuple):
    config_path: Path | None = None  # the routes.yaml `serve` resolved
    stamp_path: Path | None = None  # touched to make every worker reload
    worker_count: int = 1
    metrics_dir: Path | None = None  # one metrics file per worker, summed on scrape
    host: str | None = None  # the address `serve` listens on (None: unknown, no serve)
    grace: float | None = None  # seconds a request gets after SIGTERM before it is cut

    @property
    def shutdown_flag(self) -> Path | None:
        """Written by `serve` when it is told to stop: workers then know their grace began."""
        return None if self.stamp_path is None else self.stamp_path.with_name("shutdown")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WorkerSettings":
        def path(name: str) -> Path | None:
            value = env.get(name, "")
            return Path(value) if value else None

        try:
            count = max(1, int(env.get(WORKERS_ENV, "") or 1))
        except ValueError:
            count = 1
        host = env.get(HOST_ENV) or None
        try:
            grace: float | None = float(env.get(GRACE_ENV, "") or "nan")
        except ValueError:
            grace = None
        if grace is not None and not grace > 0:
            grace = None
        return cls(path(CONFIG_ENV), path(STAMP_ENV), count, path(METRICS_DIR_ENV), host, grace)

    def to_env(self) -> dict[str, str]:
        """The variables `from_env` reads back (only the fields that are set)."""
        out = {WORKERS_ENV: str(self.worker_count)}
        if self.host is not None:
            out[HOST_ENV] = self.host
        if self.grace is not None:
            out[GRACE_ENV] = repr(self.grace)
        for name, value in (
            (CONFIG_ENV, self.config_path),
            (STAMP_ENV, self.stamp_path),
            (METRICS_DIR_ENV, self.metrics_dir),
        ):
            if value is not None:
                out[name] = str(value)
        return out


_current: WorkerSettings | None = None


def current() -> WorkerSettings:
    """This process's settings, read from `os.environ` on first use."""
    global _current
    if _current is None:
        _current = WorkerSettings.from_env(os.environ)
    return _current


def use(settings: WorkerSettings | None) -> None:
    """Replace this process's settings (tests); None: read the environment again on next use."""
    global _current
    _current = settings
