"""Observability end to end with two workers, and an upstream that quotes the gateway's key.

`counted` (module scope) runs two workers, logs no prompts, and takes one known batch of
traffic whose counts `/metrics` must show exactly, and whose access lines must be one per
request. `echoing` has one upstream whose stream error quotes the gateway's key (its circuit
remembers that text, so it is kept apart): the key must stay out of the log, the spans, the
answer and /admin/backends. Upstreams and helpers are `observability_support`'s. Waits poll
with a deadline; nothing sleeps "long enough".
"""

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.integration.observability_support import (
    ACCESS_FIELDS,
    COST,
    KEY_BAD,
    KEY_GOOD,
    KEY_LOCKED,
    MODELS,
    PRICES,
    SPAN_DEADLINE,
    USAGE,
    Answer,
    access_line,
    access_lines,
    bad_upstream,
    chat,
    fresh,
    good_upstream,
    locked_upstream,
    spans,
    wait_for,
    worker_of,
)
from tests.upstreams import FakeUpstream, status

pytestmark = pytest.mark.timeout(40)

KEY_ECHOED = "obs-upstream-echoed-key-0b6d19"  # quoted back in an upstream's stream error
METRICS_DEADLINE = 3.0  # workers publish every 0.5 s


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad() -> Iterator[FakeUpstream]:
    with bad_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def good() -> Iterator[FakeUpstream]:
    with good_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def locked() -> Iterator[FakeUpstream]:
    with locked_upstream() as up:
        yield up


# --- a key quoted back by an upstream --------------------------------------------------------


@pytest.fixture(scope="module")
def echoing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway (own module-scoped one: circuits remember errors) whose only upstream
    answers a stream with an in-band error frame quoting the gateway's key, before any
    content, as OpenAI-compatible servers do."""
    frame = {"error": {"message": f"Incorrect API key provided: {KEY_ECHOED}", "type": "auth"}}
    with FakeUpstream(models=("m-echo",)) as up:
        up.default = status(
            200,
            body=f"data: {json.dumps(frame)}\n\n",
            headers={"Content-Type": "text/event-stream"},
        )
        directory = tmp_path_factory.mktemp("echoing")
        config = RoutesFile(directory)(
            f"""
            version: 1
            backends:
              echo: {{type: openai, base_url: "{up.url}", api_key: {KEY_ECHOED}}}
            models:
              echo: {{targets: [{{backend: echo, model: m-echo}}]}}
            """
        )
        env = {"LLM_PROXY_TRACING": "console", "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_SDK_DISABLED": "false", "LLM_PROXY_ACCESS_LOG": "stdout"}  # fmt: skip
        with serve(config, directory, env=env) as gw:
            yield gw


def test_stream_error_quoting_the_key_stays_out_of_log_and_spans(echoing: Gateway) -> None:
    resp = chat(echoing, "echo", stream=True)
    assert resp.status == 502, resp.body
    rid = resp.headers["x-request-id"]
    assert access_line(echoing, rid)["error_type"]
    wait_for(
        lambda: any(s["attributes"].get("llm_proxy.request_id") == rid for s in spans(echoing)),
        SPAN_DEADLINE,
        "the request's spans in the log",
    )
    assert "Incorrect API key provided" in echoing.log_text(), "the failure was logged"
    assert KEY_ECHOED not in echoing.log_text()


def test_stream_error_quoting_the_key_is_not_returned(echoing: Gateway) -> None:
    resp = chat(echoing, "echo", stream=True)
    assert resp.status == 502
    assert KEY_ECHOED.encode() not in resp.body, resp.body


def test_stream_error_quoting_the_key_is_not_in_admin_backends(echoing: Gateway) -> None:
    assert chat(echoing, "echo", stream=True).status == 502
    view = fresh(echoing, "GET", "/admin/backends")
    assert view.status == 200
    assert "Incorrect API key provided" in view.body.decode(), "the error is shown"
    assert KEY_ECHOED.encode() not in view.body, view.body


# --- Prometheus text format ------------------------------------------------------------------

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    """Exposition format 0.0.4: every sample; each must belong to a family with a TYPE."""
    typed: dict[str, str] = {}
    out: list[Sample] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                typed[parts[2]] = parts[3]
            continue
        m = _SAMPLE.fullmatch(line)
        assert m, f"not a sample line: {line!r}"
        name, raw_labels, raw_value = m.groups()
        labels: dict[str, str] = {}
        rest = raw_labels or ""
        while rest:
            lm = _LABEL.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels[lm.group(1)] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group()], lm.group(2))
            rest = rest[lm.end() :]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no # TYPE line"
        out.append(Sample(name, labels, float(raw_value)))
    return out


def series(samples: list[Sample], name: str, *label_names: str) -> dict[tuple[str, ...], float]:
    """`name`'s samples keyed by the given labels' values (summed over any others)."""
    out: dict[tuple[str, ...], float] = {}
    for s in samples:
        if s.name == name:
            key = tuple(s.labels.get(n, "") for n in label_names)
            out[key] = out.get(key, 0.0) + s.value
    return out


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# --- metrics with two workers (and log_prompts: none) ----------------------------------------


class Traffic(NamedTuple):
    gw: Gateway
    requests: Counter[tuple[str, str, str]]  # (alias, backend, status) -> requests sent
    answered: Counter[str]  # alias -> requests the good upstream answered
    plain: int  # non-streaming answers (the ones with a gateway overhead figure)
    streams: int  # streaming answers
    attempts: Counter[tuple[str, str]]  # (backend, model) -> upstream attempts
    failures: Counter[tuple[str, str, str]]  # (backend, model, kind) -> failed attempts
    workers: set[str]
    ids: list[str]


# What one round sends: (model, stream, expected status, answering backend).
ROUND = (
    *[("ok", False, 200, "good")] * 4,
    *[("ok", True, 200, "good")] * 2,
    *[("fo", False, 200, "good")] * 2,
    ("locked-fo", False, 200, "good"),
    *[("nope", False, 404, "")] * 2,
    ("dead", False, 500, "bad"),  # a request no target answered names the last one tried
)
# The failed attempt each model makes before its answer (or its error).
FAILED_FIRST = {"fo": ("bad", "m-bad", "5xx"), "dead": ("bad", "m-bad", "5xx"),
                "locked-fo": ("locked", "m-locked", "4xx")}  # fmt: skip


@pytest.fixture(scope="module")
def counted(
    tmp_path_factory: pytest.TempPathFactory,
    bad: FakeUpstream,
    good: FakeUpstream,
    locked: FakeUpstream,
) -> Iterator[Traffic]:
    """A two-worker gateway after one config reload and a known mix of requests, sent on
    fresh connections, concurrently, until both workers have answered some."""
    directory = tmp_path_factory.mktemp("counted")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          failure_threshold: 1000
          retries: 2
          log_prompts: none
        backends:
          bad: {{type: openai, base_url: "{bad.url}", api_key: {KEY_BAD}}}
          good: {{type: openai, base_url: "{good.url}", api_key: {KEY_GOOD}}}
          locked: {{type: openai, base_url: "{locked.url}", api_key: {KEY_LOCKED}}}
        """
        + MODELS
    )
    env = {
        "LLM_PROXY_TRACING": "off",
        "LLM_PROXY_ACCESS_LOG": "stdout",
        "LLM_PROXY_PRICES": json.dumps(PRICES),
    }
    with serve(config, directory, workers=2, env=env) as gw:
        # /health answers once ONE worker is up; reload only when both are, so both count it.
        up: set[str] = set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(40):  # bounded
                up.update(map(worker_of, pool.map(lambda _: fresh(gw, "GET", "/health"), range(8))))
                if len(up) == 2:
                    break
                time.sleep(0.05)
        assert len(up) == 2, "the second worker never answered"
        reload = fresh(gw, "POST", "/admin/reload")
        assert reload.status == 200 and reload.json()["ok"] is True, reload.body

        t = Traffic(gw, Counter(), Counter(), 0, 0, Counter(), Counter(), set(), [])
        plain = streams = 0
        prompt = [{"role": "user", "content": "contact bob.obs@example.org about it"}]

        def send(item: tuple[str, bool, int, str]) -> Answer:
            model, stream, _, _ = item
            return chat(gw, model, messages=prompt, stream=stream)

        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(8):  # bounded: until both workers have served traffic
                for item, resp in zip(ROUND, pool.map(send, ROUND), strict=True):
                    model, stream, code, backend = item
                    assert resp.status == code, (item, resp.body)
                    alias = "" if model == "nope" else model
                    t.requests[(alias, backend, str(code))] += 1
                    t.workers.add(worker_of(resp))
                    t.ids.append(resp.headers["x-request-id"])
                    if model in FAILED_FIRST:
                        failed = FAILED_FIRST[model]
                        t.attempts[failed[:2]] += 1
                        t.failures[failed] += 1
                    if backend == "good":
                        t.answered[alias] += 1
                        t.attempts[("good", "m-good")] += 1
                        streams += stream
                        plain += not stream
                if len(t.workers) == 2:
                    break
        assert len(t.workers) == 2, "every request landed on one worker"
        yield t._replace(plain=plain, streams=streams)


def test_metrics_count_two_workers_traffic(counted: Traffic) -> None:
    t = counted
    n = sum(t.requests.values())

    def scrape() -> list[Sample] | None:
        samples = parse_prometheus(fresh(t.gw, "GET", "/metrics").body.decode())
        by_status = series(samples, "llm_proxy_requests_total", "alias", "backend", "status")
        reloads = series(samples, "llm_proxy_config_reloads_total", "result")
        settled = (
            by_status == {k: float(v) for k, v in t.requests.items()}
            and total(samples, "llm_proxy_workers") == 2
            and reloads.get(("ok",)) == 2
            and total(samples, "llm_proxy_config_generation_min") == 2
        )
        return samples if settled else None

    end = time.monotonic() + METRICS_DEADLINE
    samples = scrape()
    while samples is None and time.monotonic() < end:
        time.sleep(0.1)
        samples = scrape()
    if samples is None:  # show the difference, not just "timed out"
        last = parse_prometheus(fresh(t.gw, "GET", "/metrics").body.decode())
        got = series(last, "llm_proxy_requests_total", "alias", "backend", "status")
        assert got == {k: float(v) for k, v in t.requests.items()}
        assert total(last, "llm_proxy_workers") == 2
        assert series(last, "llm_proxy_config_reloads_total", "result").get(("ok",)) == 2
        assert total(last, "llm_proxy_config_generation_min") == 2
        raise AssertionError("metrics did not settle")  # pragma: no cover

    # Tokens and cost: exactly what the upstream reported, per alias.
    tokens = series(samples, "llm_proxy_tokens_total", "alias", "backend", "type")
    expect_tokens: dict[tuple[str, ...], float] = {}
    for alias, count in t.answered.items():
        expect_tokens[(alias, "good", "input")] = float(count * USAGE[0])
        expect_tokens[(alias, "good", "output")] = float(count * USAGE[1])
    assert tokens == expect_tokens
    cost = series(samples, "llm_proxy_cost_usd_total", "alias", "backend")
    assert set(cost) == {(alias, "good") for alias in t.answered}
    for alias, count in t.answered.items():
        assert math.isclose(cost[(alias, "good")], count * COST, rel_tol=1e-9)

    # Upstream attempts and failures by kind.
    attempts = series(samples, "llm_proxy_upstream_attempts_total", "backend", "model")
    assert attempts == {k: float(v) for k, v in t.attempts.items()}
    failures = series(samples, "llm_proxy_upstream_failures_total", "backend", "model", "kind")
    assert failures == {k: float(v) for k, v in t.failures.items()}

    # Histograms count every request; first-token times only streams; nothing left in flight.
    assert total(samples, "llm_proxy_request_duration_seconds_count") == n
    durations = series(samples, "llm_proxy_request_duration_seconds_count", "alias")
    assert durations.get(("",)) == t.requests[("", "", "404")]
    assert total(samples, "llm_proxy_request_duration_seconds_bucket", le="+Inf") == n
    assert total(samples, "llm_proxy_time_to_first_token_seconds_count") == t.streams
    assert total(samples, "llm_proxy_gateway_overhead_seconds_count") == t.plain
    circuits = series(samples, "llm_proxy_circuit_state", "backend", "model", "state")
    for (backend, model), _ in t.attempts.items():
        workers_with = sum(circuits.get((backend, model, st), 0) for st in ("closed", "open"))
        assert 1 <= workers_with <= 2 and circuits.get((backend, model, "open"), 0) == 0
    assert total(samples, "llm_proxy_requests_in_flight") == 0
    assert total(samples, "llm_proxy_streams_open") == 0

    # Config: two successful reloads (one per worker), none failed, both at generation 2.
    reloads = series(samples, "llm_proxy_config_reloads_total", "result")
    assert reloads == {("ok",): 2.0, ("failed",): 0.0}
    assert total(samples, "llm_proxy_config_generation") == 2


def test_access_log_two_workers_one_line_each_and_no_prompt(counted: Traffic) -> None:
    def complete() -> list[dict[str, Any]] | None:
        lines = [d for d in access_lines(counted.gw) if d["request_id"] in set(counted.ids)]
        return lines if len(lines) >= len(counted.ids) else None

    lines = wait_for(complete, 3.0, "an access line for every request")
    assert sorted(d["request_id"] for d in lines) == sorted(counted.ids)
    assert {d["request_id"][:16] for d in lines} == counted.workers
    for d in lines:
        assert set(ACCESS_FIELDS) <= set(d)
        assert "prompt" not in d, "log_prompts: none must leave the prompt out"
        assert d["key_name"] == "anonymous"  # no keys: section
    assert "bob.obs@example.org" not in counted.gw.log_text()
    by_status = Counter((d["alias"] or "", d["backend"] or "", str(d["status"])) for d in lines)
    assert by_status == counted.requests
