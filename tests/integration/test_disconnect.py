"""A client that goes away: the gateway hangs up on the upstream at once (`cancel`, the
default), or reads it to the end (`drain`), bounded by `timeouts.total`.

Clients here are raw sockets, so "going away" is exactly one close(). Two gateways: `cancel`
(failure_threshold 1, so one failure opens a circuit; cooldown 1 s; total 30 s, so a missed
disconnect is not hidden by the deadline) and `drain` (total 2 s).
"""

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Gateway
from tests.integration.fault_support import (
    backends_view,
    call,
    chat_body,
    http_client,
    reset_upstream,
    spawn_gateway,
    target_view,
    wait_until,
    write_config,
)
from tests.upstreams import (
    FakeUpstream,
    never_answer,
    ok,
    slow_stream,
    stall_before_headers,
    status,
)

pytestmark = pytest.mark.timeout(30)

GONE_WITHIN = 1.0  # the upstream connection must be closed this soon after the client left
DRAIN_TOTAL = 2.0


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    up: FakeUpstream


def _start(
    tmp_path_factory: pytest.TempPathFactory, on_disconnect: str, total: float
) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp(on_disconnect)
    up = FakeUpstream().start()
    gw: Gateway | None = None
    try:
        config = write_config(
            tmp / "routes.yaml",
            f"""\
            version: 1
            settings:
              failure_threshold: 1
              cooldown: 1s
              retries: 0
              timeouts: {{connect: 1s, first_byte: 5s, idle: 5s, total: {total}s}}
              keepalive: 50ms
              on_disconnect: {on_disconnect}
            backends:
              up: {{type: openai, base_url: "{up.url}"}}
            models:
              "m/*": {{targets: [{{backend: up, model: "*"}}]}}
            """,
        )
        gw = spawn_gateway(config, tmp)
        with http_client(gw) as client:
            yield Rig(gw, client, up)
    finally:
        if gw is not None:
            gw.stop()
        up.stop()


@pytest.fixture(scope="module")
def cancel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    yield from _start(tmp_path_factory, "cancel", total=30)  # a missed disconnect shows


@pytest.fixture(scope="module")
def drain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    yield from _start(tmp_path_factory, "drain", total=DRAIN_TOTAL)


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    rigs = [request.getfixturevalue(n) for n in ("cancel", "drain") if n in request.fixturenames]
    for rig in rigs:
        reset_upstream(rig.up)
    yield
    for rig in rigs:
        reset_upstream(rig.up)


class RawClient:
    """One HTTP/1.1 request on a plain socket, so the test decides when the client leaves."""

    def __init__(self, gw: Gateway, model: str, stream: bool) -> None:
        body = json.dumps(chat_body(model, stream)).encode()
        self.sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        self.received = b""

    def read_until(self, marker: bytes, timeout: float = 5) -> bytes:
        end = time.monotonic() + timeout
        while marker not in self.received:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{marker!r} not received; got {self.received!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}; got {self.received!r}")
            self.received += chunk
        return self.received

    def leave(self) -> None:
        self.sock.close()


# --- cancel: the upstream is closed within a second ------------------------------------------


def test_disconnect_mid_stream_closes_upstream(cancel: Rig) -> None:
    cancel.up.script(slow_stream(interval=0.2, chunks=40))
    index = len(cancel.up.requests)
    client = RawClient(cancel.gw, "m/mid-stream", stream=True)
    client.read_until(b'"content":" w1"')  # committed, streaming
    client.leave()
    assert cancel.up.wait_closed_early(index, timeout=3) < GONE_WITHIN


def test_disconnect_during_time_to_first_token_closes_upstream(cancel: Rig) -> None:
    """Upstream headers and preamble are in, the first token is not: nothing committed yet."""
    cancel.up.script(slow_stream(first_delay=10))
    index = len(cancel.up.requests)
    client = RawClient(cancel.gw, "m/ttft", stream=True)
    cancel.up.wait_for_requests(index + 1)
    client.read_until(b": keepalive")  # the gateway is holding the stream open for us
    client.leave()
    assert cancel.up.wait_closed_early(index, timeout=3) < GONE_WITHIN


def test_disconnect_before_upstream_headers_closes_upstream(cancel: Rig) -> None:
    cancel.up.script(stall_before_headers(10))
    index = len(cancel.up.requests)
    client = RawClient(cancel.gw, "m/before-headers", stream=True)
    cancel.up.wait_for_requests(index + 1)
    client.leave()
    assert cancel.up.wait_closed_early(index, timeout=3) < GONE_WITHIN


def test_disconnect_non_streaming_closes_upstream(cancel: Rig) -> None:
    cancel.up.script(never_answer())
    index = len(cancel.up.requests)
    client = RawClient(cancel.gw, "m/json", stream=False)
    cancel.up.wait_for_requests(index + 1)
    client.leave()
    assert cancel.up.wait_closed_early(index, timeout=3) < GONE_WITHIN


def test_gateway_keeps_serving_after_disconnects(cancel: Rig) -> None:
    for i in range(5):
        cancel.up.script(slow_stream(interval=0.2, chunks=40))
        index = len(cancel.up.requests)
        client = RawClient(cancel.gw, f"m/burst-{i}", stream=True)
        client.read_until(b'"content":"w0"')
        client.leave()
        cancel.up.wait_closed_early(index, timeout=3)
    out = call(cancel.client, "m/after-burst", stream=True)
    assert out.status == 200 and out.done
    assert backends_view(cancel.client)["backends"]["up"]["in_flight"] == 0


def test_disconnect_settles_the_target(cancel: Rig) -> None:
    """The cancelled attempt frees its slot: in_flight back to 0 (least_busy reads it)."""
    cancel.up.script(slow_stream(interval=0.2, chunks=40))
    index = len(cancel.up.requests)
    client = RawClient(cancel.gw, "m/settles", stream=True)
    client.read_until(b'"content":"w0"')
    client.leave()
    cancel.up.wait_closed_early(index, timeout=3)
    settled = wait_until(
        lambda: (target_view(cancel.client, "up", "settles") or {}).get("in_flight") == 0, 1
    )
    assert settled, target_view(cancel.client, "up", "settles")


def test_disconnected_probe_does_not_wedge_the_circuit(cancel: Rig) -> None:
    """A half-open probe cut short by its client gives no verdict, and frees the probe."""
    cancel.up.script(status(500))
    assert call(cancel.client, "m/wedge").status == 500  # threshold 1: open for 1 s
    assert wait_until(
        lambda: (target_view(cancel.client, "up", "wedge") or {}).get("state") == "half_open",
        timeout=3,
    )
    cancel.up.script(slow_stream(first_delay=10))  # the probe
    index = len(cancel.up.requests)
    client = RawClient(cancel.gw, "m/wedge", stream=True)
    cancel.up.wait_for_requests(index + 1)
    client.read_until(b": keepalive")
    client.leave()
    cancel.up.wait_closed_early(index, timeout=3)
    # the probe ended without a verdict: the next request may probe again (after at most a
    # cooldown), instead of 503 forever
    recovered = wait_until(lambda: call(cancel.client, "m/wedge").status == 200, 3, every=0.2)
    assert recovered, target_view(cancel.client, "up", "wedge")


# --- drain: the upstream is read to its end --------------------------------------------------


def test_drain_reads_upstream_to_the_end(drain: Rig) -> None:
    drain.up.script(slow_stream(interval=0.1, chunks=10))  # ~1 s, inside total
    index = len(drain.up.requests)
    client = RawClient(drain.gw, "m/drain", stream=True)
    client.read_until(b'"content":" w1"')
    client.leave()
    with pytest.raises(TimeoutError):  # not closed early: it finished
        drain.up.wait_closed_early(index, timeout=DRAIN_TOTAL)
    assert index not in drain.up.closed_early
    assert wait_until(lambda: backends_view(drain.client)["backends"]["up"]["in_flight"] == 0, 2)


def test_drain_is_bounded_by_total(drain: Rig) -> None:
    drain.up.script(slow_stream(interval=0.2, chunks=100))  # 20 s: far past total
    index = len(drain.up.requests)
    t0 = time.monotonic()
    client = RawClient(drain.gw, "m/drain-bounded", stream=True)
    client.read_until(b'"content":"w0"')
    client.leave()
    drain.up.wait_closed_early(index, timeout=DRAIN_TOTAL + 3)
    assert time.monotonic() - t0 < DRAIN_TOTAL + GONE_WITHIN + 0.5


def test_drain_keeps_serving(drain: Rig) -> None:
    drain.up.script(ok(text="still here"))
    out = call(drain.client, "m/drain-after", stream=True)
    assert out.status == 200 and out.done and out.text == "still here"
