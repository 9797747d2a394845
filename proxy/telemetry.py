"""Per-request telemetry: the `RequestRecord`, the end-of-request hook `finish`, and the
per-worker `configure`/`shutdown` of tracing, metrics and the access log.

`finish` is the one place a request is reported: the metrics, its server span and its access
line all read the same record, so they never disagree. The record names the client key,
never holds it. Spans live in `proxy.tracing`; `tracer`, the span protocols and the
first-token names are re-exported here for the callers that knew them by this module.
"""

import os
from collections.abc import Mapping

from proxy import accesslog, redact
from proxy.observe import metrics
from proxy.observe.metrics import attempt_failed, attempt_started, request_ended, request_started
from proxy.record import RequestRecord
from proxy.tracing import FIRST_TOKEN, TTFT_ATTRIBUTE, AttemptSpan, RequestSpan, Tracer, tracer

__all__ = [
    "FIRST_TOKEN",
    "TTFT_ATTRIBUTE",
    "AttemptSpan",
    "RequestRecord",
    "RequestSpan",
    "Tracer",
    "attempt_failed",
    "attempt_started",
    "configure",
    "failure_kind",
    "finish",
    "request_ended",
    "request_started",
    "tracer",
]


# --- the end of a request ------------------------------------------------------------------


def configure(env: Mapping[str, str] | None = None) -> None:
    """Per worker, in the lifespan: tracing, prices, the access-log handler, and credential
    scrubbing on the root log handlers (installed by then: `logging.basicConfig` in main)."""
    env = os.environ if env is None else env
    tracer.configure(env)
    metrics.set_prices(env)
    accesslog.configure(env)
    accesslog.quiet_disconnects()
    redact.install_filter()


def shutdown() -> None:
    """Per worker, at the end of the lifespan (after the metrics publisher has stopped)."""
    tracer.shutdown()
    metrics.flush()
    accesslog.flush()


def failure_kind(kind: str, status: int | None = None, committed: bool = False) -> str:
    """The `kind` label for a failed attempt: mid_stream, 429, 4xx, 5xx, or the error's kind."""
    if committed:
        return "mid_stream"
    if status is not None:
        return "429" if status == 429 else f"{status // 100}xx"
    return kind


def finish(
    record: RequestRecord, log_prompts: str = "none", span: RequestSpan | None = None
) -> None:
    """Once per request, at its end: count it, put it on the span, write its access line."""
    metrics.observe(record)
    if span is not None:
        span.record(record)
    accesslog.write(record, log_prompts)
