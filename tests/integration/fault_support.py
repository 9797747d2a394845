"""Helpers for the fault modules (test_faults, test_failover, test_circuit, test_disconnect,
test_strategies, client/test_sdk_faults): a gateway subprocess for any scope, atomic config
writes, one call read whole into an `Outcome`, the admin views, polling with a deadline.

Below them, the fault rig that test_faults and test_failover each start once: one gateway
routing glob aliases, a model name per test, and circuits per (backend, model), so every test
starts on fresh circuits:

    solo/NAME          -> a                        one target: the outcome is the fault's own
    pair/NAME          -> a, then b (priority 1)   a fault before commit fails over to b
    many/NAME          -> a1, a2, a3, a4 (tiers)    all on upstream a: counts attempts
    refused/NAME       -> a port nothing listens on (refused-pair/NAME: then b)
    hole/NAME          -> a Blackhole: accepts, never answers (hole-pair/NAME: then b)
    choked/NAME        -> a listener whose accept queue is full: SYNs are dropped

Settings are small: connect/first_byte 0.3 s, idle 0.5 s, total 2 s, keepalive 1 s (longer
than any failover here, so the head a client sees names the target that answered), cooldown
1 s.
"""

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Gateway, RoutesFile, launch
from tests.upstreams import (
    Behaviour,
    Blackhole,
    FakeUpstream,
    cut_before_done,
    garbage,
    ok,
    refused_url,
    truncated_json,
    wrong_content_type,
)

# --- helpers for every fault module ----------------------------------------------------------

TIMEOUT = 0.3  # connect and first_byte in the fault rig
IDLE = 0.5  # above slow_stream's 0.2 s gaps with room to spare
TOTAL = 2.0
MARGIN = 2.0  # deadline checks, not benchmarks: generous


def spawn_gateway(config_path: Path, log_dir: Path) -> Gateway:
    """`python -m proxy serve` on a free port, for any fixture scope (the caller stops it)."""
    return launch(config_path, log_dir)


def write_config(path: Path, text: str) -> Path:
    """Write a routes.yaml atomically, dedented (conftest's RoutesFile)."""
    return RoutesFile(path.parent, path.name)(text)


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


# --- the fault rig ---------------------------------------------------------------------------


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    a: FakeUpstream
    b: FakeUpstream
    hole: Blackhole
    choked: ChokedListener


@contextlib.contextmanager
def fault_rig(tmp: Path) -> Iterator[Rig]:
    """The gateway and upstreams in the module docstring, stopped on exit."""
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


def gateway_error(out: Outcome, status_code: int, type_: str, code: str) -> dict[str, Any]:
    """A gateway-made error: the status, the OpenAI envelope with all four keys, no retry."""
    assert out.status == status_code, out.raw
    assert not out.sse
    err = out.error
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["type"], err["code"]) == (type_, code)
    assert out.headers["x-should-retry"] == "false"
    assert out.headers.get("x-request-id")
    return err


def stream_error_end(out: Outcome, content_frames: int) -> dict[str, Any]:
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


def request_kind(stream: bool) -> str:
    """A model-name part: each request kind gets circuits of its own."""
    return "stream" if stream else "json"


MALFORMED_JSON: dict[str, Behaviour] = {
    "garbage": garbage(),
    "truncated_json": truncated_json(),
    "wrong_content_type": wrong_content_type(),
    "cut_short": cut_before_done(),
}
