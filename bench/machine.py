"""Facts about the machine a benchmark ran on, and which cores each side gets.

The core plan keeps the gateway and the load side (load generator + upstreams) on
disjoint cores whenever there are two or more; with one core it says they share it.
"""

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGES = ("granian", "litestar", "aiohttp", "msgspec", "uvloop", "opentelemetry-sdk")


def parse_cores(text: str) -> frozenset[int]:
    """`0,2-3` → {0, 2, 3}, as taskset -c reads it."""
    cores: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or first < 0:
            raise ValueError(f"bad core range {part!r}")
        cores.update(range(first, last + 1))
    if not cores:
        raise ValueError(f"no cores in {text!r}")
    return frozenset(cores)


@dataclass(frozen=True)
class CorePlan:
    gateway: frozenset[int] | None
    load: frozenset[int] | None
    method: str  # "taskset -c", "sched_setaffinity" or "none"
    note: str

    def describe(self) -> str:
        if self.gateway is None or self.load is None:
            return f"no pinning ({self.note})"

        def fmt(c: frozenset[int]) -> str:
            return ",".join(map(str, sorted(c)))

        return (
            f"gateway on core(s) {fmt(self.gateway)}; load generator + upstreams on "
            f"core(s) {fmt(self.load)} (via {self.method}){'; ' + self.note if self.note else ''}"
        )


def plan_cores(
    available: Sequence[int],
    taskset: bool,
    gateway: frozenset[int] | None = None,
    load: frozenset[int] | None = None,
    pin: bool = True,
) -> CorePlan:
    """Gateway on the first half of the available cores, the load side on the rest."""
    cores = sorted(available)
    if not pin:
        return CorePlan(None, None, "none", "pinning turned off (--no-pin)")
    if len(cores) < 2 and gateway is None:
        return CorePlan(None, None, "none", "fewer than 2 cores: everything shares one")
    half = max(1, len(cores) // 2)
    gw = gateway if gateway is not None else frozenset(cores[:half])
    ld = load if load is not None else frozenset(c for c in cores if c not in gw) or gw
    note = "" if not gw & ld else "gateway and load cores overlap"
    return CorePlan(gw, ld, "taskset -c" if taskset else "sched_setaffinity", note)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + out.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else None


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def facts() -> dict[str, object]:
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {
        "cores_online": os.cpu_count(),
        "cores_usable": sorted(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "memory_kib": mem_kib,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "wrk": _version(["wrk", "--version"]),
        "nginx": _version(["nginx", "-v"]),
        "taskset": shutil.which("taskset") is not None,
    }
