"""Live routing state: notice a config change, build the new state whole, swap one reference.

A request reads `runtime.snapshot` once and keeps that object: it sees the old table or the
new, never a mix, and finishes on the one it started with. A bad edit never replaces a good
config. Transports (connection pools) and circuit state of backends whose config did not
change are carried into the new snapshot; the others are closed once their last request ends.

Changes are noticed by polling the file (every `POLL` seconds, debounced so an editor's
delete-then-rename burst is read once, whole), on SIGHUP, and on `POST /admin/reload`.
With several granian workers, every worker watches on its own; admin reloads and SIGHUP
also touch a shared stamp file (`LLM_PROXY_RELOAD_STAMP`) so that all workers reload.
"""

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from proxy import metrics, providers, redact
from proxy.admission import Gate
from proxy.auth import Keyring
from proxy.config import Backend, Config, ConfigError, Problem, Settings, parse
from proxy.limits import Limiter
from proxy.providers.base import Adapter
from proxy.resilience import Circuit
from proxy.routing import RouteTable, TargetKey
from proxy.upstream import Transport

log = logging.getLogger("llm_proxy.reload")

POLL = 0.25  # seconds between file checks: a change is live well within a second
STAMP_ENV = "LLM_PROXY_RELOAD_STAMP"
WORKERS_ENV = "LLM_PROXY_WORKER_COUNT"  # set by `serve`: rate limits are split across workers


class BackendState(NamedTuple):
    config: Backend
    adapter: Adapter
    transport: Transport


class Snapshot(NamedTuple):
    config: Config
    table: RouteTable
    keyring: Keyring
    backends: Mapping[str, BackendState]
    generation: int
    loaded_at: float  # epoch seconds

    @property
    def settings(self) -> Settings:
        return self.config.settings


class ReloadResult(NamedTuple):
    ok: bool
    generation: int
    problems: tuple[str, ...]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_config(path: Path, env: Mapping[str, str]) -> Config:
    """Read and validate a config file (blocking: call it in a thread from async code)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            (Problem(str(path), 1, 1, f"cannot read config: {exc.strerror}"),)
        ) from exc
    return parse(text, env, str(path))


class Runtime:
    """This worker's routing state and the circuits that outlive reloads."""

    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.circuits: dict[TargetKey, Circuit] = {}
        self.limiter = Limiter(int(os.environ.get(WORKERS_ENV, "1") or 1))
        self.rng = random.Random()
        self.last_error: tuple[str, ...] = ()  # problems of the last failed reload
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._retired: list[Transport] = []
        self._closing: set[asyncio.Future[None]] = set()
        self._lock = asyncio.Lock()
        self._file_sig = _signature(path)
        stamp = os.environ.get(STAMP_ENV)
        self._stamp = Path(stamp) if stamp else None
        self._stamp_sig = _signature(self._stamp) if self._stamp else None
        self.snapshot = self._build(config, None)  # `serve` logged this config's warnings
        # settings.max_concurrent, per worker; the request path enters `gate.admit()`.
        self.gate = Gate(
            config.settings.max_concurrent, config.settings.queue_timeout, metrics.admission
        )

    def _build(self, config: Config, old: Snapshot | None) -> Snapshot:
        backends: dict[str, BackendState] = {}
        for b in config.backends:
            prev = old.backends.get(b.name) if old is not None else None
            same = (
                prev is not None
                and prev.config == b
                and old is not None
                and old.settings.timeouts == config.settings.timeouts
            )
            if same and prev is not None:
                backends[b.name] = prev
            else:
                backends[b.name] = BackendState(
                    b, providers.adapter(b), providers.transport(b, config.settings.timeouts)
                )
        generation = old.generation + 1 if old is not None else 1
        return Snapshot(
            config,
            RouteTable(config),
            Keyring.build(config.keys),
            backends,
            generation,
            time.time(),
        )

    def _swap(self, config: Config) -> Snapshot:
        old = self.snapshot
        new = self._build(config, old)
        self.snapshot = new  # the one assignment every request sees before or after
        for name, state in old.backends.items():
            kept = new.backends.get(name)
            if kept is None or kept.transport is not state.transport:
                self._retired.append(state.transport)
        changed = {n for n, s in old.backends.items() if new.backends.get(n) is not s}
        for key in [k for k in self.circuits if k.backend in changed]:
            del self.circuits[key]
        return new

    async def reload(self, reason: str) -> ReloadResult:
        async with self._lock:
            self._file_sig = _signature(self.path)
            try:
                config = await asyncio.to_thread(read_config, self.path, dict(os.environ))
            except ConfigError as err:
                self.reloads_failed += 1
                self.last_error = tuple(str(p) for p in err.problems)
                for line in self.last_error:
                    log.error(
                        "config reload (%s) rejected, keeping generation %d: %s",
                        reason,
                        self.snapshot.generation,
                        line,
                    )
                return ReloadResult(False, self.snapshot.generation, self.last_error)
            new = self._swap(config)
            self.gate.configure(config.settings.max_concurrent, config.settings.queue_timeout)
            redact.remember(config)  # new secrets are masked in logs from now on
            self.reloads_ok += 1
            self.last_error = ()
            self._log_warnings(config)
            log.info(
                "config reloaded (%s): generation %d, %d models, %d backends",
                reason,
                new.generation,
                len(config.models),
                len(config.backends),
            )
            return ReloadResult(True, new.generation, ())

    def _log_warnings(self, config: Config) -> None:
        for w in config.warnings:
            log.warning("%s", w)

    def broadcast(self) -> None:
        """Tell the other workers to reload (touch the shared stamp)."""
        if self._stamp is None:
            return
        try:
            self._stamp.touch()
            os.utime(self._stamp, None)
        except OSError as exc:
            log.warning("cannot touch reload stamp %s: %s", self._stamp, exc.strerror)
        self._stamp_sig = _signature(self._stamp)

    async def watch(self) -> None:
        """Poll the config file and the stamp; reload on a settled change. Runs until cancelled."""
        pending: tuple[int, int, int] | None = None
        while True:
            await asyncio.sleep(POLL)
            self._close_retired()
            if self._stamp is not None:
                sig = _signature(self._stamp)
                if sig != self._stamp_sig:
                    self._stamp_sig = sig
                    await self.reload("reload requested")
                    continue
            sig = _signature(self.path)
            if sig is None or sig == self._file_sig:
                pending = None  # a missing file (mid-rename) is not an edit: keep serving
                continue
            if sig != pending:
                pending = sig  # debounce: act once the file has stopped changing
                continue
            pending = None
            await self.reload("file changed")

    def _close_retired(self) -> None:
        keep: list[Transport] = []
        for t in self._retired:
            if t.in_flight <= 0:
                task = asyncio.ensure_future(t.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            else:
                keep.append(t)
        self._retired = keep

    async def close(self) -> None:
        transports = {id(s.transport): s.transport for s in self.snapshot.backends.values()}
        for t in self._retired:
            transports[id(t)] = t
        self._retired = []
        await asyncio.gather(*(t.close() for t in transports.values()), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
