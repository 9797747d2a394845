"""Live routing state: build the new state whole from a config, swap one reference.

A request reads `runtime.snapshot` once and keeps that object: it sees the old table or the
new, never a mix, and finishes on the one it started with. A bad edit never replaces a good
config. Transports (connection pools) and circuit state of backends whose config did not
change are carried into the new snapshot; the others are closed once their last request ends.
Noticing a change (file poll, stamp, SIGHUP) is `proxy.watch`'s job; `POST /admin/reload`
calls `reload` directly.
"""

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from proxy import providers, redact, reload_guard, watch, workers
from proxy.admission import Gate
from proxy.auth import Keyring
from proxy.config import Backend, Config, ConfigError, Model, Problem, Settings, parse
from proxy.discovery import Discovery
from proxy.interactive.redis_sessions import open_sessions
from proxy.interactive.sessions import SessionStore
from proxy.observe import metrics
from proxy.providers.base import Adapter
from proxy.providers.transport import Transport
from proxy.routing import RouteTable
from proxy.targets import CircuitTable

log = logging.getLogger("llm_proxy.reload")

READ_TRIES = 3  # reads of a file that is being written before the reload gives up


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
        settings = workers.current()
        self.path = path
        self.circuits = CircuitTable()  # bounded for targets expanded from glob aliases
        # Chosen by the config this worker started with: memory, or Redis when state names it.
        self.sessions: SessionStore = open_sessions(config.settings)
        self.rng = random.Random()
        self.last_error: tuple[str, ...] = ()  # problems of the last failed reload
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._retired: list[Transport] = []
        self._closing: set[asyncio.Future[None]] = set()
        self._lock = asyncio.Lock()
        self.file_sig = watch.signature(path)
        self.stamp = watch.Stamp(settings.stamp_path) if settings.stamp_path else None
        # Models listed by `discover` backends: routed (and shown in /v1/models) as PREFIX/NAME.
        self.discovered: tuple[Model, ...] = ()
        self._discovery = Discovery(self._on_discovered)
        self.snapshot = self._build(config, None)  # `serve` logged this config's warnings
        self.circuits.pin(self.snapshot.table.fixed_targets())
        # settings.max_concurrent, per worker; the front doors enter `gate.admit()`.
        self.gate = Gate(
            config.settings.max_concurrent, config.settings.queue_timeout, metrics.admission
        )

    def metrics_info(self) -> metrics.RuntimeInfo:
        """This runtime's numbers for `/metrics`; circuits of glob-expanded targets only while
        not closed (their model names are client text: a closed one says nothing a label set
        should be spent on)."""
        now = time.monotonic()
        pinned = self.circuits.pinned
        circuits = []
        for k, c in self.circuits.items():
            state = c.state(now)
            if state != "closed" or k in pinned:
                circuits.append((k.backend, k.model, state))
        return metrics.RuntimeInfo(
            self.snapshot.generation, self.reloads_ok, self.reloads_failed, circuits
        )

    def _table(self, config: Config) -> RouteTable:
        names = {b.name for b in config.backends}
        found = [m for m in self.discovered if m.targets[0].backend in names]
        return RouteTable(config).extended(found) if found else RouteTable(config)

    def _on_discovered(self, models: tuple[Model, ...]) -> None:
        self.discovered = models
        old = self.snapshot
        self.snapshot = old._replace(table=self._table(old.config))  # one swap, as a reload
        self.circuits.pin(self.snapshot.table.fixed_targets())

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
            self._table(config),
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
        self.circuits.pin(new.table.fixed_targets())
        return new

    async def reload(self, reason: str) -> ReloadResult:
        async with self._lock:
            try:
                config = await asyncio.to_thread(self._read_whole)
            except ConfigError as err:
                return self._reject(reason, tuple(str(p) for p in err.problems))
            refused = reload_guard.dropped_auth(self.snapshot.config, config)
            if refused:
                return self._reject(reason, refused, loud=True)
            new = self._swap(config)
            await self._discovery.update(config.backends)  # list at once; warns, never fails
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

    def _read_whole(self) -> Config:
        """The config as one unchanged file: a read that overlapped a write is read again."""
        for _ in range(READ_TRIES):
            before = watch.signature(self.path)
            try:
                config = read_config(self.path, dict(os.environ))
            finally:
                self.file_sig = watch.signature(self.path)
            if before == self.file_sig:
                return config
        raise ConfigError(
            (Problem(str(self.path), 1, 1, "the file kept changing while it was read"),)
        )

    def _reject(self, reason: str, problems: tuple[str, ...], loud: bool = False) -> ReloadResult:
        """Keep serving the current config; `loud` for refusals that protect auth."""
        self.reloads_failed += 1
        self.last_error = problems
        for line in problems:
            log.log(
                logging.CRITICAL if loud else logging.ERROR,
                "config reload (%s) rejected, keeping generation %d: %s",
                reason,
                self.snapshot.generation,
                line,
            )
        return ReloadResult(False, self.snapshot.generation, problems)

    def _log_warnings(self, config: Config) -> None:
        for w in config.warnings:
            log.warning("%s", w)

    def broadcast(self) -> None:
        """Tell the other workers to reload (touch the shared stamp)."""
        if self.stamp is not None:
            self.stamp.touch()

    async def watch(self) -> None:
        """Reload on a settled change of the file or the stamp. Runs until cancelled."""
        await self._discovery.update(self.snapshot.config.backends)  # at start
        await watch.watch(self, self.stamp)

    def close_retired(self) -> None:
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
        await self._discovery.close()
        transports = {id(s.transport): s.transport for s in self.snapshot.backends.values()}
        for t in self._retired:
            transports[id(t)] = t
        self._retired = []
        await asyncio.gather(*(t.close() for t in transports.values()), return_exceptions=True)
        await self.sessions.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
