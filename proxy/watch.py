"""Noticing config changes: poll the file, and a shared stamp file that asks every worker to
reload.

A file change is acted on once it has settled: the same stat signature on two polls in a row
and a modification time at least `SETTLE` old (an editor's delete-then-rename burst, or a slow
in-place write, is read once, whole); a missing file (mid-rename) is not an edit. Settling
narrows the window for reading a half-written file but cannot close it (a writer may pause for
any time): `proxy.reload_guard` refuses the one dangerous result, auth switched off.

With several granian workers each worker watches on its own; admin reloads and SIGHUP
touch the stamp (`WorkerSettings.stamp_path`) so that all workers reload.
"""

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger("llm_proxy.reload")

POLL = 0.25  # seconds between file checks: a change is live within about a second
SETTLE = 0.5  # seconds a changed file must stay untouched before it is read

Signature = tuple[int, int, int]


def signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Stamp:
    """The shared file whose change means "reload": touched by one worker, seen by all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sig = signature(path)

    def touch(self) -> None:
        try:
            self.path.touch()
            os.utime(self.path, None)
        except OSError as exc:
            log.warning("cannot touch reload stamp %s: %s", self.path, exc.strerror)
        self.sig = signature(self.path)  # our own touch is not a request to us

    def changed(self) -> bool:
        sig = signature(self.path)
        if sig == self.sig:
            return False
        self.sig = sig
        return True


class Watched(Protocol):
    """What the watcher needs of the runtime."""

    path: Path
    file_sig: Signature | None  # the file as last read by a reload

    async def reload(self, reason: str) -> object: ...

    def close_retired(self) -> None: ...


def settled(sig: Signature, now_ns: int, settle: float = SETTLE) -> bool:
    """Untouched for `settle` seconds; a modification time in the future counts as settled
    (a clock step must not stop reloads for good)."""
    age = now_ns - sig[0]
    return not 0 <= age < settle * 1e9


async def watch(runtime: Watched, stamp: Stamp | None, poll: float = POLL) -> None:
    """Poll the config file and the stamp; reload on a settled change. Runs until cancelled."""
    pending: Signature | None = None
    while True:
        await asyncio.sleep(poll)
        runtime.close_retired()
        if stamp is not None and stamp.changed():
            await runtime.reload("reload requested")
            continue
        sig = signature(runtime.path)
        if sig is None or sig == runtime.file_sig:
            pending = None  # a missing file (mid-rename) is not an edit: keep serving
            continue
        if sig != pending:
            pending = sig  # debounce: act once the file has stopped changing
            continue
        if not settled(sig, time.time_ns()):
            continue  # still fresh: the writer may not be done
        pending = None
        await runtime.reload("file changed")
