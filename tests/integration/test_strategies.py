"""Selection within a tier: weighted (default), least_busy, latency; and tiers before weights.

One gateway, two upstreams. Each test uses a model name of its own, so circuits (which also
carry the in-flight count and the time-to-first-byte average the strategies read) start fresh.
Every loop is bounded; the statistical bounds are loose enough to practically never flake.
"""

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Gateway
from tests.integration.fault_support import (
    Outcome,
    call,
    http_client,
    reset_upstream,
    spawn_gateway,
    target_view,
    wait_until,
    write_config,
)
from tests.upstreams import FakeUpstream, ok, slow_stream

pytestmark = pytest.mark.timeout(30)

SLOW = 0.15  # the slow target's time to first byte


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    a: FakeUpstream
    b: FakeUpstream


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("strategies")
    a, b = FakeUpstream().start(), FakeUpstream().start()
    gw: Gateway | None = None
    try:
        config = write_config(
            tmp / "routes.yaml",
            f"""\
            version: 1
            settings:
              failure_threshold: 3
              cooldown: 1s
              timeouts: {{connect: 1s, first_byte: 2s, idle: 2s, total: 10s}}
              keepalive: 1s
            backends:
              a: {{type: openai, base_url: "{a.url}"}}
              b: {{type: openai, base_url: "{b.url}"}}
            models:
              "weighted/*":
                targets: [{{backend: a, model: "*", weight: 4}}, {{backend: b, model: "*"}}]
              "tiers/*":
                targets:
                  - {{backend: a, model: "*", priority: 1, weight: 100}}
                  - {{backend: b, model: "*"}}
              "least/*":
                strategy: least_busy
                targets: [{{backend: a, model: "*"}}, {{backend: b, model: "*"}}]
              "latency/*":
                strategy: latency
                targets: [{{backend: a, model: "*"}}, {{backend: b, model: "*"}}]
            """,
        )
        gw = spawn_gateway(config, tmp)
        with http_client(gw) as client:
            yield Rig(gw, client, a, b)
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


def _backends(rig: Rig, model: str, n: int) -> Counter[str]:
    picked: Counter[str] = Counter()
    for _ in range(n):
        out = call(rig.client, model)
        assert out.status == 200 and out.attempts == 1
        picked[out.headers["x-proxy-backend"]] += 1
    return picked


def test_weighted_within_a_tier(rig: Rig) -> None:
    picked = _backends(rig, "weighted/w", 60)  # a: weight 4, b: weight 1 -> ~48 / ~12
    assert 30 <= picked["a"] <= 59, picked
    assert picked["b"] >= 1, picked


def test_lower_priority_tier_first_whatever_the_weight(rig: Rig) -> None:
    assert _backends(rig, "tiers/t", 15) == Counter(b=15)


def test_least_busy_avoids_the_busy_target(rig: Rig) -> None:
    model = "least/busy"
    # the first request takes whichever target comes first and is held there, streaming
    hold = slow_stream(interval=0.1, chunks=12)  # ~1.2 s
    rig.a.default = rig.b.default = hold
    seen = {"a": len(rig.a.requests), "b": len(rig.b.requests)}
    held: list[Outcome] = []
    thread = threading.Thread(target=lambda: held.append(call(rig.client, model, stream=True)))
    thread.start()
    try:
        assert wait_until(lambda: len(rig.a.requests) + len(rig.b.requests) > sum(seen.values()), 3)
        reset_upstream(rig.a, rig.b)  # answers from here on are quick
        busy = "a" if len(rig.a.requests) > seen["a"] else "b"
        free = "b" if busy == "a" else "a"
        view = target_view(rig.client, busy, "busy")
        assert view is not None and view["in_flight"] == 1
        for _ in range(5):
            out = call(rig.client, model)
            assert out.headers["x-proxy-backend"] == free
    finally:
        thread.join(timeout=10)
    assert held[0].status == 200 and held[0].done
    assert held[0].headers["x-proxy-backend"] == busy


def _slow_b(rig: Rig) -> None:
    rig.a.default = ok()
    rig.b.default = ok(first_delay=SLOW)  # non-streaming: the delay is before the headers


def test_latency_prefers_the_faster_target(rig: Rig) -> None:
    _slow_b(rig)
    warm = _backends(rig, "latency/prefer", 4)  # unmeasured targets are tried first
    assert warm["a"] >= 1 and warm["b"] >= 1
    picked = _backends(rig, "latency/prefer", 40)
    assert picked["a"] >= 28, picked  # mostly a; some exploration of b is allowed
    a = target_view(rig.client, "a", "prefer")
    b = target_view(rig.client, "b", "prefer")
    assert a is not None and b is not None
    assert a["ttfb_ewma_ms"] < b["ttfb_ewma_ms"]


def test_latency_still_explores_a_recovered_target(rig: Rig) -> None:
    _slow_b(rig)
    _backends(rig, "latency/explore", 4)  # both measured: b is the slow one
    rig.b.default = ok()  # b recovers
    before = len(rig.b.requests)
    # exploring even 5% of picks reaches b within 300 with odds of about 1 - 2e-7
    for _ in range(300):
        call(rig.client, "latency/explore")
        if len(rig.b.requests) > before:
            break
    assert len(rig.b.requests) > before
