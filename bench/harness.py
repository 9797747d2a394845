"""The benchmark's shared state: targets, settings, and the round loop that records runs.

Invariant: every (round, case, target) that was attempted becomes exactly one `Run` in
`Bench.runs` — metrics or an error message — and targets run in an order rotated each
round, so no target always goes first (cold) or last (after the machine warmed up).
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import wrk
from bench.load import chat_body, closed_loop
from bench.procs import descendants, tree_cpu_s
from bench.report import (
    Cell,
    Row,
    Run,
    aggregate,
    error_row,
    failed_rounds,
    first_errors,
    rotate,
)

Kind = str  # "json" | "sse" | "stream": which upstream behaviour a request needs


class RunError(Exception):
    """A run finished but its result can't be trusted (too many failed requests)."""


@dataclass
class Target:
    """Somewhere to send requests. column is the table column its numbers land in;
    broken maps a kind to why requests of that kind can't be sent there."""

    name: str
    column: str
    urls: Mapping[Kind, str]
    models: Mapping[Kind, str]
    pid: int | None = None
    broken: dict[Kind, str] = field(default_factory=dict)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Settings:
    rounds: int = 3
    unloaded_s: float = 3.0
    duration_s: float = 3.0
    connections: tuple[int, ...] = (32, 64)
    scaling_connections: int = 64
    sse_connections: int = 32
    rates: tuple[float, ...] = (200.0, 1000.0)
    stream_counts: tuple[int, ...] = (50, 1000)
    stream_chunks: int = 20
    memory_streams: int = 1000
    memory_chunks: int = 30
    memory_gap_ms: float = 100.0  # streams held open ~3 s, at a rate the load side can keep
    stream_timeout_s: float = 60.0
    first_ms: float = 50.0
    gap_ms: float = 10.0
    load_tool: str = "wrk"  # or "python"
    load_prefix: list[str] = field(default_factory=list)  # taskset for wrk
    workdir: Path = Path()
    max_error_fraction: float = 0.01


Measure = Callable[[Target], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class Case:
    label: str
    kind: Kind
    measure: Measure


@dataclass
class Bench:
    settings: Settings
    targets: list[Target]
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    start_gateway: Callable[[str, int, Mapping[str, str]], Awaitable[Target]] | None = None
    stop_gateway: Callable[[Target], None] | None = None

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)

    async def play(self, scenario: str, cases: Sequence[Case], targets: Sequence[Target]) -> None:
        """Every case on every target, `rounds` times, the target order rotated per round."""
        for rnd in range(self.settings.rounds):
            for case in cases:
                for target in rotate(targets, rnd):
                    reason = target.broken.get(case.kind)
                    if reason is not None:
                        self.runs.append(Run(scenario, case.label, target.name, rnd, error=reason))
                        continue
                    try:
                        metrics = await case.measure(target)
                    except Exception as exc:  # noqa: BLE001 (reported in the table, never dropped)
                        message = f"{type(exc).__name__}: {exc}"
                        self.runs.append(Run(scenario, case.label, target.name, rnd, error=message))
                    else:
                        self.runs.append(Run(scenario, case.label, target.name, rnd, metrics))

    def medians(self, scenario: str, case: str, target: str) -> dict[str, float]:
        scoped = (r for r in self.runs if r.scenario == scenario and r.case == case)
        return aggregate(scoped).get((scenario, case, target), {})

    def values(self, scenario: str, case: str, target: str, metric: str) -> list[float]:
        """One metric of every successful round, in round order."""
        return [
            r.metrics[metric]
            for r in self.runs
            if (r.scenario, r.case, r.target) == (scenario, case, target)
            and r.error is None
            and metric in r.metrics
        ]

    def cell(self, scenario: str, case: str, target: Target | None, metric: str) -> Cell:
        if target is None:
            return None
        value = self.medians(scenario, case, target.name).get(metric)
        if value is None and (scenario, case, target.name) in first_errors(self.runs):
            return "ERROR"
        return value

    def cells(
        self, scenario: str, case: str, metric: str, targets: Sequence[Target]
    ) -> dict[str, Cell]:
        return {t.column: self.cell(scenario, case, t, metric) for t in targets}

    def error_rows(self, scenario: str) -> list[Row]:
        """One row per target and message for cases where any round failed; when some
        rounds succeeded the numbers above are their medians, and the row says so."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for (scen, case, target), (failed, total, message) in failed_rounds(self.runs).items():
            if scen != scenario:
                continue
            if failed < total:
                message = f"{failed} of {total} rounds failed (medians from the rest): {message}"
            grouped.setdefault((target, message), []).append(case)
        return [
            error_row(scenario, f"{', '.join(cases)}: {message}", target)
            for (target, message), cases in grouped.items()
        ]


def check_errors(errors: float, ok: float, first_error: str | None, fraction: float) -> None:
    total = errors + ok
    if total == 0:
        raise RunError("no request completed")
    if errors / total > fraction:
        raise RunError(f"{int(errors)} of {int(total)} requests failed; first: {first_error}")


async def load(
    bench: Bench, target: Target, kind: Kind, connections: int, duration_s: float
) -> dict[str, float]:
    """Closed-loop load on one target with wrk, or the Python client without it."""
    s = bench.settings
    body = chat_body(target.models[kind], stream=kind != "json")
    url = target.urls[kind]
    kids = None if target.pid is None else descendants(target.pid)
    cpu0 = None if target.pid is None else tree_cpu_s(target.pid, kids)
    if s.load_tool == "wrk":
        result = await wrk.run_wrk(url, body, connections, duration_s, s.workdir, s.load_prefix)
        metrics, errors, ok = result.metrics(), result.errors, result.requests - result.non2xx
        first: str | None = f"{result.non2xx} non-2xx, socket errors {result.socket_errors}"
    else:
        py = await closed_loop(url, body, connections, duration_s)
        metrics, errors, ok, first = py.metrics(), py.errors, len(py.latencies_ms), py.first_error
    check_errors(errors, ok, first, s.max_error_fraction)
    if target.pid is not None and cpu0 is not None and ok:
        # the target's whole process tree (granian's main process and its workers)
        metrics["cpu_ms_per_req"] = (tree_cpu_s(target.pid, kids) - cpu0) * 1000 / ok
    return metrics
