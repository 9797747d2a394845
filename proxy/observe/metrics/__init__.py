"""Prometheus metrics for the whole gateway, across granian workers.

`registry` counts (families, one worker's dicts, the hooks telemetry calls), `prices` turns
tokens into estimated cost, `export` renders Prometheus text, `publish` shares each worker's
counts through files so any worker's scrape covers them all. This package re-exports the
names callers use.
"""

from proxy.observe.metrics.export import text
from proxy.observe.metrics.prices import cost_of, load_prices, set_prices
from proxy.observe.metrics.publish import (
    PUBLISH_INTERVAL,
    flush,
    metrics_dir,
    render,
    run_publisher,
    scrape,
)
from proxy.observe.metrics.registry import (
    BY_NAME,
    CIRCUIT_STATES,
    DURATION_BUCKETS,
    FAMILIES,
    OVERHEAD_BUCKETS,
    REGISTRY,
    TTFT_BUCKETS,
    Dump,
    Family,
    Labels,
    Registry,
    RuntimeInfo,
    admission,
    attempt_failed,
    attempt_started,
    budget_remaining,
    cache_evicted,
    cache_stored,
    dump,
    observe,
    request_ended,
    request_started,
    state_failed,
)

__all__ = [
    "BY_NAME",
    "CIRCUIT_STATES",
    "DURATION_BUCKETS",
    "FAMILIES",
    "OVERHEAD_BUCKETS",
    "PUBLISH_INTERVAL",
    "REGISTRY",
    "TTFT_BUCKETS",
    "Dump",
    "Family",
    "Labels",
    "Registry",
    "RuntimeInfo",
    "admission",
    "attempt_failed",
    "attempt_started",
    "budget_remaining",
    "cache_evicted",
    "cache_stored",
    "cost_of",
    "dump",
    "flush",
    "load_prices",
    "metrics_dir",
    "observe",
    "render",
    "request_ended",
    "request_started",
    "run_publisher",
    "scrape",
    "set_prices",
    "state_failed",
    "text",
]
