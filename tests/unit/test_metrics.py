"""proxy.observe.metrics: exact counts in valid Prometheus text, and one scrape for all workers."""

import asyncio
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from proxy import telemetry, workers
from proxy.observe import metrics
from proxy.observe.metrics import REGISTRY, RuntimeInfo, publish
from proxy.telemetry import RequestRecord
from proxy.workers import WorkerSettings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(?:,|$)')


def parse(text: str) -> Samples:
    """A strict little reader of the Prometheus text format (0.0.4)."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.match(rf"^# HELP {_NAME} \S", line), line
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram") and name not in types, line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m is not None, f"not a sample line: {line!r}"
        name, raw_labels, raw_value = m.groups()
        family = name
        if name not in types:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert types.get(family) == "histogram", f"{name} has no TYPE"
        labels: list[tuple[str, str]] = []
        pos = 0
        while raw_labels and pos < len(raw_labels):
            lm = _LABEL.match(raw_labels, pos)
            assert lm is not None, f"bad labels in {line!r}"
            value = lm.group(2).replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
            labels.append((lm.group(1), value))
            pos = lm.end()
        key = (name, tuple(sorted(labels)))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(raw_value)
    _check_histograms(samples, types)
    return samples


def _check_histograms(samples: Samples, types: dict[str, str]) -> None:
    for family in (n for n, k in types.items() if k == "histogram"):
        series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                le = dict(labels)["le"]
                rest = tuple(kv for kv in labels if kv[0] != "le")
                series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), "buckets must be cumulative"
            assert buckets[-1][0] == math.inf
            assert samples[(family + "_count", rest)] == counts[-1]
            assert (family + "_sum", rest) in samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    workers.use(WorkerSettings())  # one process: no metrics directory
    monkeypatch.setattr(publish, "_owner", 0)
    monkeypatch.setattr(publish, "_lock", None)
    REGISTRY.reset()
    yield
    REGISTRY.reset()
    workers.use(None)


def use_dir(directory: Path) -> None:
    """Act as one of several workers that publish to `directory` (what `serve` sets up)."""
    workers.use(WorkerSettings(metrics_dir=directory, worker_count=2))


def record(**kw: object) -> RequestRecord:
    base = RequestRecord(request_id="r", endpoint="chat", front="openai", stream=False, started=0.0)
    return msgspec.structs.replace(base, **kw)


def traffic() -> None:
    """A known mix: two OK requests on gpt-4o/openai, one failed over to azure, one 404."""
    ok = {"alias": "gpt-4o", "backend": "openai", "status": 200}
    telemetry.finish(
        record(**ok, total_ms=150.0, overhead_ms=0.3, tokens_in=10, tokens_out=20, cost=0.5),
    )
    telemetry.finish(
        record(**ok, total_ms=3000.0, stream=True, ttft_ms=50.0, tokens_in=5, tokens_out=7),
    )
    telemetry.attempt_started("openai", "gpt-4o")
    telemetry.attempt_failed("openai", "gpt-4o", telemetry.failure_kind("status", 503))
    telemetry.attempt_started("azure", "gpt4o-prod")
    telemetry.finish(
        record(alias="gpt-4o", backend="azure", status=200, total_ms=500.0, cache="miss")
    )
    telemetry.finish(record(status=404, total_ms=1.0))


def test_render_is_valid_prometheus_text_with_exact_counts() -> None:
    traffic()
    s = parse(metrics.render())
    assert value(s, "llm_proxy_requests_total", alias="gpt-4o", backend="openai", status="200") == 2
    assert value(s, "llm_proxy_requests_total", alias="gpt-4o", backend="azure", status="200") == 1
    assert value(s, "llm_proxy_requests_total", alias="", backend="", status="404") == 1
    assert value(s, "llm_proxy_upstream_attempts_total", backend="openai", model="gpt-4o") == 1
    fails = "llm_proxy_upstream_failures_total"
    assert value(s, fails, backend="openai", model="gpt-4o", kind="5xx") == 1
    assert value(s, "llm_proxy_tokens_total", alias="gpt-4o", backend="openai", type="input") == 15
    assert value(s, "llm_proxy_tokens_total", alias="gpt-4o", backend="openai", type="output") == 27
    assert value(s, "llm_proxy_cost_usd_total", alias="gpt-4o", backend="openai") == 0.5
    assert ("llm_proxy_cost_usd_total", (("alias", "gpt-4o"), ("backend", "azure"))) not in s
    assert value(s, "llm_proxy_cache_requests_total", alias="gpt-4o", result="miss") == 1
    # Durations: 0.15 s and 3 s on gpt-4o/openai, in GenAI buckets.
    dur = "llm_proxy_request_duration_seconds"
    assert value(s, dur + "_bucket", alias="gpt-4o", backend="openai", le="0.08") == 0
    assert value(s, dur + "_bucket", alias="gpt-4o", backend="openai", le="0.16") == 1
    assert value(s, dur + "_bucket", alias="gpt-4o", backend="openai", le="2.56") == 1
    assert value(s, dur + "_bucket", alias="gpt-4o", backend="openai", le="5.12") == 2
    assert value(s, dur + "_count", alias="gpt-4o", backend="openai") == 2
    assert value(s, dur + "_sum", alias="gpt-4o", backend="openai") == pytest.approx(3.15)
    ttft = "llm_proxy_time_to_first_token_seconds"
    assert value(s, ttft + "_bucket", alias="gpt-4o", backend="openai", le="0.04") == 0
    assert value(s, ttft + "_bucket", alias="gpt-4o", backend="openai", le="0.06") == 1
    assert value(s, ttft + "_count", alias="gpt-4o", backend="openai") == 1
    assert value(s, "llm_proxy_gateway_overhead_seconds_count") == 1
    assert value(s, "llm_proxy_workers") == 1


def test_gauges_follow_requests_and_streams() -> None:
    telemetry.request_started(stream=True)
    telemetry.request_started(stream=False)
    s = parse(metrics.render())
    assert value(s, "llm_proxy_requests_in_flight") == 2
    assert value(s, "llm_proxy_streams_open") == 1
    telemetry.request_ended(stream=True)
    s = parse(metrics.render())
    assert value(s, "llm_proxy_requests_in_flight") == 1
    assert value(s, "llm_proxy_streams_open") == 0


def test_runtime_info_reloads_generation_and_circuits() -> None:
    info = RuntimeInfo(7, 5, 2, [("openai", "gpt-4o", "open"), ("azure", 'we"ird\\', "closed")])
    s = parse(metrics.render(info))
    assert value(s, "llm_proxy_config_generation") == 7
    assert value(s, "llm_proxy_config_reloads_total", result="ok") == 5
    assert value(s, "llm_proxy_config_reloads_total", result="failed") == 2
    circuit = "llm_proxy_circuit_state"
    assert value(s, circuit, backend="openai", model="gpt-4o", state="open") == 1
    assert value(s, circuit, backend="openai", model="gpt-4o", state="closed") == 0
    assert value(s, circuit, backend="openai", model="gpt-4o", state="half_open") == 0
    assert value(s, circuit, backend="azure", model='we"ird\\', state="closed") == 1


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _publish_as(directory: Path, pid: int, info: RuntimeInfo) -> None:
    """Write what a worker with this pid would have published, then forget it here."""
    REGISTRY.apply(info)
    data = msgspec.structs.replace(metrics.dump(), pid=pid)
    (directory / f"worker-{pid}.json").write_bytes(msgspec.json.encode(data))
    REGISTRY.reset()


def test_workers_aggregate_counters_always_and_gauges_only_while_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_dir(tmp_path)
    live, dead = os.getppid(), _dead_pid()
    # Worker "live": 3 OK requests, one stream still open, an open circuit, generation 4.
    for _ in range(3):
        telemetry.finish(record(alias="a", backend="b", status=200, total_ms=10.0))
    telemetry.request_started(stream=True)
    _publish_as(tmp_path, live, RuntimeInfo(4, 3, 0, [("b", "m", "open")]))
    # Worker "dead": 2 requests and 1 in flight when it died; generation 9 (but it is gone).
    for _ in range(2):
        telemetry.finish(record(alias="a", backend="b", status=200, total_ms=10.0))
    telemetry.request_started(stream=False)
    _publish_as(tmp_path, dead, RuntimeInfo(9, 8, 1, [("b", "m", "open")]))
    # This worker: 1 request, 1 in flight, circuit closed here, generation 3.
    telemetry.finish(record(alias="a", backend="b", status=200, total_ms=10.0))
    telemetry.request_started(stream=False)
    s = parse(metrics.render(RuntimeInfo(3, 2, 0, [("b", "m", "closed")])))

    assert value(s, "llm_proxy_requests_total", alias="a", backend="b", status="200") == 6
    assert value(s, "llm_proxy_request_duration_seconds_count", alias="a", backend="b") == 6
    assert value(s, "llm_proxy_config_reloads_total", result="ok") == 3 + 8 + 2
    assert value(s, "llm_proxy_requests_in_flight") == 2  # the dead worker's one is gone
    assert value(s, "llm_proxy_streams_open") == 1
    assert value(s, "llm_proxy_circuit_state", backend="b", model="m", state="open") == 1
    assert value(s, "llm_proxy_circuit_state", backend="b", model="m", state="closed") == 1
    assert value(s, "llm_proxy_config_generation") == 4  # newest among live workers
    assert value(s, "llm_proxy_config_generation_min") == 3
    assert value(s, "llm_proxy_workers") == 2
    # The scrape published this worker too, for the other workers' scrapes.
    mine = msgspec.json.decode((tmp_path / f"worker-{os.getpid()}.json").read_bytes())
    assert mine["pid"] == os.getpid()


def test_a_reused_pid_keeps_its_predecessors_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_dir(tmp_path)
    telemetry.finish(record(alias="a", backend="b", status=500, total_ms=1.0))
    _publish_as(tmp_path, os.getpid(), RuntimeInfo(1, 0, 0))  # a dead predecessor's file
    telemetry.finish(record(alias="a", backend="b", status=500, total_ms=1.0))
    s = parse(metrics.render())
    assert value(s, "llm_proxy_requests_total", alias="a", backend="b", status="500") == 2
    assert len(list(tmp_path.glob("retired-*.json"))) == 1


def test_unreadable_files_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_dir(tmp_path)
    (tmp_path / "worker-1.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("hello")
    telemetry.finish(record(status=200, total_ms=1.0))
    s = parse(metrics.render())
    assert value(s, "llm_proxy_requests_total", alias="", backend="", status="200") == 1


async def until(condition: Callable[[], bool], deadline: float = 5.0) -> None:
    for _ in range(int(deadline / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


async def test_publisher_writes_on_change_and_scrape_matches_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_dir(tmp_path)
    path = tmp_path / f"worker-{os.getpid()}.json"
    info = RuntimeInfo(2, 1, 0, [("b", "m", "half_open")])
    task = asyncio.create_task(metrics.run_publisher(lambda: info, interval=0.01))
    try:
        await until(path.exists)
        telemetry.finish(record(alias="x", backend="y", status=200, total_ms=5.0))
        await until(lambda: b'"x","y","200"' in path.read_bytes())
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    scraped = parse(await metrics.scrape(info))
    assert scraped == parse(metrics.render(info))
    circuit = "llm_proxy_circuit_state"
    assert value(scraped, circuit, backend="b", model="m", state="half_open") == 1
    telemetry.finish(record(alias="x", backend="y", status=200, total_ms=5.0))
    metrics.flush()
    assert b'["x","y","200"],2' in path.read_bytes()


async def test_publisher_without_directory_returns() -> None:
    async with asyncio.timeout(1):
        await metrics.run_publisher()


def test_failure_kinds() -> None:
    kind = telemetry.failure_kind
    assert [kind("status", 429), kind("status", 404), kind("status", 529)] == ["429", "4xx", "5xx"]
    assert kind("timeout") == "timeout" and kind("connect") == "connect"
    assert kind("truncated", committed=True) == "mid_stream"


def test_prices_fill_in_cost_only_when_known() -> None:
    prices = '{"gpt4o-prod": [2.5, 10], "azure/special": {"input": 1, "output": 1}}'
    metrics.set_prices({"LLM_PROXY_PRICES": prices})
    try:
        rec = record(backend="azure", provider_model="gpt4o-prod", tokens_in=1000, tokens_out=100)
        assert metrics.cost_of(rec) == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
        assert metrics.cost_of(msgspec.structs.replace(rec, provider_model="special")) == (
            pytest.approx(1100 / 1e6)
        )
        assert metrics.cost_of(msgspec.structs.replace(rec, provider_model="unpriced")) is None
        unknown_usage = msgspec.structs.replace(rec, tokens_in=None, tokens_out=None)
        assert metrics.cost_of(unknown_usage) is None  # no usage: no cost, not zero
        telemetry.finish(msgspec.structs.replace(rec, alias="a", status=200))
        telemetry.finish(msgspec.structs.replace(rec, alias="a", status=200, provider_model="x"))
    finally:
        metrics.set_prices({})
    s = parse(metrics.render())
    assert value(s, "llm_proxy_cost_usd_total", alias="a", backend="azure") == pytest.approx(0.0035)


def test_label_sets_from_client_text_are_bounded() -> None:
    from proxy.observe.metrics import registry

    for n in range(registry.MAX_SERIES + 500):
        telemetry.attempt_started("up", f"up/rand-{n}")
        telemetry.attempt_failed("up", f"up/rand-{n}", "5xx")
    s = parse(metrics.render())
    attempts = {k: v for k, v in s.items() if k[0] == "llm_proxy_upstream_attempts_total"}
    assert len(attempts) == registry.MAX_SERIES + 1
    assert sum(attempts.values()) == registry.MAX_SERIES + 500  # nothing is lost
    other = value(s, "llm_proxy_upstream_attempts_total", backend="up", model=registry.OTHER)
    assert other == 500
    assert (
        value(
            s, "llm_proxy_upstream_failures_total", backend="up", model=registry.OTHER, kind="5xx"
        )
        == 500
    )
