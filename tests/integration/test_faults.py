"""The fault table: every upstream failure, and exactly what the client sees.

One gateway serves the whole module. Tests route through glob aliases with a model name of
their own, and circuits are per (backend, model), so every test starts on fresh circuits:

    solo/NAME          -> a                        one target: the outcome is the fault's own
    pair/NAME          -> a, then b (priority 1)   a fault before commit fails over to b
    many/NAME          -> a1, a2, a3, a4 (tiers)    all on upstream a: counts attempts
    refused/NAME       -> a port nothing listens on (refused-pair/NAME: then b)
    hole/NAME          -> a Blackhole: accepts, never answers (hole-pair/NAME: then b)
    choked/NAME        -> a listener whose accept queue is full: SYNs are dropped

Settings are small: connect/first_byte 0.3 s, idle 0.5 s, total 2 s, keepalive 1 s (longer
than any failover here, so the head a client sees names the target that answered), cooldown
1 s.

The helpers at the top are shared by the other fault modules (test_circuit, test_disconnect,
test_strategies, client/test_sdk_faults).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, Gateway, free_port
from tests.upstreams import (
    Behaviour,
    Blackhole,
    FakeUpstream,
    cut_before_done,
    garbage,
    never_answer,
    ok,
    preamble_then_fail,
    rate_limited,
    refused_url,
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

# --- shared helpers --------------------------------------------------------------------------

TIMEOUT = 0.3  # connect and first_byte in this module
IDLE = 0.5  # above slow_stream's 0.2 s gaps with room to spare
TOTAL = 2.0
MARGIN = 2.0  # deadline checks, not benchmarks: generous


def spawn_gateway(config_path: Path, log_dir: Path) -> Gateway:
    """`python -m proxy serve` on a free port, as conftest's `gateway` does, for any scope."""
    port = free_port()
    log_path = log_dir / f"gateway-{port}.log"
    command = [
        sys.executable, "-m", "proxy", "serve", "--config", str(config_path),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
            start_new_session=True,
        )
    gw = Gateway(proc, port, log_path, config_path)
    try:
        gw.wait_healthy()
    except BaseException:
        gw.stop()
        raise
    return gw


def write_config(path: Path, text: str) -> Path:
    """Write a routes.yaml atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(textwrap.dedent(text))
    os.replace(tmp, path)
    return path


def http_client(gw: Gateway, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=gw.url, trust_env=False, timeout=timeout)


def chat_body(model: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
        **extra,
    }


@dataclass
class Outcome:
    """What the client got: status, headers, and for SSE the frames in order."""

    status: int
    headers: httpx.Headers
    raw: bytes
    elapsed: float
    frames: list[str]  # `data:` payloads, in order (SSE only)
    comments: list[str]  # `:` comment lines (SSE only)

    @property
    def sse(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    @property
    def attempts(self) -> int:
        return int(self.headers["x-proxy-attempts"])

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        """The error object: the JSON body's, or the stream's error event's."""
        if not self.sse:
            return dict(self.json["error"])
        errs = [json.loads(f)["error"] for f in self.frames if f.startswith('{"error"')]
        assert len(errs) == 1, f"expected one error event: {self.frames}"
        return dict(errs[0])

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames if f != "[DONE]" and '"choices"' in f]

    @property
    def content_frames(self) -> int:
        return sum(1 for c in self.chunks for ch in c["choices"] if ch["delta"].get("content"))

    @property
    def text(self) -> str:
        if not self.sse:
            return str(self.json["choices"][0]["message"]["content"])
        return "".join(ch["delta"].get("content") or "" for c in self.chunks for ch in c["choices"])

    @property
    def done(self) -> bool:
        return bool(self.frames) and self.frames[-1] == "[DONE]"


def parse_sse(raw: bytes) -> tuple[list[str], list[str]]:
    """Frames' data and comment lines; independent of the gateway's own decoder."""
    frames: list[str] = []
    comments: list[str] = []
    for block in raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        comments += [line for line in block.split("\n") if line.startswith(":")]
        if data:
            frames.append("\n".join(data))
    return frames, comments


def call(
    client: httpx.Client, model: str, stream: bool = False, path: str = "/v1/chat/completions",
    **extra: Any,
) -> Outcome:  # fmt: skip
    """POST a chat request and read the whole answer."""
    t0 = time.monotonic()
    with client.stream("POST", path, json=chat_body(model, stream, **extra)) as resp:
        raw = resp.read()
    elapsed = time.monotonic() - t0
    frames, comments = ([], [])
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        frames, comments = parse_sse(raw)
    return Outcome(resp.status_code, resp.headers, raw, elapsed, frames, comments)


def backends_view(client: httpx.Client) -> dict[str, Any]:
    resp = client.get("/admin/backends")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def target_view(client: httpx.Client, backend: str, model: str) -> dict[str, Any] | None:
    for t in backends_view(client)["targets"]:
        if t["backend"] == backend and t["model"] == model:
            return dict(t)
    return None


def wait_until(check: Callable[[], bool], timeout: float = 5.0, every: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(every)
    return check()


def wait_idle(client: httpx.Client, models: str = "", timeout: float = 5.0) -> dict[str, Any]:
    """Poll /admin/backends until no backend, and no target whose model starts with `models`,
    has anything in flight; returns the last view (targets filtered)."""
    view: dict[str, Any] = {}

    def idle() -> bool:
        nonlocal view
        view = backends_view(client)
        view["targets"] = [t for t in view["targets"] if t["model"].startswith(models)]
        return all(b["in_flight"] == 0 for b in view["backends"].values()) and all(
            t["in_flight"] == 0 for t in view["targets"]
        )

    wait_until(idle, timeout, 0.05)
    return view


def reset_upstream(*upstreams: FakeUpstream) -> None:
    """Forget leftover script entries and restore the default answer (between tests)."""
    for up in upstreams:
        with up._cond:  # the harness has no public clear()
            up._script.clear()
        up.default = ok()


def group_sockets(pgid: int) -> int:
    """Open socket descriptors across every process of the gateway's process group."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 (pgrp), counted after "pid (comm)"
                continue
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}").startswith("socket:"):
                        count += 1
        except (OSError, IndexError, ValueError):
            continue  # the process went away meanwhile
    return count


class ChokedListener:
    """A loopback listener with a full accept queue: the kernel drops further SYNs, so a
    connect to it neither succeeds nor is refused; it times out (connect timeout on 127.0.0.1)."""

    def __init__(self) -> None:
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(0)
        self.port = self._srv.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._fillers: list[socket.socket] = []
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)

    def choked(self) -> bool:
        """Does a fresh connect really hang here? (The trick depends on the kernel.)"""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.3).close()
        except TimeoutError:
            return True
        except OSError:
            return False
        return False

    def stop(self) -> None:
        for s in self._fillers:
            s.close()
        self._srv.close()


# --- the module's gateway --------------------------------------------------------------------


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    a: FakeUpstream
    b: FakeUpstream
    hole: Blackhole
    choked: ChokedListener


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("faults")
    a, b = FakeUpstream().start(), FakeUpstream().start()
    hole, choked = Blackhole(), ChokedListener()
    gw: Gateway | None = None
    try:
        config = write_config(
            tmp / "routes.yaml",
            f"""\
            version: 1
            settings:
              failure_threshold: 3
              cooldown: 1s
              retries: 2
              timeouts: {{connect: {TIMEOUT}s, first_byte: {TIMEOUT}s, idle: {IDLE}s,
                          total: {TOTAL}s}}
              keepalive: 1s
            backends:
              a: {{type: openai, base_url: "{a.url}"}}
              b: {{type: openai, base_url: "{b.url}"}}
              a1: {{type: openai, base_url: "{a.url}"}}
              a2: {{type: openai, base_url: "{a.url}"}}
              a3: {{type: openai, base_url: "{a.url}"}}
              a4: {{type: openai, base_url: "{a.url}"}}
              refused: {{type: openai, base_url: "{refused_url()}"}}
              hole: {{type: openai, base_url: "{hole.url}"}}
              choked: {{type: openai, base_url: "{choked.url}"}}
            models:
              "solo/*": {{targets: [{{backend: a, model: "*"}}]}}
              "pair/*":
                targets: [{{backend: a, model: "*"}}, {{backend: b, model: "*", priority: 1}}]
              "many/*":
                targets:
                  - {{backend: a1, model: "*"}}
                  - {{backend: a2, model: "*", priority: 1}}
                  - {{backend: a3, model: "*", priority: 2}}
                  - {{backend: a4, model: "*", priority: 3}}
              "refused/*": {{targets: [{{backend: refused, model: "*"}}]}}
              "refused-pair/*":
                targets: [{{backend: refused, model: "*"}}, {{backend: b, model: "*", priority: 1}}]
              "hole/*": {{targets: [{{backend: hole, model: "*"}}]}}
              "hole-pair/*":
                targets: [{{backend: hole, model: "*"}}, {{backend: b, model: "*", priority: 1}}]
              "choked/*": {{targets: [{{backend: choked, model: "*"}}]}}
            """,
        )
        gw = spawn_gateway(config, tmp)
        with http_client(gw) as client:
            yield Rig(gw, client, a, b, hole, choked)
    finally:
        if gw is not None:
            gw.stop()
        for stop in (a.stop, b.stop, hole.stop, choked.stop):
            stop()


@pytest.fixture(autouse=True)
def _clean(rig: Rig) -> Iterator[None]:
    reset_upstream(rig.a, rig.b)
    yield
    reset_upstream(rig.a, rig.b)


def _gateway_error(out: Outcome, status_code: int, type_: str, code: str) -> dict[str, Any]:
    """A gateway-made error: the status, the OpenAI envelope with all four keys, no retry."""
    assert out.status == status_code, out.raw
    assert not out.sse
    err = out.error
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["type"], err["code"]) == (type_, code)
    assert out.headers["x-should-retry"] == "false"
    assert out.headers.get("x-request-id")
    return err


def _stream_error_end(out: Outcome, content_frames: int) -> dict[str, Any]:
    """A committed stream that broke: 200 SSE, the content sent so far, then one error event
    and no [DONE]."""
    assert out.status == 200
    assert out.sse
    assert out.content_frames == content_frames, out.frames
    assert not out.done and "[DONE]" not in out.frames
    assert out.frames[-1].startswith('{"error"'), out.frames[-1]
    err = out.error
    assert set(err) == {"message", "type", "param", "code"}
    return err


def _kind(stream: bool) -> str:
    """A model-name part: each request kind gets circuits of its own."""
    return "stream" if stream else "json"


# --- the fault table: one target, the fault's own outcome ------------------------------------


def test_refused_connection(rig: Rig) -> None:
    out = call(rig.client, "refused/table")
    err = _gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert "cannot connect" in err["message"]
    assert out.attempts == 1


def test_accepts_never_answers_blackhole(rig: Rig) -> None:
    before = rig.hole.accepted
    out = call(rig.client, "hole/table")
    err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < TIMEOUT + MARGIN
    assert rig.hole.accepted > before  # it did connect: this is not a connect failure


def test_never_answer(rig: Rig) -> None:
    rig.a.script(never_answer())
    index = len(rig.a.requests)
    out = call(rig.client, "solo/never-answer")
    err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < TIMEOUT + MARGIN
    # the gateway hung up on the held request: recorded as closed early
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


def test_stall_before_headers(rig: Rig) -> None:
    rig.a.script(stall_before_headers(5))
    out = call(rig.client, "solo/stall-before-headers", stream=True)
    err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < TIMEOUT + MARGIN


def test_reset_before_headers(rig: Rig) -> None:
    rig.a.script(reset_before_headers())
    out = call(rig.client, "solo/reset-before-headers")
    _gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert out.attempts == 1


def test_stall_mid_stream(rig: Rig) -> None:
    rig.a.script(stall_mid_stream(2, 5))
    index = len(rig.a.requests)
    out = call(rig.client, "solo/stall-mid-stream", stream=True)
    err = _stream_error_end(out, content_frames=2)
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"idle={IDLE:g}s" in err["message"]
    assert out.attempts == 1
    assert out.elapsed < IDLE + MARGIN
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_reset_mid_stream(rig: Rig, rst: bool) -> None:
    rig.a.script(reset_mid_stream(2, rst=rst))
    out = call(rig.client, f"solo/reset-mid-stream-{rst}", stream=True)
    err = _stream_error_end(out, content_frames=out.content_frames)
    assert out.content_frames <= 2  # an RST may discard bytes in flight, never invent any
    if not rst:
        assert out.content_frames == 2
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_failed")
    assert out.attempts == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_429_with_retry_after(rig: Rig, stream: bool) -> None:
    rig.a.script(rate_limited("2"))
    out = call(rig.client, f"solo/429-retry-after-{_kind(stream)}", stream=stream)
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
    err = _gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert "malformed" in err["message"]
    assert out.attempts == 1


def test_wrong_content_type_on_stream(rig: Rig) -> None:
    rig.a.script(wrong_content_type())
    out = call(rig.client, "solo/wrong-content-type", stream=True)
    err = _gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert "text/html" in err["message"]
    assert out.attempts == 1


@pytest.mark.parametrize("after", [None, 2], ids=["before-done", "after-2"])
def test_cut_before_done(rig: Rig, after: int | None) -> None:
    rig.a.script(cut_before_done(after))
    out = call(rig.client, f"solo/cut-{after}", stream=True)
    if after is None:  # every content frame and the finish arrived; only [DONE] was missing
        err = _stream_error_end(out, content_frames=6)
        assert out.text == "Hello from cut-None. You said: hi"
        assert out.chunks[-1]["choices"][0]["finish_reason"] == "stop"
    else:
        err = _stream_error_end(out, content_frames=after)
    assert (err["type"], err["code"]) == ("upstream_error", "upstream_failed")
    assert "ended before it was complete" in err["message"]
    assert out.attempts == 1


_MALFORMED_JSON: dict[str, Behaviour] = {
    "garbage": garbage(),
    "truncated_json": truncated_json(),
    "wrong_content_type": wrong_content_type(),
    "cut_short": cut_before_done(),
}


@pytest.mark.parametrize("case", list(_MALFORMED_JSON))
def test_malformed_json_body(rig: Rig, case: str) -> None:
    """A 200 whose body is not a complete JSON object is an upstream failure, not an answer."""
    rig.a.script(_MALFORMED_JSON[case])
    out = call(rig.client, f"solo/malformed-json-{case}")
    _gateway_error(out, 502, "upstream_error", "upstream_failed")
    assert out.attempts == 1


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
_JSON_ONLY = _MALFORMED_JSON  # a non-streaming body that is not JSON fails over
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
    out = call(rig.client, f"{prefix}/failover-{case}-{_kind(stream)}", stream=stream)
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
    err = _stream_error_end(out, content_frames=2)
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


# --- timeouts: enforced, and named -----------------------------------------------------------


def test_connect_timeout(rig: Rig) -> None:
    if not rig.choked.choked():
        pytest.skip("this kernel does not drop SYNs to a full accept queue on loopback")
    out = call(rig.client, "choked/connect")
    err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"connect={TIMEOUT:g}s" in err["message"]
    assert out.elapsed < TIMEOUT + MARGIN


def test_first_byte_timeout_json(rig: Rig) -> None:
    rig.a.script(stall_before_headers(5))
    out = call(rig.client, "solo/first-byte-json")
    err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert f"first_byte={TIMEOUT:g}s" in err["message"]
    assert out.elapsed < TIMEOUT + MARGIN


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_idle_timeout_named(rig: Rig, stream: bool) -> None:
    """The idle timeout names its setting, as connect, first_byte and total do."""
    rig.a.script(stall_mid_stream(2, 5))
    out = call(rig.client, f"solo/idle-named-{_kind(stream)}", stream=stream)
    if stream:  # committed before the stall: the error arrives as the stream's last event
        err = _stream_error_end(out, content_frames=2)
    else:  # no head was sent yet: a plain 504
        err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"idle={IDLE:g}s" in err["message"]
    assert out.elapsed < IDLE + MARGIN


def test_idle_timeout_json_body(rig: Rig) -> None:
    """A non-streaming body that stalls halfway: idle applies to it too."""
    rig.a.script(stall_mid_stream(2, 5))
    index = len(rig.a.requests)
    out = call(rig.client, "solo/idle-json")
    err = _gateway_error(out, 504, "timeout_error", "upstream_timeout")
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
    err = _stream_error_end(out, out.content_frames)
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert f"total={TOTAL:g}s" in err["message"]
    assert out.elapsed < TOTAL + MARGIN
    assert rig.a.wait_closed_early(index, timeout=2) < 1.0


def test_total_timeout_settles_the_target(rig: Rig) -> None:
    """The attempt cancelled by timeouts.total frees its slots: target and backend."""
    rig.a.script(slow_stream(interval=0.2, chunks=20))
    out = call(rig.client, "solo/total-settles", stream=True)
    err = _stream_error_end(out, out.content_frames)
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
