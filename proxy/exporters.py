"""Which span exporter the environment asks for, and building it.

`LLM_PROXY_TRACING` (memory | console | otlp | off) wins; otherwise the standard
`OTEL_TRACES_EXPORTER` / `OTEL_EXPORTER_OTLP_*` variables decide. Nothing here is imported
unless tracing is configured, and an exporter package that is missing leaves tracing off
with a warning rather than failing the worker.
"""

import importlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("llm_proxy.telemetry")

MEMORY_SPANS = 10_000  # default bound of LLM_PROXY_TRACING=memory


def choose(env: Mapping[str, str]) -> str | None:
    """Which exporter the environment asks for: memory, console, otlp, or None (off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    mode = env.get("LLM_PROXY_TRACING", "").strip().lower()
    if mode in ("off", "none", "0", "false"):
        return None
    if mode in ("memory", "otlp", "console"):
        return mode
    if mode:
        log.warning("LLM_PROXY_TRACING=%s is not memory, otlp, console or off: tracing off", mode)
        return None
    names = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    first = names.split(",")[0].strip()
    if first in ("", "none"):
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return "otlp" if first == "" and endpoint else None
    if first in ("otlp", "console"):
        return first
    log.warning("OTEL_TRACES_EXPORTER=%s is not otlp, console or none: tracing off", first)
    return None


def build(choice: str, env: Mapping[str, str]) -> Any:
    if choice == "memory":
        try:
            bound = int(env.get("LLM_PROXY_TRACING_MAX_SPANS", "") or MEMORY_SPANS)
        except ValueError:
            bound = MEMORY_SPANS
        return memory_exporter(max(1, bound))
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    kind = "grpc" if protocol == "grpc" else "http"
    package = f"opentelemetry-exporter-otlp-proto-{kind}"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
    except ImportError:
        log.warning(
            "tracing stays off: the environment asks for OTLP export (%s) but %s is not "
            "installed; `pip install %s` to send traces",
            protocol,
            package,
            package,
        )
        return None
    return module.OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself


def memory_exporter(bound: int) -> Any:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class MemoryExporter(SpanExporter):
        """Keeps the last `bound` finished spans; older ones are dropped."""

        def __init__(self) -> None:
            self._spans: deque[ReadableSpan] = deque(maxlen=bound)

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self._spans.extend(spans)
            return SpanExportResult.SUCCESS

        def get_finished_spans(self) -> tuple[ReadableSpan, ...]:
            return tuple(self._spans)

        def clear(self) -> None:
            self._spans.clear()

    return MemoryExporter()


SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


_TRACE_ID_LIMIT = (1 << 64) - 1  # the SDK's ratio sampler reads a trace id's low 64 bits


@dataclass(frozen=True)
class Sampling:
    """The sampler `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name, decided inline.

    The same decisions as the SDK's samplers of those names (`sdk()` builds the SDK's own, for
    the provider), without a `SamplingResult` and a context lookup per request: a root trace is
    kept by the root rule (always, never, or when the trace id's low 64 bits fall under the
    ratio's bound); with `parentbased_*` a caller's trace keeps the caller's decision.
    """

    name: str = "parentbased_always_on"
    rate: float = 1.0

    @property
    def parent_based(self) -> bool:
        return self.name.startswith("parentbased_")

    @property
    def bound(self) -> int:
        if self.name.endswith("always_on"):
            return _TRACE_ID_LIMIT + 1
        if self.name.endswith("always_off"):
            return 0
        return round(self.rate * (_TRACE_ID_LIMIT + 1))

    def sdk(self) -> Any:
        from opentelemetry.sdk.trace import sampling

        if self.name.endswith("traceidratio"):
            root: Any = sampling.TraceIdRatioBased(self.rate)
        else:
            root = sampling.ALWAYS_ON if self.name.endswith("always_on") else sampling.ALWAYS_OFF
        return sampling.ParentBased(root) if self.parent_based else root


def sampler(env: Mapping[str, str]) -> Sampling:
    """The sampling the environment the gateway was configured with asks for (default:
    parent-based, always on). A bad name or ratio is a warning and the default, never a
    worker that fails to start."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        log.warning(
            "OTEL_TRACES_SAMPLER=%s is not one of %s: sampling every trace",
            name,
            ", ".join(SAMPLERS),
        )
        return Sampling()
    if not name.endswith("traceidratio"):
        return Sampling(name)
    text = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
    try:
        rate = float(text)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(text)
    except ValueError:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%s is not a ratio within 0..1: using 1.0", text)
        rate = 1.0
    return Sampling(name, rate)


def batched(choice: str, env: Mapping[str, str]) -> bool:
    """Whether spans go through a batch processor: always for console and OTLP; for the memory
    exporter only with `LLM_PROXY_TRACING_PROCESSOR=batch` (tests read spans synchronously)."""
    if choice != "memory":
        return True
    mode = env.get("LLM_PROXY_TRACING_PROCESSOR", "").strip().lower()
    if mode not in ("", "simple", "batch"):
        log.warning("LLM_PROXY_TRACING_PROCESSOR=%s is not simple or batch: using simple", mode)
    return mode == "batch"
