"""The `targets` section: issue 11's targets from the run's own medians, each with its
verdict. No load of its own: it reads what the other scenarios measured."""

from bench.harness import Bench, Target
from bench.report import Cell, Row, difference, ratio
from bench.variants import SAMPLED_RATIO


def _verdict(value: float | None, target: float, unit: str, higher_is_better: bool) -> Cell:
    if value is None:
        return "not measured in this run"
    shown = f"{value:,.2f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"
    sign = "≥" if higher_is_better else "≤"
    met = value >= target if higher_is_better else value <= target
    gap = abs(value - target)
    tail = (
        "met"
        if met
        else f"missed by {gap:,.2f}{unit}"
        if gap >= 0.005
        else f"missed by {gap:.3f}{unit}"
    )
    return f"{shown} (target {sign} {target:g}{unit}): {tail}"


async def targets(b: Bench) -> list[Row]:
    """The gateway against its targets (issue 11), from this run's medians: throughput and
    CPU as ratios to the bare-stack floor, added latency, tracing cost, streams, memory."""
    floor, gw, direct = b.target("floor"), b.target("gateway"), b.target("direct")

    def med(scen: str, case: str, t: Target | str | None, metric: str) -> float | None:
        """A median of this run; `t` by name for a variant gateway (stopped by now)."""
        if t is None:
            return None
        return b.medians(scen, case, t if isinstance(t, str) else t.name).get(metric)

    def div(a: float | None, c: float | None) -> float | None:
        return ratio(a, c)

    c = b.settings.connections[0]
    rps = div(med("throughput", f"c={c}", gw, "rps"), med("throughput", f"c={c}", floor, "rps"))
    cpu = div(
        med("throughput", f"c={c}", gw, "cpu_ms_per_req"),
        med("throughput", f"c={c}", floor, "cpu_ms_per_req"),
    )
    added = difference(med("unloaded", "c=1", gw, "p50"), med("unloaded", "c=1", direct, "p50"))
    floor_added = difference(
        med("unloaded", "c=1", floor, "p50"), med("unloaded", "c=1", direct, "p50")
    )
    key = f"c={c}"

    def tracing_ratio(name: str) -> float | None:
        return div(med("tracing", key, name, "rps"), med("tracing", key, gw, "rps"))

    n = min(b.settings.stream_counts)
    ttft = difference(
        med("streams", f"n={n}", gw, "ttft_p50"), med("streams", f"n={n}", direct, "ttft_p50")
    )
    per_stream = med("memory", f"n={b.settings.memory_streams}", gw, "bytes_per_stream")
    warm = None if gw is None else gw.memory.get("warm")
    idle = None if warm is None else warm["workers_kib"] * 1024 / 1e6  # MB, one worker
    rows = [
        ("throughput c=32, gateway ÷ floor", _verdict(rps, 0.9, "x", True)),
        ("CPU per request c=32, gateway ÷ floor", _verdict(cpu, 1.15, "x", False)),
        ("added p50 at c=1 (gateway - direct)", _verdict(added, 0.2, " ms", False)),
        ("added p50 at c=1: the floor's own", _verdict(floor_added, 0.2, " ms", False)),
        ("tracing 100 % (batch): throughput ÷ off", _verdict(tracing_ratio("gateway-traced"),
                                                           0.9, "x", True)),
        (f"tracing parent-based {float(SAMPLED_RATIO):.0%}: throughput ÷ off",
         _verdict(tracing_ratio("gateway-sampled"), 0.97, "x", True)),
        (f"streams n={n}: TTFT p50 - direct", _verdict(ttft, 2.0, " ms", False)),
        (f"bytes per open stream (n={b.settings.memory_streams})",
         _verdict(per_stream, 10_000, " B", False)),
        ("RSS per worker after warm-up", _verdict(idle, 80, " MB", False)),
    ]  # fmt: skip
    return [Row("targets (issue 11)", metric, {"gateway": cell}, False) for metric, cell in rows]
