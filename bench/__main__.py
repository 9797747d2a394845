"""`python -m bench`: the gateway's overhead as ratios to calling the upstream directly.

Starts the mock upstreams and the gateway (and takes an optional --compare gateway), runs
each scenario on every target back to back, rotating the order per round, prints one
Markdown table of medians and ratios, and writes every raw run to bench/results/.
Invariant: every process started here is stopped by PID on the way out — normal end,
error, Ctrl-C or SIGTERM.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from bench import machine, wrk
from bench.harness import Bench, Settings, Target
from bench.machine import CorePlan, parse_cores, plan_cores
from bench.probe import probe, warm_up
from bench.procs import Proc, Procs, cores_arg, log_tail, tree_memory
from bench.report import COLUMNS, Row, error_row, render_table
from bench.scenarios import SCENARIOS
from bench.stack import (
    FLOORS,
    REPO,
    compare_target,
    routes_yaml,
    start_floor,
    start_gateway,
    start_upstreams,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round, 1 s runs: about a minute")
    p.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per load run (default 3, quick 1)")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of: " + ", ".join(SCENARIOS),
    )
    p.add_argument(
        "--gateway-cmd",
        help="start the gateway with this command; {python} {config} {host} {port} "
        "{workers} are filled in",
    )
    p.add_argument(
        "--compare",
        metavar="URL",
        help="a third column: another gateway routing the same upstreams",
    )
    p.add_argument(
        "--compare-model",
        action="append",
        default=[],
        metavar="ALIAS=NAME",
        help="model NAME the --compare gateway uses for ALIAS (bench, bench-sse, "
        "bench-stream); repeatable or comma-separated",
    )
    p.add_argument(
        "--load",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="closed-loop load generator (auto: wrk if installed)",
    )
    p.add_argument(
        "--no-nginx",
        action="store_true",
        help="serve the fast upstream with aiohttp even if nginx is installed",
    )
    p.add_argument("--fast-port", type=int, help="fast upstream port (default: a free one)")
    p.add_argument(
        "--slow-port", type=int, help="delayed streaming upstream port (default: a free one)"
    )
    p.add_argument("--gateway-cores", help="cores for the gateway, as taskset -c reads them")
    p.add_argument("--load-cores", help="cores for the load generator and upstreams")
    p.add_argument("--no-pin", action="store_true", help="don't pin anything to cores")
    p.add_argument("--stream-chunks", type=int, help="content events per stream (default 20)")
    p.add_argument(
        "--first-ms", type=float, default=50.0, help="delayed upstream: first chunk after (ms)"
    )
    p.add_argument(
        "--gap-ms", type=float, default=10.0, help="delayed upstream: gap between chunks (ms)"
    )
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the bare-stack floor and plain-Litestar columns",
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    unknown = [s for s in args.scenarios.split(",") if s and s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    try:
        args.compare_models = parse_compare_models(args.compare_model)
    except ValueError as exc:
        p.error(str(exc))
    return args


def parse_compare_models(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in ",".join(values).split(","):
        if not item.strip():
            continue
        alias, sep, name = item.partition("=")
        if (
            not sep
            or alias.strip() not in ("bench", "bench-sse", "bench-stream")
            or not name.strip()
        ):
            raise ValueError(
                f"--compare-model wants ALIAS=NAME with ALIAS in bench, bench-sse, "
                f"bench-stream; got {item!r}"
            )
        out[alias.strip()] = name.strip()
    return out


def settings_for(args: argparse.Namespace, workdir: Path, load_prefix: list[str]) -> Settings:
    s = Settings(
        workdir=workdir, load_prefix=load_prefix, first_ms=args.first_ms, gap_ms=args.gap_ms
    )
    if args.quick:
        s.rounds, s.unloaded_s, s.duration_s = 1, 1.0, 1.0
        s.stream_chunks, s.memory_chunks = 10, 15
    s.rounds = args.rounds or s.rounds
    if args.duration:
        s.unloaded_s = s.duration_s = args.duration
    s.stream_chunks = args.stream_chunks or s.stream_chunks
    use_wrk = args.load == "wrk" or (args.load == "auto" and wrk.available())
    s.load_tool = "wrk" if use_wrk else "python"
    return s


class Session:
    """One benchmark run: its processes, targets and results."""

    def __init__(self, args: argparse.Namespace, plan: CorePlan, workdir: Path) -> None:
        self.args, self.plan, self.workdir = args, plan, workdir
        self.procs = Procs(workdir, use_taskset=plan.method == "taskset -c")
        prefix = (
            ["taskset", "-c", cores_arg(plan.load)] if plan.load and self.procs.use_taskset else []
        )
        self.bench = Bench(settings_for(args, workdir, prefix), [])
        self.bench.start_gateway = self.start_gateway
        self.bench.stop_gateway = self.stop_gateway
        self.rows: list[Row] = []
        self.config = workdir / "routes.yaml"
        self.upstream = "not started"
        self._gateway_procs: dict[str, Proc] = {}
        self.facts: dict[str, object] = {}

    async def start_gateway(self, name: str, workers: int, env: Mapping[str, str]) -> Target:
        t0 = time.perf_counter()
        target, proc = await start_gateway(
            self.procs, name, self.args.gateway_cmd, self.config, workers, env, self.plan.gateway
        )
        if proc is not None:
            self._gateway_procs[name] = proc
            target.memory["start"] = tree_memory(proc.pid)
            print(
                f"# {name}: up in {time.perf_counter() - t0:.1f}s, PID {proc.pid}", file=sys.stderr
            )
        await self.prepare(target)
        if target.pid is not None:
            target.memory["warm"] = tree_memory(target.pid)
        return target

    def stop_gateway(self, target: Target) -> None:
        self.check_gateways(f"its runs ({target.name})")
        proc = self._gateway_procs.pop(target.name, None)
        if proc is not None:
            self.procs.stop(proc)

    async def prepare(self, target: Target) -> None:
        await probe(target)
        for kind, reason in target.broken.items():
            print(f"# {target.name} {kind}: {reason[:300]}", file=sys.stderr)
        self.bench.notes.extend(await warm_up(target, 0.5 if self.args.quick else 1.0))

    async def run(self) -> None:
        b, a = self.bench, self.args
        try:
            up = await start_upstreams(
                self.procs,
                self.plan.load,
                a.fast_port,
                a.slow_port,
                a.first_ms,
                a.gap_ms,
                not a.no_nginx,
                self.workdir,
                b.notes,
            )
        except RuntimeError as exc:
            self.rows.append(error_row("setup", f"upstreams did not start: {exc}"))
            return
        self.upstream = (
            f"fast: {up.fast_server} on port {up.fast_port}; "
            f"delayed: aiohttp on port {up.slow_port}"
        )
        print(f"# upstreams: {self.upstream}", file=sys.stderr)
        self.config.write_text(routes_yaml(up.fast_port, up.slow_port))
        direct = up.direct()
        await self.prepare(direct)
        b.targets.append(direct)
        b.targets.append(await self.start_gateway("gateway", 1, {}))
        if not a.no_floor:
            for name in FLOORS:
                floor = await start_floor(self.procs, name, up.fast_port, self.plan.gateway)
                if floor.pid is not None:
                    floor.memory["start"] = tree_memory(floor.pid)
                await self.prepare(floor)
                if floor.pid is not None:
                    floor.memory["warm"] = tree_memory(floor.pid)
                b.targets.append(floor)
        if a.compare:
            cmp = compare_target(a.compare, a.compare_models)
            await self.prepare(cmp)
            b.targets.append(cmp)
        for name in [s for s in a.scenarios.split(",") if s]:
            t0 = time.perf_counter()
            try:
                self.rows.extend(await SCENARIOS[name](b))
            except Exception as exc:  # noqa: BLE001 (a broken scenario is reported, the rest still run)
                self.rows.append(error_row(name, f"{type(exc).__name__}: {exc}"))
            print(f"# {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            self.check_gateways(name)

    def check_gateways(self, scenario: str) -> None:
        """A gateway that died is reported once, with its exit code and log, and its
        target marked broken so later scenarios say so instead of timing refusals."""
        for name, proc in list(self._gateway_procs.items()):
            if proc.alive():
                continue
            reason = (
                f"{name} (PID {proc.pid}) exited with code {proc.popen.returncode} during "
                f"{scenario}"
            )
            self.bench.notes.append(f"{reason}; its log ends: {log_tail(proc.log, 8)}")
            print(f"# {reason}", file=sys.stderr)
            target = self.bench.target(name)
            if target is not None:
                target.broken.update(dict.fromkeys(("json", "sse", "stream"), reason))
            del self._gateway_procs[name]


def write_results(session: Session, started: float, interrupted: bool) -> Path:
    args, b = session.args, session.bench
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(started))
    path = results_dir / f"{stamp}.json"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(b.settings).items()}
    doc = {
        "command": shlex.join([sys.executable, "-m", "bench", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "interrupted": interrupted,
        "machine": session.facts,
        "cores": session.plan.describe(),
        "upstreams": session.upstream,
        "settings": settings,
        "targets": [
            {
                "name": t.name,
                "urls": t.urls,
                "models": t.models,
                "broken": t.broken,
                "memory": t.memory,
            }
            for t in b.targets
        ],
        "rows": [asdict(r) for r in session.rows],
        "notes": b.notes,
        "runs": [asdict(r) for r in b.runs],
        "processes": [
            {
                "name": p.name,
                "pid": p.pid,
                "argv": p.argv,
                "returncode": p.popen.returncode,
                "log_tail": log_tail(p.log, 40),
            }
            for p in session.procs.history
        ],
    }
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


def report(session: Session, started: float, interrupted: bool) -> None:
    shown = {t.column for t in session.bench.targets}
    columns = [c for c in COLUMNS if c in shown or c in ("direct", "gateway")]
    b = session.bench
    print(
        f"\n## llm-proxy bench: medians of {b.settings.rounds} round(s), "
        f"closed-loop load by {b.settings.load_tool}\n"
    )
    print(f"Cores: {session.plan.describe()}. Compare target (if any) is external and not pinned.")
    print(f"Upstreams: {session.upstream}.\n")
    print(render_table(session.rows, columns))
    for note in [*b.notes, "interrupted: the table is partial"] if interrupted else b.notes:
        print(f"- {note}")
    print(f"\nRaw runs: {write_results(session, started, interrupted)}")


async def _amain(session: Session) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await session.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # 1000 streams need ~3000 descriptors
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    facts = machine.facts()  # before this process pins itself to the load cores
    available = sorted(os.sched_getaffinity(0))
    gw = parse_cores(args.gateway_cores) if args.gateway_cores else None
    ld = parse_cores(args.load_cores) if args.load_cores else None
    plan = plan_cores(available, shutil.which("taskset") is not None, gw, ld, pin=not args.no_pin)
    if plan.load:
        os.sched_setaffinity(0, plan.load)  # this process is the Python load generator
    print(f"# cores: {plan.describe()}", file=sys.stderr)
    started = time.time()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="llm-proxy-bench-") as tmp:
        session = Session(args, plan, Path(tmp))
        session.facts = facts
        try:
            try:
                import uvloop  # optional: a faster load generator

                runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
            except ImportError:
                runner = asyncio.Runner()
            with runner:
                runner.run(_amain(session))
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
        finally:
            session.procs.stop_all()
        report(session, started, interrupted)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
