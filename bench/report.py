"""Statistics over measured runs and the Markdown table: pure functions, no clock, no I/O.

Invariant: a run or scenario that errored still yields a row (ERROR + message); nothing a
benchmark attempted is silently dropped from the table.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
Cell = float | str | None
COLUMNS = ("direct", "floor", "litestar", "gateway", "compare")


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks, as
    numpy's default; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float | None:
    return percentile(values, 50)


def ratio(num: float | None, den: float | None) -> float | None:
    """num ÷ den, or None when either is missing or den is zero."""
    if num is None or den is None or den == 0:
        return None
    return num / den


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def rotate(items: Sequence[T], k: int) -> list[T]:
    """items rotated left by k: round r of a benchmark runs targets in rotate(targets, r)."""
    if not items:
        return []
    k %= len(items)
    return [*items[k:], *items[:k]]


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """count, mean and the usual percentiles of one run's latencies (ms)."""
    if not latencies_ms:
        return {"count": 0.0}
    out = {"count": float(len(latencies_ms)), "mean": sum(latencies_ms) / len(latencies_ms)}
    for name, q in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0)):
        value = percentile(latencies_ms, q)
        assert value is not None
        out[name] = value
    return out


@dataclass(frozen=True)
class Run:
    """One measurement of one case on one target in one round: metrics, or an error."""

    scenario: str
    case: str
    target: str
    round: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None


def aggregate(runs: Iterable[Run]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(scenario, case, target) → metric → median over the rounds that succeeded."""
    samples: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for run in runs:
        if run.error is not None:
            continue
        per_metric = samples.setdefault((run.scenario, run.case, run.target), {})
        for name, value in run.metrics.items():
            per_metric.setdefault(name, []).append(value)
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for key, per_metric in samples.items():
        out[key] = {}
        for name, values in per_metric.items():
            m = median(values)
            if m is not None:
                out[key][name] = m
    return out


def first_errors(runs: Iterable[Run]) -> dict[tuple[str, str, str], str]:
    """(scenario, case, target) → the first error message, for cases where no round succeeded."""
    ok: set[tuple[str, str, str]] = set()
    errors: dict[tuple[str, str, str], str] = {}
    for run in runs:
        key = (run.scenario, run.case, run.target)
        if run.error is None:
            ok.add(key)
        else:
            errors.setdefault(key, run.error)
    return {key: msg for key, msg in errors.items() if key not in ok}


def failed_rounds(runs: Iterable[Run]) -> dict[tuple[str, str, str], tuple[int, int, str]]:
    """(scenario, case, target) → (rounds failed, rounds run, first error) where any failed."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    messages: dict[tuple[str, str, str], str] = {}
    for run in runs:
        key = (run.scenario, run.case, run.target)
        tally = counts.setdefault(key, [0, 0])
        tally[1] += 1
        if run.error is not None:
            tally[0] += 1
            messages.setdefault(key, run.error)
    return {key: (f, n, messages[key]) for key, (f, n) in counts.items() if f}


@dataclass(frozen=True)
class Row:
    """One line of the table. cells maps a column (direct/gateway/compare) to a number, a
    word, or None; with show_ratio each non-direct number is also shown ÷ direct."""

    scenario: str
    metric: str
    cells: Mapping[str, Cell] = field(default_factory=dict)
    show_ratio: bool = True
    digits: int = 2
    error: str | None = None


def error_row(scenario: str, message: str, target: str | None = None) -> Row:
    label = "ERROR" if target is None else f"ERROR ({target})"
    return Row(scenario, label, {}, show_ratio=False, error=message)


def format_cell(value: Cell, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if math.isnan(value) or math.isinf(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def number(value: Cell) -> float | None:
    """A cell's number, or None for a word, an error or nothing."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def render_table(rows: Sequence[Row], columns: Sequence[str] = ("direct", "gateway")) -> str:
    """A Markdown table: scenario, metric, then each column, with `X ÷ direct` after every
    column but direct."""
    header = ["scenario", "metric"]
    for col in columns:
        header.append(col)
        if col != "direct":
            header.append(f"{col} ÷ direct")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_escape(row.scenario), _escape(row.metric)]
        if row.error is not None:
            cells.append(_escape(row.error)[:300])
            cells.extend([""] * (len(header) - 3))
        else:
            direct = number(row.cells.get("direct"))
            for col in columns:
                value = row.cells.get(col)
                cells.append(_escape(format_cell(value, row.digits)))
                if col != "direct":
                    shown = ratio(number(value), direct) if row.show_ratio else None
                    cells.append(format_ratio(shown) if row.show_ratio else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
