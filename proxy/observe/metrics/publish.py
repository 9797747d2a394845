"""Cross-worker metrics: each granian worker publishes its registry to one file; a scrape
reads them all.

Each worker writes `<metrics dir>/worker-<pid>.json` (write, then rename: a reader sees a whole
file) at most every `PUBLISH_INTERVAL` when something changed, and on every scrape it serves.
A scrape renders this worker's live state plus every other worker's file (see `export`).
Without a metrics directory (`WorkerSettings.metrics_dir`) the gateway is one process and
renders its own state.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from proxy import workers
from proxy.observe.metrics.export import text
from proxy.observe.metrics.registry import REGISTRY, Dump, RuntimeInfo, dump

log = logging.getLogger("llm_proxy.metrics")

PUBLISH_INTERVAL = 0.5  # seconds: how stale another worker's numbers may be in a scrape

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Dump).decode
_lock: asyncio.Lock | None = None
_owner = 0  # the pid that last published here: a new process first retires a stale file


def metrics_dir() -> Path | None:
    return workers.current().metrics_dir


def _write(directory: Path, data: bytes, pid: int) -> None:
    """Replace this worker's file whole (blocking)."""
    global _owner
    path = directory / f"worker-{pid}.json"
    if _owner != pid:
        # A file under our pid is a dead predecessor's (pids get reused): keep its counts.
        with contextlib.suppress(FileNotFoundError):
            path.rename(directory / f"retired-{pid}-{os.urandom(4).hex()}.json")
        _owner = pid
    tmp = directory / f".worker-{pid}-{os.urandom(4).hex()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_others(directory: Path, own_pid: int) -> list[tuple[Dump, bool]]:
    """Every other worker's last dump, and whether that worker is alive (blocking)."""
    out: list[tuple[Dump, bool]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        log.warning("cannot read metrics directory %s: %s", directory, exc.strerror)
        return out
    for entry in entries:
        name = entry.name
        if not name.endswith(".json") or name == f"worker-{own_pid}.json":
            continue
        if not (name.startswith("worker-") or name.startswith("retired-")):
            continue
        try:
            d = _decode(Path(entry.path).read_bytes())
        except (OSError, msgspec.DecodeError):
            continue  # vanished, or not ours
        out.append((d, name.startswith("worker-") and _alive(d.pid)))
    return out


def flush() -> None:
    """Publish now (blocking; for shutdown, after the publisher task has stopped)."""
    directory = metrics_dir()
    if directory is None:
        return
    REGISTRY.dirty = False
    try:
        _write(directory, _encode(dump()), os.getpid())
    except OSError as exc:
        log.warning("cannot publish metrics to %s: %s", directory, exc.strerror)


async def _publish(directory: Path) -> None:
    global _lock
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:  # writes land in the order their dumps were taken
        REGISTRY.dirty = False
        data = _encode(dump())
        try:
            await asyncio.to_thread(_write, directory, data, os.getpid())
        except OSError as exc:
            REGISTRY.dirty = True
            log.warning("cannot publish metrics to %s: %s", directory, exc.strerror)


async def run_publisher(
    info: Callable[[], RuntimeInfo] | None = None, interval: float = PUBLISH_INTERVAL
) -> None:
    """Publish this worker's state whenever it changed, at most every `interval`; forever.

    `info` (e.g. `runtime.metrics_info`) lets circuit states and reload counts
    reach other workers' scrapes too. Returns at once without a metrics directory.
    """
    directory = metrics_dir()
    if directory is None:
        return
    while True:
        if info is not None:
            REGISTRY.apply(info())
        if REGISTRY.dirty:
            await _publish(directory)
        await asyncio.sleep(interval)


def render(info: RuntimeInfo | None = None) -> str:
    """The whole gateway's metrics in Prometheus text format (blocking when multi-worker)."""
    if info is not None:
        REGISTRY.apply(info)
    own = dump()
    directory = metrics_dir()
    if directory is None:
        return text(own, [])
    REGISTRY.dirty = False
    try:
        _write(directory, _encode(own), own.pid)
    except OSError as exc:
        log.warning("cannot publish metrics to %s: %s", directory, exc.strerror)
    return text(own, _read_others(directory, own.pid))


async def scrape(info: RuntimeInfo | None = None) -> str:
    """`render` for a request handler: the file work runs off the event loop."""
    if info is not None:
        REGISTRY.apply(info)
    directory = metrics_dir()
    if directory is None:
        return text(dump(), [])
    await _publish(directory)
    own = dump()
    others = await asyncio.to_thread(_read_others, directory, own.pid)
    return text(own, others)
