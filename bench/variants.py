"""Scenarios that start a second gateway differently (more workers, tracing on) and run it
against the default one, same load, same rounds."""

from collections.abc import Mapping
from dataclasses import dataclass

from bench.harness import Bench, Case, Target, load
from bench.procs import tree_memory
from bench.report import Cell, Row, number, ratio

MIB = 1024.0


@dataclass(frozen=True)
class Variant:
    """A second gateway, started differently: its name, workers, environment and title."""

    name: str
    workers: int
    env: Mapping[str, str]
    title: str


async def _variants(
    b: Bench, scen: str, base_title: str, variants: list[Variant], connections: int
) -> list[Row]:
    """The default gateway against gateways started differently, same load, same rounds."""
    assert b.start_gateway is not None and b.stop_gateway is not None
    s = b.settings
    direct, base = b.target("direct"), b.target("gateway")
    started: list[Target] = []
    try:
        for v in variants:
            started.append(await b.start_gateway(v.name, v.workers, v.env))
        c = connections
        targets = [t for t in (direct, base, *started) if t is not None]
        await b.play(
            scen, [Case(f"c={c}", "json", lambda t: load(b, t, "json", c, s.duration_s))], targets
        )
        key, rows = f"c={c}", []
        titled = [
            (base_title, base),
            *((v.title, t) for v, t in zip(variants, started, strict=True)),
        ]
        for title, t in titled:
            pair = [x for x in (direct, t) if x is not None]
            for metric, unit in (("rps", "req/s"), ("p50", "p50 ms"), ("p99", "p99 ms")):
                rows.append(Row(f"{title} c={c}", unit, b.cells(scen, key, metric, pair)))
            cpu = b.cells(scen, key, "cpu_ms_per_req", pair)
            rows.append(Row(f"{title} c={c}", "CPU ms per request", cpu, False, 3))
        g1 = number(b.cell(scen, key, base, "rps"))
        for v, t in zip(variants, started, strict=True):
            g2 = number(b.cell(scen, key, t, "rps"))
            rows.append(
                Row(f"{v.title} ÷ {base_title}", "req/s ratio", {"gateway": ratio(g2, g1)}, False)
            )
            start = t.memory.get("start")
            if start is not None:
                after_start = start["total_kib"] / MIB
                rows.append(
                    Row(v.title, "RSS after start MiB (all)", {"gateway": after_start}, False, 1)
                )
            if t.pid is not None:
                end = tree_memory(t.pid)
                after: Cell = end["total_kib"] / MIB if end["main_kib"] else "process gone"
                rows.append(
                    Row(v.title, "RSS after its runs MiB (all)", {"gateway": after}, False, 1)
                )
    finally:
        for t in started:
            b.stop_gateway(t)
    return rows + b.error_rows(scen)


async def workers(b: Bench) -> list[Row]:
    w2 = Variant("gateway-w2", 2, {}, "workers=2")
    return await _variants(b, "workers", "workers=1", [w2], b.settings.scaling_connections)


# Spans go through a batch processor, as in production; the exporter keeps them in memory so
# the run measures the gateway's span work, not a collector's network.
TRACED = {"LLM_PROXY_TRACING": "memory", "LLM_PROXY_TRACING_PROCESSOR": "batch"}
SAMPLED_RATIO = "0.1"  # the production setting README.md documents


async def tracing(b: Bench) -> list[Row]:
    every = Variant(
        "gateway-traced", 1, {**TRACED, "OTEL_TRACES_SAMPLER": "always_on"}, "tracing, 100 %"
    )
    sampled = Variant(
        "gateway-sampled",
        1,
        {
            **TRACED,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": SAMPLED_RATIO,
        },
        f"tracing, parent-based {float(SAMPLED_RATIO):.0%}",
    )
    return await _variants(b, "tracing", "tracing off", [every, sampled], b.settings.connections[0])
