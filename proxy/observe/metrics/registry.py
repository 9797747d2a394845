"""One worker's metric families and counts, and the hooks that count.

Each worker counts in plain dicts (one event loop per worker: no locks). The inner dicts of
`REGISTRY` are never replaced, so the hot-path hooks below hold them directly. A `Dump` is a
copy of the registry as it stands: what `publish` writes to disk and `export` renders.
"""

import bisect
import os
from collections.abc import Sequence
from typing import Literal, NamedTuple

import msgspec

from proxy.observe.metrics import prices
from proxy.record import RequestRecord

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
# Label sets per counted family in one worker; past it, new label sets count under OTHER
# (a backend's model names can come from clients through glob aliases).
MAX_SERIES = 1000
OTHER = "__other__"


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
    _family("gauge", "cache_stored_bytes", "Bytes held by the in-process response cache."),
    _family("counter", "cache_evictions_total", "Cache entries pushed out to make room."),
    _family("counter", "loops_detected_total", "Streams cut because the output looped.", *_AB),
    _family("gauge", "requests_in_flight", "Requests being handled now."),
    _family("gauge", "streams_open", "Streaming requests being handled now."),
    _family("gauge", "circuit_state", "Workers whose circuit for the target is in this state.",
            "backend", "model", "state"),
    _family("counter", "config_reloads_total", "Config reloads by result, counted per worker.",
            "result"),
    _family("gauge", "config_generation", "Loaded config generation (newest worker).", agg="max"),
    _family("gauge", "config_generation_min", "Loaded config generation (oldest worker).",
            agg="min"),
    _family("counter", "state_failures_total", "State store calls that failed or timed out "
            "(the state_failure mode answered instead).", "op"),
    _family("gauge", "budget_remaining_usd", "USD left in the key's budget period, as last "
            "seen by any worker (the key's name, never the key).", "key", agg="min"),
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
_cache_bytes = _s["llm_proxy_cache_stored_bytes"]
_cache_evictions = _s["llm_proxy_cache_evictions_total"]
_loops = _s["llm_proxy_loops_detected_total"]
_inflight = _s["llm_proxy_requests_in_flight"]
_streams = _s["llm_proxy_streams_open"]
_duration = _h["llm_proxy_request_duration_seconds"]
_ttft = _h["llm_proxy_time_to_first_token_seconds"]
_overhead = _h["llm_proxy_gateway_overhead_seconds"]
_state_failures = _s["llm_proxy_state_failures_total"]
_budget_left = _s["llm_proxy_budget_remaining_usd"]
_admission = _s["llm_proxy_admission_total"]


def _observe(
    hist: dict[Labels, list[float]], buckets: tuple[float, ...], key: Labels, v: float
) -> None:
    row = hist.get(key)
    if row is None:
        row = hist[key] = [0.0] * (len(buckets) + 2)
    row[bisect.bisect_left(buckets, v)] += 1
    row[-1] += v


def _bounded(
    counts: dict[Labels, float] | dict[Labels, list[float]], key: Labels, at: int
) -> Labels:
    """`key`, or once the family has `MAX_SERIES` label sets, `key` with OTHER at `at` (the
    label whose values may come from clients)."""
    if key in counts or len(counts) < MAX_SERIES:
        return key
    return (*key[:at], OTHER, *key[at + 1 :])


def observe(rec: RequestRecord) -> None:
    """Count one finished request (called by `telemetry.finish`); fills in its cost if known."""
    if rec.cost is None:
        rec.cost = prices.cost_of(rec)
    alias = rec.alias or ""
    backend = rec.backend or ""
    key = _bounded(_requests, (alias, backend, str(rec.status)), 0)
    _requests[key] = _requests.get(key, 0.0) + 1
    ab = _bounded(_duration, (alias, backend), 0)
    _observe(_duration, DURATION_BUCKETS, ab, rec.total_ms / 1000)
    if rec.ttft_ms is not None:
        _observe(_ttft, TTFT_BUCKETS, ab, rec.ttft_ms / 1000)
    if rec.overhead_ms is not None:
        _observe(_overhead, OVERHEAD_BUCKETS, (), rec.overhead_ms / 1000)
    if rec.tokens_in:
        k = _bounded(_tokens, (*ab, "input"), 0)
        _tokens[k] = _tokens.get(k, 0.0) + rec.tokens_in
    if rec.tokens_out:
        k = _bounded(_tokens, (*ab, "output"), 0)
        _tokens[k] = _tokens.get(k, 0.0) + rec.tokens_out
    if rec.cost is not None:
        ck = _bounded(_cost, ab, 0)
        _cost[ck] = _cost.get(ck, 0.0) + rec.cost
    if rec.cache is not None:
        ck = _bounded(_cache, (alias, rec.cache), 0)
        _cache[ck] = _cache.get(ck, 0.0) + 1
    if rec.error_type == "loop_detected":
        lk = _bounded(_loops, ab, 0)
        _loops[lk] = _loops.get(lk, 0.0) + 1
    REGISTRY.dirty = True


def attempt_started(backend: str, model: str) -> None:
    """Count an attempt; `model` should be the target's configured model (`Candidate.label`),
    not the client's expanded text (bounded either way: see MAX_SERIES)."""
    key = _bounded(_attempts, (backend, model), 1)
    _attempts[key] = _attempts.get(key, 0.0) + 1
    REGISTRY.dirty = True


def attempt_failed(backend: str, model: str, kind: str) -> None:
    key = _bounded(_failures, (backend, model, kind), 1)
    _failures[key] = _failures.get(key, 0.0) + 1
    REGISTRY.dirty = True


def state_failed(op: str) -> None:
    _state_failures[(op,)] = _state_failures.get((op,), 0.0) + 1
    REGISTRY.dirty = True


def cache_stored(size: float) -> None:
    _cache_bytes[()] = float(size)
    REGISTRY.dirty = True


def cache_evicted(n: int) -> None:
    _cache_evictions[()] = _cache_evictions.get((), 0.0) + n
    REGISTRY.dirty = True


def budget_remaining(key_name: str, usd: float) -> None:
    _budget_left[(key_name,)] = usd
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


# --- a copy of the registry: what is published and rendered -------------------------------

Rows = list[tuple[list[str], float]]


class Dump(msgspec.Struct):
    pid: int
    scalars: dict[str, Rows] = msgspec.field(default_factory=dict)
    histograms: dict[str, list[tuple[list[str], list[float]]]] = msgspec.field(default_factory=dict)


def dump() -> Dump:
    return Dump(
        os.getpid(),
        {n: [(list(k), v) for k, v in d.items()] for n, d in REGISTRY.scalars.items() if d},
        {n: [(list(k), row) for k, row in d.items()] for n, d in REGISTRY.histograms.items() if d},
    )
