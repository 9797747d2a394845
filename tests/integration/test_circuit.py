"""Circuit breakers per target, Retry-After cooling, 503 when all are open, /admin/backends,
and circuit state across a hot reload.

One gateway for the module: failure_threshold 2, cooldown 1 s, retries 1, total 2 s (so a
request cancelled by the deadline is quick to make). Circuits are per
(backend, provider model) and every test routes through a glob alias with a model name of its
own, so each test starts on closed circuits:

    solo/NAME -> a          pair/NAME -> a, then b (priority 1)
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.integration.fault_support import (
    Outcome,
    backends_view,
    call,
    http_client,
    reset_upstream,
    spawn_gateway,
    target_view,
    wait_until,
    write_config,
)
from tests.upstreams import FakeUpstream, ok, rate_limited, slow_stream, status

pytestmark = pytest.mark.timeout(30)

COOLDOWN = 1.0
THRESHOLD = 2
SECRET = "sk-circuit-test-SECRET-0123456789"
TOLERANCE = 0.6  # reopens_at is wall-clock: generous
TOTAL = 2.0


def _config(a: FakeUpstream, b: FakeUpstream, extra: str = "", b_headers: str = "{}") -> str:
    return f"""\
    version: 1
    settings:
      failure_threshold: {THRESHOLD}
      cooldown: {COOLDOWN}s
      retries: 1
      timeouts: {{connect: 0.5s, first_byte: 1s, idle: 1s, total: {TOTAL:g}s}}
      keepalive: 1s
    backends:
      a: {{type: openai, base_url: "{a.url}", api_key: "{SECRET}"}}
      b: {{type: openai, base_url: "{b.url}", headers: {b_headers}}}
    models:
      "solo/*": {{targets: [{{backend: a, model: "*"}}]}}
      "pair/*": {{targets: [{{backend: a, model: "*"}}, {{backend: b, model: "*", priority: 1}}]}}
    {extra}
    """


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    a: FakeUpstream
    b: FakeUpstream
    config: Path


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("circuit")
    a, b = FakeUpstream().start(), FakeUpstream().start()
    gw: Gateway | None = None
    try:
        config = write_config(tmp / "routes.yaml", _config(a, b))
        gw = spawn_gateway(config, tmp)
        with http_client(gw) as client:
            yield Rig(gw, client, a, b, config)
    finally:
        if gw is not None:
            gw.stop()
        a.stop()
        b.stop()


@pytest.fixture(autouse=True)
def _clean(rig: Rig) -> Iterator[None]:
    reset_upstream(rig.a, rig.b)
    yield
    reset_upstream(rig.a, rig.b)


def _target(rig: Rig, model: str, backend: str = "a") -> dict[str, Any]:
    t = target_view(rig.client, backend, model)
    assert t is not None, f"no circuit for {backend}/{model}"
    return t


def _assert_no_target(out: Outcome, retry_after: tuple[int, ...]) -> None:
    assert out.status == 503, out.raw
    err = out.error
    assert (err["type"], err["code"]) == ("service_unavailable", "no_available_target")
    assert int(out.headers["retry-after"]) in retry_after
    assert int(out.headers["retry-after-ms"]) == 1000 * int(out.headers["retry-after"])
    assert out.headers["x-should-retry"] == "false"


def _open(rig: Rig, model: str) -> None:
    """Fail `a` THRESHOLD times in a row for `model`: its circuit opens for COOLDOWN."""
    rig.a.script(*[status(500)] * THRESHOLD)
    for _ in range(THRESHOLD):
        assert call(rig.client, f"solo/{model}").status == 500
    assert _target(rig, model)["state"] == "open"


def _wait_half_open(rig: Rig, model: str) -> None:
    assert wait_until(lambda: _target(rig, model)["state"] == "half_open", COOLDOWN + 2, 0.05)


# --- threshold, cooldown, half-open probe ----------------------------------------------------


def test_threshold_consecutive_failures_open_the_circuit(rig: Rig) -> None:
    rig.a.script(status(500), status(500))
    t0 = time.time()
    call(rig.client, "solo/threshold")
    first = _target(rig, "threshold")
    assert (first["state"], first["consecutive_failures"], first["reopens_at"]) == (
        "closed",
        1,
        None,
    )
    call(rig.client, "solo/threshold")
    opened = _target(rig, "threshold")
    assert (opened["state"], opened["consecutive_failures"]) == ("open", 2)
    assert abs(opened["reopens_at"] - (t0 + COOLDOWN)) < TOLERANCE
    assert opened["last_error"] == "upstream answered 500"

    seen = len(rig.a.requests)
    out = call(rig.client, "solo/threshold")
    _assert_no_target(out, retry_after=(1,))
    assert out.attempts == 0
    assert len(rig.a.requests) == seen  # an open circuit is not tried


def test_success_resets_the_count(rig: Rig) -> None:
    rig.a.script(status(500), ok(), status(500))
    for _ in range(3):
        call(rig.client, "solo/reset-count")
    t = _target(rig, "reset-count")
    assert (t["state"], t["consecutive_failures"]) == ("closed", 1)  # never 2 in a row


def test_half_open_probe_success_closes(rig: Rig) -> None:
    _open(rig, "probe-ok")
    _wait_half_open(rig, "probe-ok")
    out = call(rig.client, "solo/probe-ok")
    assert out.status == 200
    assert out.attempts == 1
    t = _target(rig, "probe-ok")
    assert (t["state"], t["consecutive_failures"], t["reopens_at"]) == ("closed", 0, None)


def test_half_open_probe_failure_reopens(rig: Rig) -> None:
    _open(rig, "probe-fail")
    _wait_half_open(rig, "probe-fail")
    rig.a.script(status(502))
    t0 = time.time()
    assert call(rig.client, "solo/probe-fail").status == 502
    t = _target(rig, "probe-fail")
    assert t["state"] == "open"  # one failed probe is enough, whatever the threshold
    assert abs(t["reopens_at"] - (t0 + COOLDOWN)) < TOLERANCE


def test_only_one_probe_at_a_time(rig: Rig) -> None:
    _open(rig, "one-probe")
    _wait_half_open(rig, "one-probe")
    rig.a.script(ok(first_delay=0.6))  # the probe: held before its headers
    seen = len(rig.a.requests)
    probe: list[Outcome] = []
    thread = threading.Thread(target=lambda: probe.append(call(rig.client, "solo/one-probe")))
    thread.start()
    try:
        rig.a.wait_for_requests(seen + 1, timeout=3)
        assert _target(rig, "one-probe")["state"] == "open"  # while the probe is out
        _assert_no_target(call(rig.client, "solo/one-probe"), retry_after=(1,))
        assert len(rig.a.requests) == seen + 1
    finally:
        thread.join(timeout=5)
    assert probe[0].status == 200
    assert _target(rig, "one-probe")["state"] == "closed"


def test_open_target_is_skipped_not_tried(rig: Rig) -> None:
    rig.a.script(rate_limited("30"))
    rig.b.script(ok(text="from b"), ok(text="from b"))
    first = call(rig.client, "pair/skip")
    assert (first.status, first.attempts, first.headers["x-proxy-backend"]) == (200, 2, "b")
    seen = len(rig.a.requests)
    second = call(rig.client, "pair/skip")
    assert (second.status, second.attempts, second.headers["x-proxy-backend"]) == (200, 1, "b")
    assert second.text == "from b"
    assert len(rig.a.requests) == seen


# --- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry_after": "3"}, 3.0),
        ({"retry_after": None, "ms": 1500}, 1.5),
        ({"retry_after": "30", "ms": 2500}, 2.5),  # -ms is the precise one: it wins
        ({"retry_after": "3", "code": 529}, 3.0),
        ({"retry_after": "3", "code": 503}, 3.0),
    ],
    ids=["retry-after", "retry-after-ms", "ms-wins", "529", "503"],
)
def test_retry_after_cools_for_exactly_that_long(
    rig: Rig, headers: dict[str, Any], expected: float
) -> None:
    model = f"ra-{'-'.join(f'{k}{v}' for k, v in headers.items())}"
    rig.a.script(rate_limited(**headers))
    t0 = time.time()
    out = call(rig.client, f"solo/{model}")
    assert out.status == headers.get("code", 429)
    t = _target(rig, model)
    assert t["state"] == "open"  # one 429 is enough: below the threshold of 2
    assert t["consecutive_failures"] == 1
    assert abs(t["reopens_at"] - (t0 + expected)) < TOLERANCE
    blocked = call(rig.client, f"solo/{model}")
    _assert_no_target(blocked, retry_after=(int(expected + 0.999) - 1, int(expected + 0.999)))


def test_retry_after_http_date(rig: Rig) -> None:
    when = datetime.now(UTC) + timedelta(seconds=5)
    rig.a.script(rate_limited(format_datetime(when, usegmt=True)))
    call(rig.client, "solo/ra-date")
    t = _target(rig, "ra-date")
    assert t["state"] == "open"
    assert abs(t["reopens_at"] - when.timestamp()) < 1.5  # the date has 1 s resolution


def test_all_open_gives_503_with_first_reopen(rig: Rig) -> None:
    rig.a.script(rate_limited("2"))
    rig.b.script(rate_limited("6"))
    out = call(rig.client, "pair/all-open")
    assert out.status == 429  # both failed over; the last one's answer
    blocked = call(rig.client, "pair/all-open")
    _assert_no_target(blocked, retry_after=(1, 2))  # a reopens first, in <= 2 s
    assert blocked.attempts == 0


def test_every_target_429_passes_retry_after_on(rig: Rig) -> None:
    rig.a.script(rate_limited("5", ms=5000))
    rig.b.script(rate_limited("5", ms=5000))
    out = call(rig.client, "pair/all-429")
    assert out.status == 429
    assert out.error["code"] == "rate_limit_exceeded"
    assert out.headers["retry-after"] == "5"
    assert out.headers["retry-after-ms"] == "5000"
    assert out.headers["x-should-retry"] == "false"
    assert out.attempts == 2


def test_exhausted_failover_says_do_not_retry(rig: Rig) -> None:
    rig.a.script(status(502))
    rig.b.script(status(503))
    out = call(rig.client, "pair/exhausted")
    assert out.status == 503  # the last target's answer
    assert out.attempts == 2
    assert out.headers["x-should-retry"] == "false"


# --- /admin/backends -------------------------------------------------------------------------


def test_admin_backends_shows_each_target_without_secrets(rig: Rig) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}.", "type": "x",
                      "param": None, "code": "invalid_api_key"}}  # fmt: skip
    rig.a.script(status(401, echo), status(401, echo))
    rig.b.script(ok())
    call(rig.client, "pair/admin")
    a = _target(rig, "admin")
    assert set(a) >= {"backend", "model", "state", "consecutive_failures", "reopens_at",
                      "last_error", "in_flight"}  # fmt: skip
    assert (a["state"], a["consecutive_failures"], a["in_flight"]) == ("closed", 1, 0)
    assert a["last_error"] == "upstream answered 401"
    b = _target(rig, "admin", "b")
    assert (b["state"], b["consecutive_failures"], b["last_error"]) == ("closed", 0, None)
    raw = rig.client.get("/admin/backends").text
    assert SECRET not in raw and SECRET[:12] not in raw


def test_admin_backends_counts_in_flight(rig: Rig) -> None:
    rig.a.script(ok(first_delay=0.8))
    seen = len(rig.a.requests)
    thread = threading.Thread(target=lambda: call(rig.client, "solo/in-flight"))
    thread.start()
    try:
        rig.a.wait_for_requests(seen + 1, timeout=3)
        busy = backends_view(rig.client)
        assert busy["backends"]["a"]["in_flight"] == 1
        assert _target(rig, "in-flight")["in_flight"] == 1
    finally:
        thread.join(timeout=5)
    assert wait_until(lambda: _target(rig, "in-flight")["in_flight"] == 0, 2)
    assert backends_view(rig.client)["backends"]["a"]["in_flight"] == 0


# --- hot reload ------------------------------------------------------------------------------


def test_circuit_survives_reload_for_unchanged_targets(rig: Rig) -> None:
    rig.a.script(rate_limited("30"))
    rig.b.script(rate_limited("30"))
    call(rig.client, "pair/reload")
    before_a = _target(rig, "reload")
    assert before_a["state"] == _target(rig, "reload", "b")["state"] == "open"
    generation = backends_view(rig.client)["generation"]

    # an unrelated alias, and one change to backend b: a's circuit must stay, b's may go
    extra = '  "unrelated": {targets: [{backend: a, model: other}]}'
    write_config(rig.config, _config(rig.a, rig.b, extra, b_headers="{x-changed: '1'}"))
    resp = rig.client.post("/admin/reload")
    assert resp.status_code == 200, resp.text
    assert wait_until(lambda: backends_view(rig.client)["generation"] > generation, 3)

    after_a = _target(rig, "reload")
    assert after_a["state"] == "open"
    assert after_a["consecutive_failures"] == before_a["consecutive_failures"]
    assert abs(after_a["reopens_at"] - before_a["reopens_at"]) < 0.1
    after_b = target_view(rig.client, "b", "reload")
    assert after_b is None or after_b["state"] == "closed"  # a changed backend starts fresh

    rig.b.script(ok(text="b again"))
    seen = len(rig.a.requests)
    out = call(rig.client, "pair/reload")
    assert (out.status, out.headers["x-proxy-backend"], out.attempts) == (200, "b", 1)
    assert len(rig.a.requests) == seen  # still open after the reload
    assert call(rig.client, "unrelated").status == 200  # the new alias is live


# --- cancelled attempts settle their circuit -------------------------------------------------

SLOW = slow_stream(interval=0.2, chunks=40)  # 8 s: each gap under idle, the whole over total


def _cancelled(rig: Rig, model: str, cause: str) -> None:
    """One streaming request on `a` that commits, then is cancelled: its client leaves after
    the first content (`disconnect`), or the gateway's timeouts.total runs out (`total`)."""
    rig.a.script(SLOW)
    index = len(rig.a.requests)
    if cause == "disconnect":
        body = {"model": f"solo/{model}", "messages": [{"role": "user", "content": "hi"}],
                "stream": True}  # fmt: skip
        with rig.client.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():  # bounded: the stream is finite and times out
                if '"content":"w0"' in line:
                    break
        # leaving the block closes the connection mid-stream: the client is gone
    else:
        out = call(rig.client, f"solo/{model}", stream=True)
        assert out.status == 200 and not out.done
        err = out.error
        assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
        assert f"total={TOTAL:g}s" in err["message"]
    assert rig.a.wait_closed_early(index, timeout=3) < 1.0  # hung up at once


@pytest.mark.parametrize("cause", ["disconnect", "total"])
def test_cancelled_request_settles_its_circuit(rig: Rig, cause: str) -> None:
    model = f"cancelled-{cause}"
    _cancelled(rig, model, cause)
    assert wait_until(lambda: _target(rig, model)["in_flight"] == 0, 2), _target(rig, model)
    assert wait_until(lambda: backends_view(rig.client)["backends"]["a"]["in_flight"] == 0, 2)
    assert _target(rig, model)["state"] == "closed"
    out = call(rig.client, f"solo/{model}")  # the target still serves
    assert (out.status, out.attempts) == (200, 1)


@pytest.mark.parametrize("cause", ["disconnect", "total"])
def test_cancelled_probe_frees_the_probe_slot(rig: Rig, cause: str) -> None:
    """A half-open probe cut short gives no verdict and frees the probe: the next request may
    probe again, instead of 503 for ever."""
    model = f"cancelled-probe-{cause}"
    _open(rig, model)
    _wait_half_open(rig, model)
    _cancelled(rig, model, cause)  # the probe
    assert wait_until(lambda: _target(rig, model)["in_flight"] == 0, 2), _target(rig, model)
    assert _target(rig, model)["state"] == "half_open"  # the slot is free again
    out = call(rig.client, f"solo/{model}")
    assert (out.status, out.attempts) == (200, 1)
    t = _target(rig, model)
    assert (t["state"], t["consecutive_failures"], t["in_flight"]) == ("closed", 0, 0)
