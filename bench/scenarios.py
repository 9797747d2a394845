"""The scenarios: each plays its cases on the targets and turns per-round medians into rows.

Every scenario returns rows for what it measured and an ERROR row for each case/target
that never succeeded (Bench.error_rows), so nothing attempted goes missing.
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping

from bench.harness import Bench, Case, RunError, Target, check_errors, load
from bench.load import Pace, chat_body, closed_loop, paced, streams
from bench.procs import descendants, tree_memory
from bench.report import Cell, Row, difference, number
from bench.targets import targets
from bench.variants import tracing, workers

OVERHEAD_HEADER = "x-proxy-overhead-ms"
_tags = itertools.count()
MIB = 1024.0


def _main(b: Bench) -> list[Target]:
    return [t for t in b.targets if t.name in ("direct", "gateway", "compare")]


def _with_floors(b: Bench) -> list[Target]:
    """The main targets and the bare-stack floor and plain Litestar (JSON only)."""
    return [t for t in b.targets if t.name in ("direct", "floor", "litestar", "gateway", "compare")]


def _vs_direct(
    b: Bench, scen: str, case: str, metric: str, targets: list[Target]
) -> dict[str, Cell]:
    """X - direct for every non-direct target: the milliseconds a gateway adds."""
    direct = number(b.cell(scen, case, b.target("direct"), metric))
    out: dict[str, Cell] = {"direct": None}
    for t in targets:
        if t.column != "direct":
            value = b.cell(scen, case, t, metric)
            out[t.column] = "ERROR" if value == "ERROR" else difference(number(value), direct)
    return out


async def unloaded(b: Bench) -> list[Row]:
    s, targets, scen = b.settings, _with_floors(b), "unloaded"
    await b.play(
        scen, [Case("c=1", "json", lambda t: load(b, t, "json", 1, s.unloaded_s))], targets
    )
    label = "unloaded c=1"
    rows = [Row(label, f"{m} ms", b.cells(scen, "c=1", m, targets)) for m in ("p50", "p99")]
    for m in ("p50", "p99"):
        rows.append(Row(label, f"added {m} ms", _vs_direct(b, scen, "c=1", m, targets), False))
    return rows + b.error_rows(scen)


async def throughput(b: Bench) -> list[Row]:
    s, targets, scen = b.settings, _with_floors(b), "throughput"

    def case(c: int) -> Case:
        return Case(f"c={c}", "json", lambda t: load(b, t, "json", c, s.duration_s))

    await b.play(scen, [case(c) for c in s.connections], targets)
    rows = []
    for c in s.connections:
        for metric, title in (("rps", "req/s"), ("p50", "p50 ms"), ("p99", "p99 ms")):
            rows.append(Row(f"throughput c={c}", title, b.cells(scen, f"c={c}", metric, targets)))
        cpu = b.cells(scen, f"c={c}", "cpu_ms_per_req", targets)
        rows.append(Row(f"throughput c={c}", "CPU ms per request (process tree)", cpu, False, 3))
    return rows + b.error_rows(scen)


async def fixed_rate(b: Bench) -> list[Row]:
    s, targets, scen = b.settings, _main(b), "fixed_rate"

    def case(rate: float) -> Case:
        async def measure(t: Target) -> dict[str, float]:
            r = await paced(t.urls["json"], chat_body(t.models["json"]), rate, s.duration_s)
            # requests not sent (in-flight cap) are the rate not held, not errors
            check_errors(r.errors, len(r.latencies_ms), r.first_error, s.max_error_fraction)
            return r.metrics()

        return Case(f"{rate:g}/s", "json", measure)

    await b.play(scen, [case(r) for r in s.rates], targets)
    rows = []
    for rate in s.rates:
        label, key = f"fixed rate {rate:g}/s", f"{rate:g}/s"
        rows.append(Row(label, "achieved req/s", b.cells(scen, key, "rps", targets)))
        rows.append(Row(label, "p50 ms (from schedule)", b.cells(scen, key, "p50", targets)))
        rows.append(Row(label, "p99 ms (from schedule)", b.cells(scen, key, "p99", targets)))
        held: dict[str, Cell] = {}
        for t in targets:
            values = b.values(scen, key, t.name, "held")
            dropped = int(sum(b.values(scen, key, t.name, "dropped")))
            text = f"{int(sum(values))}/{len(values)} rounds" if values else "ERROR"
            held[t.column] = f"{text}, {dropped} not sent (in-flight cap)" if dropped else text
        rows.append(Row(label, "rate held", held, False))
    return rows + b.error_rows(scen)


async def sse(b: Bench) -> list[Row]:
    s, targets, scen = b.settings, _main(b), "sse"
    c = s.sse_connections
    await b.play(
        scen, [Case(f"c={c}", "sse", lambda t: load(b, t, "sse", c, s.duration_s))], targets
    )
    rows = [
        Row(f"static SSE c={c}", title, b.cells(scen, f"c={c}", metric, targets))
        for metric, title in (("rps", "streams/s"), ("p50", "p50 ms"), ("p99", "p99 ms"))
    ]
    return rows + b.error_rows(scen)


def _stream_case(b: Bench, n: int, chunks: int) -> Case:
    s = b.settings

    async def measure(t: Target) -> dict[str, float]:
        tag = f"{t.name}-{n}-{next(_tags)}-"
        pace = Pace(s.first_ms, s.gap_ms)
        url, model = t.urls["stream"], t.models["stream"]
        r = await streams(url, model, n, chunks, s.stream_timeout_s, tag, pace)
        if r.failed == n:
            raise RunError(f"all {n} streams failed; first: {r.first_error}")
        return r.metrics()

    return Case(f"n={n}", "stream", measure)


def _correctness(b: Bench, scen: str, key: str, targets: list[Target]) -> dict[str, Cell]:
    out: dict[str, Cell] = {}
    for t in targets:
        sums = [
            sum(b.values(scen, key, t.name, m)) for m in ("lost", "reordered", "garbled", "failed")
        ]
        rounds = len(b.values(scen, key, t.name, "lost"))
        out[t.column] = " / ".join(str(int(v)) for v in sums) if rounds else "ERROR"
    return out


async def stream_scenario(b: Bench) -> list[Row]:
    s, targets, scen = b.settings, _main(b), "streams"
    await b.play(scen, [_stream_case(b, n, s.stream_chunks) for n in s.stream_counts], targets)
    rows = []
    for n in s.stream_counts:
        label, key = f"streams n={n}", f"n={n}"
        for metric, title in (("ttft_p50", "TTFT p50 ms"), ("ttft_p99", "TTFT p99 ms")):
            rows.append(Row(label, title, b.cells(scen, key, metric, targets)))
        rows.append(Row(label, "inter-chunk gap p99 ms", b.cells(scen, key, "gap_p99", targets)))
        lateness = b.cells(scen, key, "late_p99", targets)
        rows.append(Row(label, "event lateness p99 ms (vs upstream schedule)", lateness))
        rows.append(
            Row(
                label,
                "lost / reordered / garbled / failed (all rounds)",
                _correctness(b, scen, key, targets),
                False,
            )
        )
        late = number(b.cell(scen, key, b.target("direct"), "late_p99"))
        if late is not None and late > max(5 * s.gap_ms, 25.0):
            b.notes.append(
                f"streams n={n}: even direct, events arrive {late:.0f} ms (p99) after the "
                f"upstream's schedule: the load side (upstream + client, one core) is saturated, "
                "so these rows measure the machine more than the gateway."
            )
    return rows + b.error_rows(scen)


async def overhead(b: Bench) -> list[Row]:
    s, targets, scen = b.settings, _main(b), "overhead"

    async def measure(t: Target) -> dict[str, float]:
        body = chat_body(t.models["json"])
        r = await closed_loop(t.urls["json"], body, 1, s.unloaded_s, header=OVERHEAD_HEADER)
        check_errors(r.errors, len(r.latencies_ms), r.first_error, s.max_error_fraction)
        return r.metrics()

    await b.play(scen, [Case("c=1", "json", measure)], targets)
    label, rows = "overhead c=1", []
    for m in ("p50", "p99"):
        header = b.cells(scen, "c=1", f"header_{m}", targets)
        header["direct"] = None
        rows.append(Row(label, f"{OVERHEAD_HEADER} {m}", header, False))
        added = _vs_direct(b, scen, "c=1", m, targets)
        rows.append(Row(label, f"measured added {m} ms", added, False))
        rest = {
            k: difference(number(added.get(k)), number(v))
            for k, v in header.items()
            if k != "direct"
        }
        rows.append(Row(label, f"added - header {m} ms (outside the gateway's clock)", rest, False))
    gw = b.target("gateway")
    if (
        gw is not None
        and not b.values(scen, "c=1", gw.name, "header_p50")
        and b.values(scen, "c=1", gw.name, "p50")
    ):
        b.notes.append(f"overhead: the gateway sent no {OVERHEAD_HEADER} header.")
    return rows + b.error_rows(scen)


def _both(t: Target, mark: str) -> Cell:
    m = t.memory.get(mark)
    return None if m is None else f"{m['workers_kib'] / MIB:.1f} / {m['total_kib'] / MIB:.1f}"


def _per_stream(
    peak_kib: float | None, mark: Mapping[str, float] | None, opened: float | None
) -> float | None:
    if peak_kib is None or mark is None or not opened:
        return None
    return (peak_kib - mark["workers_kib"]) * 1024 / opened


async def memory(b: Bench) -> list[Row]:
    s, scen = b.settings, "memory"
    gw = b.target("gateway")
    if gw is None or gw.pid is None:
        return [Row("memory", "ERROR", {}, False, error="no gateway process of ours to measure")]
    pid = gw.pid
    n = s.memory_streams

    async def measure(t: Target) -> dict[str, float]:
        kids = descendants(pid)
        before = tree_memory(pid, kids)
        peak = dict(before)

        async def sample() -> None:
            for _ in range(int(s.stream_timeout_s * 20) + 100):
                now = tree_memory(pid, kids)
                for k in ("workers_kib", "total_kib"):
                    peak[k] = max(peak[k], now[k])
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        try:
            pace = Pace(s.first_ms, s.memory_gap_ms, send=True)
            url, model, tag = t.urls["stream"], t.models["stream"], f"mem{next(_tags)}-"
            r = await streams(url, model, n, s.memory_chunks, s.stream_timeout_s, tag, pace)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        end = tree_memory(pid, kids)
        if r.failed == n:
            raise RunError(f"all {n} streams failed; first: {r.first_error}")
        opened = max(1, r.max_open)
        return {
            "before_workers_kib": before["workers_kib"],
            "peak_workers_kib": peak["workers_kib"],
            "peak_total_kib": peak["total_kib"],
            "hwm_total_kib": end["total_hwm_kib"],
            "bytes_per_stream": (peak["workers_kib"] - before["workers_kib"]) * 1024 / opened,
            "max_open": float(r.max_open),
            "lost": float(r.lost),
        }

    await b.play(scen, [Case(f"n={n}", "stream", measure)], [gw])
    key = f"n={n}"

    def mib(kib: float | None) -> Cell:
        return None if kib is None else kib / MIB

    def both(mark: str) -> Cell:
        return _both(gw, mark)

    rows_floor: list[Row] = []
    for floor in (b.target("floor"), b.target("litestar")):
        if floor is not None and floor.memory.get("warm"):
            rows_floor.append(
                Row(
                    "memory",
                    f"{floor.name}: RSS after warm-up MiB (workers / all)",
                    {"gateway": _both(floor, "warm")},
                    False,
                )
            )
    med = b.medians(scen, key, gw.name)
    opened = med.get("max_open")
    if opened is not None and opened < n:
        b.notes.append(
            f"memory: only {opened:.0f} of {n} streams were open at once; bytes per open stream "
            "divides by that number."
        )
    rows = [
        Row("memory", "RSS after start MiB (workers / all)", {"gateway": both("start")}, False),
        Row("memory", "RSS after warm-up MiB (workers / all)", {"gateway": both("warm")}, False),
        Row(
            "memory",
            f"RSS peak during {n} streams MiB (workers)",
            {"gateway": mib(med.get("peak_workers_kib"))},
            False,
            1,
        ),
        Row(
            "memory",
            "RSS peak of the run MiB (VmHWM, all)",
            {"gateway": mib(med.get("hwm_total_kib"))},
            False,
            1,
        ),
        Row(
            "memory",
            f"bytes per open stream (n={n}): peak - RSS just before",
            {"gateway": med.get("bytes_per_stream")},
            False,
            0,
        ),
        Row(
            "memory",
            f"bytes per open stream (n={n}): peak - RSS after warm-up",
            {"gateway": _per_stream(med.get("peak_workers_kib"), gw.memory.get("warm"), opened)},
            False,
            0,
        ),
        Row("memory", "streams open at once (max)", {"gateway": med.get("max_open")}, False, 0),
    ]
    return rows + rows_floor + b.error_rows(scen)


SCENARIOS: dict[str, Callable[[Bench], Awaitable[list[Row]]]] = {
    "unloaded": unloaded,
    "throughput": throughput,
    "fixed_rate": fixed_rate,
    "sse": sse,
    "streams": stream_scenario,
    "overhead": overhead,
    "memory": memory,
    "workers": workers,
    "tracing": tracing,
    "targets": targets,
}
