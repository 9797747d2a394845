"""Prometheus metrics for the whole gateway, across granian workers.

Each worker counts in plain dicts (one event loop per worker: no locks) and publishes its
state to `$LLM_PROXY_METRICS_DIR/worker-<pid>.json` (write, then rename: a reader sees a
whole file) at most every `PUBLISH_INTERVAL` when something changed, and on every scrape it
serves. A scrape renders this worker's live state plus every other worker's file: counters
and histograms are summed over all files, a dead worker's included, so totals never go down;
gauges are summed over live workers only. Without the variable the gateway is one process
and renders its own state.
"""

import asyncio
import bisect
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

if TYPE_CHECKING:
    from proxy.reload import Runtime
    from proxy.telemetry import RequestRecord

log = logging.getLogger("llm_proxy.metrics")

DIR_ENV = "LLM_PROXY_METRICS_DIR"
PUBLISH_INTERVAL = 0.5  # seconds: how stale another worker's numbers may be in a scrape

Labels = tuple[str, ...]
Kind = Literal["counter", "gauge", "histogram"]
# How a gauge combines across workers; counters and histograms always sum over every file.
Agg = Literal["sum", "max", "min"]

# OTel GenAI buckets (gen_ai.client.operation.duration; gen_ai.server.time_to_first_token).
DURATION_BUCKETS = tuple(round(0.01 * 2**i, 2) for i in range(14))  # 0.01 ... 81.92
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)  # fmt: skip
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
CIRCUIT_STATES = ("closed", "half_open", "open")


class Family(NamedTuple):
    name: str
    kind: Kind
    help: str
    labels: Labels = ()
    buckets: tuple[float, ...] = ()
    agg: Agg = "sum"


def _family(kind: Kind, name: str, text: str, *labels: str, agg: Agg = "sum") -> Family:
    buckets = _BUCKETS.get(name, ())
    return Family("llm_proxy_" + name, kind, text, labels, buckets, agg)


_BUCKETS = {
    "request_duration_seconds": DURATION_BUCKETS,
    "time_to_first_token_seconds": TTFT_BUCKETS,
    "gateway_overhead_seconds": OVERHEAD_BUCKETS,
}
_AB = ("alias", "backend")
FAMILIES = (
    _family("counter", "requests_total", "Requests by alias, backend, status.", *_AB, "status"),
    _family("histogram", "request_duration_seconds", "Arrival to last byte.", *_AB),
    _family("histogram", "time_to_first_token_seconds", "Arrival to first content.", *_AB),
    _family("histogram", "gateway_overhead_seconds", "Time in the gateway itself."),
    _family("counter", "upstream_attempts_total", "Upstream attempts.", "backend", "model"),
    _family("counter", "upstream_failures_total", "Failed upstream attempts by kind (connect, "
            "timeout, 4xx, 429, 5xx, mid_stream, ...).", "backend", "model", "kind"),
    _family("counter", "tokens_total", "Tokens reported by upstreams.", *_AB, "type"),
    _family("counter", "cost_usd_total", "Estimated cost, where the price is known.", *_AB),
    _family("counter", "cache_requests_total", "Requests by cache result.", "alias", "result"),
    _family("gauge", "requests_in_flight", "Requests being handled now."),
    _family("gauge", "streams_open", "Streaming requests being handled now."),
    _family("gauge", "circuit_state", "Workers whose circuit for the target is in this state.",
            "backend", "model", "state"),
    _family("counter", "config_reloads_total", "Config reloads by result, counted per worker.",
            "result"),
    _family("gauge", "config_generation", "Loaded config generation (newest worker).", agg="max"),
    _family("gauge", "config_generation_min", "Loaded config generation (oldest worker).",
            agg="min"),
    _family("counter", "admission_total", "Requests under settings.max_concurrent by result "
            "(admitted, queued, refused).", "result"),
)  # fmt: skip
BY_NAME = {f.name: f for f in FAMILIES}


class RuntimeInfo(NamedTuple):
    """What `/metrics` reads from the worker's Runtime (it is not counted here)."""

    generation: int
    reloads_ok: int
    reloads_failed: int
    circuits: Sequence[tuple[str, str, str]] = ()  # (backend, provider model, state)


def info_of(runtime: "Runtime") -> RuntimeInfo:
    now = time.monotonic()
    return RuntimeInfo(
        runtime.snapshot.generation,
        runtime.reloads_ok,
        runtime.reloads_failed,
        [(k.backend, k.model, c.state(now)) for k, c in runtime.circuits.items()],
    )


class Registry:
    """One worker's numbers. The inner dicts are never replaced, so hot paths may hold them."""

    def __init__(self) -> None:
        self.scalars: dict[str, dict[Labels, float]] = {
            f.name: {} for f in FAMILIES if f.kind != "histogram"
        }
        # Per label set: one count per bucket, the +Inf bucket, then the sum.
        self.histograms: dict[str, dict[Labels, list[float]]] = {
            f.name: {} for f in FAMILIES if f.kind == "histogram"
        }
        self.dirty = False
        self.reset()

    def reset(self) -> None:
        for d in self.scalars.values():
            d.clear()
        for h in self.histograms.values():
            h.clear()
        self.scalars["llm_proxy_requests_in_flight"][()] = 0.0
        self.scalars["llm_proxy_streams_open"][()] = 0.0
        self.dirty = True

    def apply(self, info: RuntimeInfo) -> None:
        """Copy the runtime's reload counts, generation and circuit states in."""
        s = self.scalars
        reloads: dict[Labels, float] = {
            ("ok",): float(info.reloads_ok),
            ("failed",): float(info.reloads_failed),
        }
        generation: dict[Labels, float] = {(): float(info.generation)}
        circuits: dict[Labels, float] = {
            (backend, model, state): 1.0 if state == current else 0.0
            for backend, model, current in info.circuits
            for state in CIRCUIT_STATES
        }
        for name, value in (
            ("llm_proxy_config_reloads_total", reloads),
            ("llm_proxy_config_generation", generation),
            ("llm_proxy_config_generation_min", generation),
            ("llm_proxy_circuit_state", circuits),
        ):
            if s[name] != value:
                s[name].clear()
                s[name].update(value)
                self.dirty = True


REGISTRY = Registry()
_s = REGISTRY.scalars
_h = REGISTRY.histograms
_requests = _s["llm_proxy_requests_total"]
_attempts = _s["llm_proxy_upstream_attempts_total"]
_failures = _s["llm_proxy_upstream_failures_total"]
_tokens = _s["llm_proxy_tokens_total"]
_cost = _s["llm_proxy_cost_usd_total"]
_cache = _s["llm_proxy_cache_requests_total"]
_inflight = _s["llm_proxy_requests_in_flight"]
_streams = _s["llm_proxy_streams_open"]
_admission = _s["llm_proxy_admission_total"]
_duration = _h["llm_proxy_request_duration_seconds"]
_ttft = _h["llm_proxy_time_to_first_token_seconds"]
_overhead = _h["llm_proxy_gateway_overhead_seconds"]


def _observe(
    hist: dict[Labels, list[float]], buckets: tuple[float, ...], key: Labels, v: float
) -> None:
    row = hist.get(key)
    if row is None:
        row = hist[key] = [0.0] * (len(buckets) + 2)
    row[bisect.bisect_left(buckets, v)] += 1
    row[-1] += v


# --- cost --------------------------------------------------------------------------------

_prices: dict[str, tuple[float, float]] = {}  # model -> USD per million (input, output) tokens


def load_prices(env: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """`LLM_PROXY_PRICES`: inline JSON or a JSON file path, `{"model": [in, out]}` or
    `{"model": {"input": x, "output": y}}`, USD per million tokens; keys may be `backend/model`.
    """
    value = env.get("LLM_PROXY_PRICES", "").strip()
    if not value:
        return {}
    try:
        raw = json.loads(value if value.startswith("{") else Path(value).read_text("utf-8"))
        prices: dict[str, tuple[float, float]] = {}
        for model, price in raw.items():
            pin, pout = (price["input"], price["output"]) if isinstance(price, dict) else price
            prices[str(model)] = (float(pin), float(pout))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("LLM_PROXY_PRICES ignored (%s): costs are not reported", exc)
        return {}
    return prices


def set_prices(env: Mapping[str, str]) -> None:
    global _prices
    _prices = load_prices(env)


def cost_of(rec: "RequestRecord") -> float | None:
    """USD for the request's tokens; None when usage or the model's price is unknown."""
    if not _prices or (rec.tokens_in is None and rec.tokens_out is None):
        return None
    model = rec.provider_model or rec.alias or ""
    price = _prices.get(f"{rec.backend}/{model}") or _prices.get(model)
    if price is None:
        return None
    return ((rec.tokens_in or 0) * price[0] + (rec.tokens_out or 0) * price[1]) / 1e6


def observe(rec: "RequestRecord") -> None:
    """Count one finished request (called by `telemetry.finish`); fills in its cost if known."""
    if rec.cost is None and _prices:
        rec.cost = cost_of(rec)
    alias = rec.alias or ""
    backend = rec.backend or ""
    key = (alias, backend, str(rec.status))
    _requests[key] = _requests.get(key, 0.0) + 1
    ab = (alias, backend)
    _observe(_duration, DURATION_BUCKETS, ab, rec.total_ms / 1000)
    if rec.ttft_ms is not None:
        _observe(_ttft, TTFT_BUCKETS, ab, rec.ttft_ms / 1000)
    if rec.overhead_ms is not None:
        _observe(_overhead, OVERHEAD_BUCKETS, (), rec.overhead_ms / 1000)
    if rec.tokens_in:
        k = (alias, backend, "input")
        _tokens[k] = _tokens.get(k, 0.0) + rec.tokens_in
    if rec.tokens_out:
        k = (alias, backend, "output")
        _tokens[k] = _tokens.get(k, 0.0) + rec.tokens_out
    if rec.cost is not None:
        _cost[ab] = _cost.get(ab, 0.0) + rec.cost
    if rec.cache is not None:
        ck = (alias, rec.cache)
        _cache[ck] = _cache.get(ck, 0.0) + 1
    REGISTRY.dirty = True


def attempt_started(backend: str, model: str) -> None:
    key = (backend, model)
    _attempts[key] = _attempts.get(key, 0.0) + 1
    REGISTRY.dirty = True


def attempt_failed(backend: str, model: str, kind: str) -> None:
    key = (backend, model, kind)
    _failures[key] = _failures.get(key, 0.0) + 1
    REGISTRY.dirty = True


def admission(result: str) -> None:
    """One request met the concurrency cap: admitted, queued (waited for a slot) or refused."""
    _admission[(result,)] = _admission.get((result,), 0.0) + 1
    REGISTRY.dirty = True


def request_started(stream: bool) -> None:
    _inflight[()] += 1
    if stream:
        _streams[()] += 1
    REGISTRY.dirty = True


def request_ended(stream: bool) -> None:
    _inflight[()] -= 1
    if stream:
        _streams[()] -= 1
    REGISTRY.dirty = True


# --- publishing: one file per worker -------------------------------------------------------

Rows = list[tuple[list[str], float]]


class Dump(msgspec.Struct):
    pid: int
    scalars: dict[str, Rows] = msgspec.field(default_factory=dict)
    histograms: dict[str, list[tuple[list[str], list[float]]]] = msgspec.field(default_factory=dict)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Dump).decode
_lock: asyncio.Lock | None = None
_owner = 0  # the pid that last published here: a new process first retires a stale file


def metrics_dir() -> Path | None:
    value = os.environ.get(DIR_ENV)
    return Path(value) if value else None


def dump() -> Dump:
    return Dump(
        os.getpid(),
        {n: [(list(k), v) for k, v in d.items()] for n, d in REGISTRY.scalars.items() if d},
        {n: [(list(k), row) for k, row in d.items()] for n, d in REGISTRY.histograms.items() if d},
    )


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

    `info` (e.g. `lambda: metrics.info_of(runtime)`) lets circuit states and reload counts
    reach other workers' scrapes too. Returns at once without `LLM_PROXY_METRICS_DIR`.
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


# --- rendering ------------------------------------------------------------------------------


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


Merged = tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, list[float]]]]


def _merge(own: Dump, others: list[tuple[Dump, bool]]) -> Merged:
    scalars: dict[str, dict[Labels, float]] = {f.name: {} for f in FAMILIES}
    hists: dict[str, dict[Labels, list[float]]] = {f.name: {} for f in FAMILIES}
    for d, live in [(own, True), *others]:
        for name, rows in d.scalars.items():
            fam = BY_NAME.get(name)
            if fam is None or (fam.kind == "gauge" and not live):
                continue
            acc = scalars[name]
            for labels, v in rows:
                key = tuple(labels)
                old = acc.get(key)
                if old is None:
                    acc[key] = v
                elif fam.agg == "max":
                    acc[key] = max(old, v)
                elif fam.agg == "min":
                    acc[key] = min(old, v)
                else:
                    acc[key] = old + v
        for name, hrows in d.histograms.items():
            fam = BY_NAME.get(name)
            if fam is None:
                continue
            hacc = hists[name]
            for labels, row in hrows:
                if len(row) != len(fam.buckets) + 2:
                    continue  # written by a build with other buckets
                key = tuple(labels)
                prev = hacc.get(key)
                hacc[key] = (
                    list(row) if prev is None else [a + b for a, b in zip(prev, row, strict=True)]
                )
    return scalars, hists


def text(own: Dump, others: list[tuple[Dump, bool]]) -> str:
    scalars, hists = _merge(own, others)
    workers = 1 + sum(live for _, live in others)
    lines: list[str] = []
    for fam in FAMILIES:
        lines.append(f"# HELP {fam.name} {fam.help}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        if fam.kind == "histogram":
            for key, row in sorted(hists[fam.name].items()):
                lines.extend(_histogram_lines(fam, key, row))
            continue
        for key, v in sorted(scalars[fam.name].items()):
            lines.append(f"{fam.name}{_labels(fam.labels, key)} {_num(v)}")
    lines += [
        "# HELP llm_proxy_workers Worker processes reporting in this scrape.",
        "# TYPE llm_proxy_workers gauge",
        f"llm_proxy_workers {workers}",
    ]
    return "\n".join(lines) + "\n"


def _histogram_lines(fam: Family, key: Labels, row: list[float]) -> Iterator[str]:
    cumulative = 0.0
    for bound, count in zip((*fam.buckets, None), row, strict=False):  # row ends with the sum
        cumulative += count
        le = "+Inf" if bound is None else _num(bound)
        yield f"{fam.name}_bucket{_labels(fam.labels, key, le)} {_num(cumulative)}"
    yield f"{fam.name}_sum{_labels(fam.labels, key)} {_num(row[-1])}"
    yield f"{fam.name}_count{_labels(fam.labels, key)} {_num(cumulative)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Labels, values: Labels, le: str | None = None) -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=False)]
    if le is not None:
        parts.append(f'le="{le}"')
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)
