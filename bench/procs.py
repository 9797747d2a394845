"""Start and stop the benchmark's processes by PID, pin them to cores, read their memory.

Invariant: every process started here is registered the moment it exists, and
`Procs.stop_all()` (run from `finally`, so also on Ctrl-C and SIGTERM) stops each one by
its PID: SIGTERM, a bounded wait, then SIGKILL; descendants that outlive their parent (a
granian worker, say) are killed by PID too, after checking the PID was not reused.
Children also get PR_SET_PDEATHSIG, so even a SIGKILLed benchmark leaves nothing behind.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _preexec(cores: frozenset[int] | None, use_affinity: bool) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cores and use_affinity:
            os.sched_setaffinity(0, cores)

    return run


def cores_arg(cores: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the `(comm)` field: [state, ppid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> str | None:
    """The process's start time (ticks since boot): with the PID, it names one process.
    None when gone or a zombie."""
    fields = _stat_fields(pid)
    if not fields or len(fields) <= 19 or fields[0] == "Z":
        return None
    return fields[19]


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid, found by scanning /proc for parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    stack = [pid]
    while stack and len(out) < 10_000:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_memory(pid: int, kids: Sequence[int] | None = None) -> dict[str, float]:
    """RSS of a process tree in KiB: the main process, the sum over its descendants (the
    granian workers) and both together; *_hwm are the kernel's per-process peaks summed.
    Pass kids (from descendants()) to skip the /proc scan when sampling often."""
    kids = descendants(pid) if kids is None else kids
    main = _status_kib(pid, "VmRSS") or 0
    main_hwm = _status_kib(pid, "VmHWM") or 0
    workers = sum(_status_kib(k, "VmRSS") or 0 for k in kids)
    workers_hwm = sum(_status_kib(k, "VmHWM") or 0 for k in kids)
    return {
        "main_kib": float(main),
        "workers_kib": float(workers),
        "total_kib": float(main + workers),
        "workers_hwm_kib": float(workers_hwm),
        "total_hwm_kib": float(main_hwm + workers_hwm),
        "processes": float(1 + len(kids)),
    }


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int, kids: Sequence[int] | None = None) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants: read before
    and after a run, the difference over the requests served is its CPU per request."""
    total = 0
    for p in [pid, *(descendants(pid) if kids is None else kids)]:
        fields = _stat_fields(p)
        if fields and len(fields) > 12:
            total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return total / _TICK


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class Procs:
    """The registry of everything this benchmark started."""

    def __init__(self, log_dir: Path, use_taskset: bool) -> None:
        self.log_dir = log_dir
        self.use_taskset = use_taskset and shutil.which("taskset") is not None
        self._procs: list[Proc] = []
        self.history: list[Proc] = []  # everything ever started, for the logs in the results

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cores: frozenset[int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        """Start argv pinned to cores (taskset when available, else sched_setaffinity)."""
        full = list(argv)
        if cores and self.use_taskset:
            full = ["taskset", "-c", cores_arg(cores), *full]
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # Ctrl-C reaches us, and we stop them in order
                preexec_fn=_preexec(cores, not self.use_taskset),
            )
        proc = Proc(name, popen, log, full)
        self._procs.append(proc)
        self.history.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 5.0) -> None:
        family = [(pid, _start_time(pid)) for pid in descendants(proc.pid)]
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=timeout)
        deadline = time.monotonic() + 2.0
        for pid, started in family:
            while _start_time(pid) == started and time.monotonic() < deadline:
                time.sleep(0.02)  # let the parent's own shutdown finish first
            if started is not None and _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)
