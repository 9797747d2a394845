"""A stream cut as a loop (error_type loop_detected) counts in /metrics by alias and backend."""

from collections.abc import Iterator

import pytest

from proxy.observe import metrics
from proxy.observe.metrics import REGISTRY
from proxy.record import RequestRecord
from tests.unit.test_metrics import parse


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    REGISTRY.reset()
    try:
        yield
    finally:
        REGISTRY.reset()


def record(error_type: str | None) -> RequestRecord:
    rec = RequestRecord("r", "chat", "openai", True, 0.0)
    rec.alias, rec.backend, rec.status, rec.error_type = "agent", "up", 200, error_type
    return rec


def test_loops_are_counted() -> None:
    for error_type in ("loop_detected", None, "loop_detected", "upstream_error"):
        metrics.observe(record(error_type))
    samples = parse(metrics.render())
    labels = (("alias", "agent"), ("backend", "up"))
    assert samples[("llm_proxy_loops_detected_total", labels)] == 2.0
    assert samples[("llm_proxy_requests_total", (*labels, ("status", "200")))] == 4.0
