"""Failover: every fault before commit goes on to the next target and the client sees one
clean answer from it; client errors return at once; retries bound the attempts and tiers are
tried in order; after commit a failure ends the stream with an error, never a silent failover.

The rig (`fault_support.fault_rig`, its aliases in that module's docstring) is started once
for this module; tests use `pair/NAME`, `refused-pair/NAME`, `hole-pair/NAME` and
`many/NAME` with a model name of their own, so each starts on fresh circuits.
"""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.integration.fault_support import (
    IDLE,
    MALFORMED_JSON,
    Outcome,
    Rig,
    call,
    fault_rig,
    request_kind,
    reset_upstream,
    stream_error_end,
    target_view,
)
from tests.upstreams import (
    Behaviour,
    cut_before_done,
    garbage,
    never_answer,
    ok,
    preamble_then_fail,
    reset_before_headers,
    reset_mid_stream,
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


# --- failover before commit ------------------------------------------------------------------

B_TEXT = "beta answers cleanly"

_BEFORE_COMMIT: dict[str, tuple[str, Behaviour | None]] = {
    # id: (alias prefix, a's behaviour; None: the alias's first backend fails by itself)
    "refused": ("refused-pair", None),
    "blackhole": ("hole-pair", None),
    "never_answer": ("pair", never_answer()),
    "stall_before_headers": ("pair", stall_before_headers(5)),
    "reset_before_headers": ("pair", reset_before_headers()),
    **{str(c): ("pair", status(c)) for c in (401, 403, 404, 408, 429, 500, 502, 503, 504, 529)},
}
_JSON_ONLY = MALFORMED_JSON  # a non-streaming body that is not JSON fails over
_STREAM_ONLY: dict[str, Behaviour] = {
    "preamble_then_reset": preamble_then_fail("reset"),
    "preamble_then_stall": preamble_then_fail("stall", seconds=5),
    "garbage": garbage(),
    "truncated_json": truncated_json(),
    "wrong_content_type": wrong_content_type(),
    "cut_before_content": cut_before_done(0),
}


def _assert_clean_from_b(out: Outcome, stream: bool) -> None:
    assert out.status == 200, out.raw
    assert out.headers["x-proxy-backend"] == "b"
    assert out.attempts == 2
    assert out.text == B_TEXT
    if stream:
        assert out.done
        assert not any(f.startswith('{"error"') for f in out.frames)
        roles = [c for c in out.chunks for ch in c["choices"] if "role" in ch["delta"]]
        assert len(roles) == 1  # one preamble: a's never leaked
        assert len({c["id"] for c in out.chunks}) == 1
        assert out.comments == []  # failover was quicker than the 1 s keepalive


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", list(_BEFORE_COMMIT))
def test_failover_before_commit(rig: Rig, case: str, stream: bool) -> None:
    prefix, behaviour = _BEFORE_COMMIT[case]
    if behaviour is not None:
        rig.a.script(behaviour)
    rig.b.script(ok(text=B_TEXT))
    b_seen = len(rig.b.requests)
    out = call(rig.client, f"{prefix}/failover-{case}-{request_kind(stream)}", stream=stream)
    _assert_clean_from_b(out, stream)
    assert len(rig.b.requests) == b_seen + 1


@pytest.mark.parametrize("case", list(_JSON_ONLY))
def test_json_failover_before_commit(rig: Rig, case: str) -> None:
    rig.a.script(_JSON_ONLY[case])
    rig.b.script(ok(text=B_TEXT))
    b_seen = len(rig.b.requests)
    out = call(rig.client, f"pair/json-failover-{case}")
    _assert_clean_from_b(out, stream=False)
    assert len(rig.b.requests) == b_seen + 1


@pytest.mark.parametrize("case", list(_STREAM_ONLY))
def test_stream_failover_before_commit(rig: Rig, case: str) -> None:
    rig.a.script(_STREAM_ONLY[case])
    rig.b.script(ok(text=B_TEXT))
    b_seen = len(rig.b.requests)
    out = call(rig.client, f"pair/stream-failover-{case}", stream=True)
    _assert_clean_from_b(out, stream=True)
    assert len(rig.b.requests) == b_seen + 1


@pytest.mark.parametrize("code", [400, 413, 422])
def test_client_errors_return_at_once(rig: Rig, code: int) -> None:
    message = f"you sent a bad request ({code})"
    body = {"error": {"message": message, "type": "invalid_request_error", "param": "messages",
                      "code": None}}  # fmt: skip
    rig.a.script(status(code, body))
    b_seen = len(rig.b.requests)
    model = f"client-error-{code}"
    out = call(rig.client, f"pair/{model}")
    assert out.status == code
    assert out.json == body  # as the upstream sent it
    assert out.attempts == 1
    assert out.headers["x-proxy-backend"] == "a"
    assert len(rig.b.requests) == b_seen  # no failover
    target = target_view(rig.client, "a", model)
    assert target is not None and target["consecutive_failures"] == 0  # not the target's fault


def test_retries_bound_the_attempts(rig: Rig) -> None:
    """retries: 2 -> at most 3 attempts, even with four candidates."""
    rig.a.script(*[status(500)] * 4)
    seen = len(rig.a.requests)
    out = call(rig.client, "many/bounded")
    assert out.status == 500
    assert out.attempts == 3
    assert out.headers["x-should-retry"] == "false"
    assert len(rig.a.requests) == seen + 3
    assert rig.a.pending == 1


def test_tiers_are_tried_in_order(rig: Rig) -> None:
    rig.a.script(status(503), status(503))
    out = call(rig.client, "many/tiers")
    assert out.status == 200
    assert out.attempts == 3
    assert out.headers["x-proxy-backend"] == "a3"


# --- after commit: no silent failover --------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour",
    [reset_mid_stream(2), cut_before_done(2), stall_mid_stream(2, 5)],
    ids=["reset_mid_stream", "cut_before_done", "stall_mid_stream"],
)
def test_after_commit_failure_ends_stream_with_error(rig: Rig, behaviour: Behaviour) -> None:
    rig.a.script(replace(behaviour, text="alpha one two three four"))
    b_seen = len(rig.b.requests)
    out = call(rig.client, f"pair/after-commit-{behaviour.kind}", stream=True)
    err = stream_error_end(out, content_frames=2)
    assert out.text == "alpha one"  # a's content; nothing of b's
    if behaviour.kind == "stall_mid_stream":  # stalled past idle: a timeout, named
        assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
        assert f"idle={IDLE:g}s" in err["message"]
    else:
        assert (err["type"], err["code"]) == ("upstream_error", "upstream_failed")
    assert out.headers["x-proxy-backend"] == "a"
    assert out.attempts == 1
    assert len(rig.b.requests) == b_seen  # never a silent failover after commit
    target = target_view(rig.client, "a", f"after-commit-{behaviour.kind}")
    assert target is not None and target["consecutive_failures"] == 1  # counted as failed
