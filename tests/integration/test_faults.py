"""The fault table: every upstream failure on a single target, and exactly what the client
sees; the timeouts, each enforced and named; nothing left in flight or open afterwards.

The rig (`fault_support.fault_rig`, its aliases in that module's docstring) is started once
for this module; tests use `solo/NAME`, `refused/NAME`, `hole/NAME` and `choked/NAME` with a
model name of their own, so each starts on fresh circuits.
"""

from collections.abc import Iterator

import pytest

from tests.integration.fault_support import (
    IDLE,
    MALFORMED_JSON,
    MARGIN,
    TIMEOUT,
    TOTAL,
    Rig,
    call,
    fault_rig,
    gateway_error,
    group_sockets,
    request_kind,
    reset_upstream,
    stream_error_end,
    wait_idle,
    wait_until,
)
from tests.upstreams import (
    Behaviour,
    cut_before_done,
    garbage,
    never_answer,
    preamble_then_fail,
    rate_limited,
    reset_before_headers,
    reset_mid_stream,
    slow_stream,
    stall_before_headers,
    stall_mid_stream,
    status,
    truncated_json,
    wrong_content_type,
)

pytestmark = pytest.mark.timeout(30)


# --- the module's gateway --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with fault_rig(tmp_path_factory.mktemp("faults")) as rig:
        yield rig


@pytest.fixture(autouse=True)
def _clean(rig: Rig) -> Iterator[None]:
    reset_upstream(rig.a, rig.b)
    yield
    reset_upstream(rig.a, rig.b)


# --- the fault table: one target, the fault's own outcome ------------------------------------


def test_refused_connection(rig: Rig) -> None:
    out = call(rig.client, "refused/table")
    err = gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert "cannot connect" in err["message"]
    assert out.attempts == 1


def test_accepts_never_answers_blackhole(rig: Rig) -> None:
    before = rig.hole.accepted
    out = call(rig.client, "hole/table")
    err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < TIMEOUT + MARGIN
    assert rig.hole.accepted > before  # it did connect: this is not a connect failure


def test_never_answer(rig: Rig) -> None:
    rig.a.script(never_answer())
    index = len(rig.a.requests)
    out = call(rig.client, "solo/never-answer")
    err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < TIMEOUT + MARGIN
    # the gateway hung up on the held request: recorded as closed early
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


def test_stall_before_headers(rig: Rig) -> None:
    rig.a.script(stall_before_headers(5))
    out = call(rig.client, "solo/stall-before-headers", stream=True)
    err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < TIMEOUT + MARGIN


def test_reset_before_headers(rig: Rig) -> None:
    rig.a.script(reset_before_headers())
    out = call(rig.client, "solo/reset-before-headers")
    gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert out.attempts == 1


def test_stall_mid_stream(rig: Rig) -> None:
    rig.a.script(stall_mid_stream(2, 5))
    index = len(rig.a.requests)
    out = call(rig.client, "solo/stall-mid-stream", stream=True)
    err = stream_error_end(out, content_frames=2)
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"idle={IDLE:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < IDLE + MARGIN
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_reset_mid_stream(rig: Rig, rst: bool) -> None:
    rig.a.script(reset_mid_stream(2, rst=rst))
    out = call(rig.client, f"solo/reset-mid-stream-{rst}", stream=True)
    err = stream_error_end(out, content_frames=out.content_frames)
    assert out.content_frames <= 2  # an RST may discard bytes in flight, never invent any
    if not rst:
        assert out.content_frames == 2
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_failed")
    assert out.attempts == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_429_with_retry_after(rig: Rig, stream: bool) -> None:
    rig.a.script(rate_limited("2"))
    out = call(rig.client, f"solo/429-retry-after-{request_kind(stream)}", stream=stream)
    assert out.status == 429
    assert out.json["error"]["code"] == "rate_limit_exceeded"  # the upstream's own body
    assert out.headers["retry-after"] == "2"
    assert out.headers["x-should-retry"] == "false"
    assert out.attempts == 1


@pytest.mark.parametrize("code", [500, 503, 529])
def test_5xx(rig: Rig, code: int) -> None:
    rig.a.script(status(code))
    out = call(rig.client, f"solo/{code}")
    assert out.status == code  # the last target's answer, passed on
    err = out.error
    assert err["type"] == "server_error" and err["message"] == f"fake openai upstream: {code}"
    assert out.headers["x-should-retry"] == "false"
    assert out.attempts == 1


@pytest.mark.parametrize(
    "behaviour",
    [garbage(), truncated_json()],
    ids=["garbage", "truncated_json"],
)
def test_malformed_stream_before_commit(rig: Rig, behaviour: Behaviour) -> None:
    rig.a.script(behaviour)
    out = call(rig.client, f"solo/malformed-stream-{behaviour.kind}", stream=True)
    err = gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert "malformed" in err["message"]
    assert out.attempts == 1


def test_wrong_content_type_on_stream(rig: Rig) -> None:
    rig.a.script(wrong_content_type())
    out = call(rig.client, "solo/wrong-content-type", stream=True)
    err = gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert "text/html" in err["message"]
    assert out.attempts == 1


@pytest.mark.parametrize("after", [None, 2], ids=["before-done", "after-2"])
def test_cut_before_done(rig: Rig, after: int | None) -> None:
    rig.a.script(cut_before_done(after))
    out = call(rig.client, f"solo/cut-{after}", stream=True)
    if after is None:  # every content frame and the finish arrived; only [DONE] was missing
        err = stream_error_end(out, content_frames=6)
        assert out.text == "Hello from cut-None. You said: hi"
        assert out.chunks[-1]["choices"][0]["finish_reason"] == "stop"
    else:
        err = stream_error_end(out, content_frames=after)
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_failed")
    assert "ended before it was complete" in err["message"]
    assert out.attempts == 1


@pytest.mark.parametrize("case", list(MALFORMED_JSON))
def test_malformed_json_body(rig: Rig, case: str) -> None:
    """A 200 whose body is not a complete JSON object is an upstream failure, not an answer."""
    rig.a.script(MALFORMED_JSON[case])
    out = call(rig.client, f"solo/malformed-json-{case}")
    gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert out.attempts == 1


# --- timeouts: enforced, and named -----------------------------------------------------------


def test_connect_timeout(rig: Rig) -> None:
    if not rig.choked.choked():
        pytest.skip("this kernel does not drop SYNs to a full accept queue on loopback")
    out = call(rig.client, "choked/connect")
    err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"connect={TIMEOUT:g}s" in err["message"]
    assert out.elapsed < TIMEOUT + MARGIN


def test_first_byte_timeout_json(rig: Rig) -> None:
    rig.a.script(stall_before_headers(5))
    out = call(rig.client, "solo/first-byte-json")
    err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.elapsed < TIMEOUT + MARGIN


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_idle_timeout_named(rig: Rig, stream: bool) -> None:
    """The idle timeout names its setting, as connect, first_byte and total do."""
    rig.a.script(stall_mid_stream(2, 5))
    out = call(rig.client, f"solo/idle-named-{request_kind(stream)}", stream=stream)
    if stream:  # committed before the stall: the error arrives as the stream's last event
        err = stream_error_end(out, content_frames=2)
    else:  # no head was sent yet: a plain 504
        err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"idle={IDLE:g}s" in err["message"]
    assert out.elapsed < IDLE + MARGIN


def test_idle_timeout_json_body(rig: Rig) -> None:
    """A non-streaming body that stalls halfway: idle applies to it too."""
    rig.a.script(stall_mid_stream(2, 5))
    index = len(rig.a.requests)
    out = call(rig.client, "solo/idle-json")
    err = gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"idle={IDLE:g}s" in err["message"]
    assert out.elapsed < IDLE + MARGIN
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


def test_total_timeout(rig: Rig) -> None:
    """Each gap (0.2 s) is under idle (0.5 s); the whole stream (4 s) is over total (2 s)."""
    rig.a.script(slow_stream(interval=0.2, chunks=20))
    index = len(rig.a.requests)
    out = call(rig.client, "solo/total", stream=True)
    assert out.status == 200
    assert 0 < out.content_frames < 20
    err = stream_error_end(out, out.content_frames)
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"total={TOTAL:g}s" in err["message"]
    assert out.elapsed < TOTAL + MARGIN
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


def test_total_timeout_settles_the_target(rig: Rig) -> None:
    """The attempt cancelled by timeouts.total frees its slots: target and backend."""
    rig.a.script(slow_stream(interval=0.2, chunks=20))
    out = call(rig.client, "solo/total-settles", stream=True)
    err = stream_error_end(out, out.content_frames)
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"total={TOTAL:g}s" in err["message"]
    view = wait_idle(rig.client, "total-settles", timeout=2)
    assert [t["in_flight"] for t in view["targets"]] == [0]
    assert view["backends"]["a"]["in_flight"] == 0


# --- the connection-closed-early recording, and leaks ----------------------------------------


def test_upstream_own_reset_is_not_closed_early(rig: Rig) -> None:
    rig.a.script(reset_mid_stream(2))
    index = len(rig.a.requests)
    call(rig.client, "solo/own-reset", stream=True)
    call(rig.client, "solo/own-reset-after")  # a later request: the recording is caught up
    assert index not in rig.a.closed_early


def test_no_leaks_after_failing_requests(rig: Rig) -> None:
    """A burst of failing requests leaves nothing in flight and no descriptors behind."""
    faults = [
        status(500), reset_mid_stream(1), stall_before_headers(2), reset_before_headers(),
        preamble_then_fail("reset"), garbage(), stall_mid_stream(1, 2), cut_before_done(1),
    ]  # fmt: skip

    def burst(tag: str) -> None:
        for i, fault in enumerate(faults):
            rig.a.script(fault)
            call(rig.client, f"solo/leak-{tag}-{i}", stream=i % 2 == 1)
        call(rig.client, "refused/leak-refused")
        wait_idle(rig.client, "leak-")

    burst("warm")
    baseline = group_sockets(rig.gw.proc.pid)
    burst("one")
    burst("two")
    view = wait_idle(rig.client, "leak-")
    assert len(view["targets"]) == 3 * len(faults) + 1
    assert all(b["in_flight"] == 0 for b in view["backends"].values()), view["backends"]
    assert all(t["in_flight"] == 0 for t in view["targets"]), [
        t for t in view["targets"] if t["in_flight"]
    ]
    # stalled upstream handlers were cut off by the gateway, not left hanging
    assert wait_until(lambda: group_sockets(rig.gw.proc.pid) <= baseline + 4, timeout=5), (
        baseline,
        group_sockets(rig.gw.proc.pid),
    )
