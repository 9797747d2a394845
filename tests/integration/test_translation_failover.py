"""Failover across protocols: a model whose first target is Anthropic and whose second is
OpenAI-compatible fails over transparently through both front doors, streamed and not.

The first target fails before anything could commit: a 529, a refused connection, or a
stream that sends only its preamble (`message_start`) and then resets, stalls past the idle
timeout, or sends `event: error` (non-stream: half the body, then the reset or the stall).
The client must see one clean answer from the second target, in its own protocol, with
`x-proxy-attempts: 2`, and nothing of the first attempt (no second `message_start` or role
chunk, no error frame).

    fo/claude -> claude (Anthropic fake), then backup (OpenAI fake, priority 1)
    fo/dead   -> dead (Anthropic, nothing listening), then backup
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import (
    Behaviour,
    FakeUpstream,
    ok,
    preamble_then_fail,
    rate_limited,
    refused_url,
    status,
)

pytestmark = pytest.mark.timeout(30)

ANSWER = "Backup says: all good — ünïcödé intact."
USAGE = (19, 7)
PROMPT = "is anyone there?"


@dataclass
class Rig:
    gw: Gateway
    client: httpx.Client
    claude: FakeUpstream
    backup: FakeUpstream


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("xfailover")
    claude = FakeUpstream(wire="anthropic")
    backup = FakeUpstream(wire="openai")
    with claude, backup:
        config = RoutesFile(tmp)(
            f"""
            version: 1
            settings:
              failure_threshold: 1000   # every test finds the first target usable
              cooldown: 1s
              retries: 1
              timeouts: {{connect: 1s, first_byte: 3s, idle: 1s, total: 15s}}
            backends:
              claude: {{type: anthropic, base_url: "{claude.url}", api_key: sk-ant-upstream}}
              dead: {{type: anthropic, base_url: "{refused_url("anthropic")}", api_key: sk-x}}
              backup: {{type: openai, base_url: "{backup.url}", api_key: sk-backup}}
            models:
              fo/claude:
                targets:
                  - {{backend: claude, model: claude-first}}
                  - {{backend: backup, model: gpt-second, priority: 1}}
              fo/dead:
                targets:
                  - {{backend: dead, model: claude-dead}}
                  - {{backend: backup, model: gpt-second, priority: 1}}
            """
        )
        with (
            serve(config, tmp) as gw,
            httpx.Client(base_url=gw.url, trust_env=False, timeout=10) as client,
        ):
            yield Rig(gw, client, claude, backup)


@pytest.fixture(autouse=True)
def _fresh_scripts(rig: Rig) -> Iterator[None]:
    for up in (rig.claude, rig.backup):
        with up._cond:  # the harness has no public way to drop a script
            up._script.clear()
    yield


def _overloaded_after_preamble() -> Behaviour:
    """`message_start`, a ping, then `event: error` (overloaded), as Anthropic sends it when it
    gives up before the first token."""
    message = {
        "id": "msg_x", "type": "message", "role": "assistant", "content": [],
        "model": "claude-first", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }  # fmt: skip
    events = [
        {"type": "message_start", "message": message},
        {"type": "ping"},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return status(200, text, {"content-type": "text/event-stream"})


FAULTS: dict[str, Behaviour | None] = {
    # no retry-after: that would cool the target for its length (DESIGN), and skip it next time
    "529": rate_limited(None, code=529),
    "refused": None,  # the `dead` backend: nothing listens
    "preamble-reset": preamble_then_fail("reset"),
    "preamble-stall": preamble_then_fail("stall", seconds=10),  # idle timeout is 1 s
    "preamble-error-event": _overloaded_after_preamble(),
}
STREAM_ONLY = {"preamble-error-event"}  # non-stream: the others stall or break the JSON body


def _cases() -> list[Any]:
    out = []
    for front in ("openai", "anthropic"):
        for fault in FAULTS:
            for stream in (False, True):
                if fault in STREAM_ONLY and not stream:
                    continue
                kind = "stream" if stream else "plain"
                out.append(pytest.param(front, fault, stream, id=f"{front}-{fault}-{kind}"))
    return out


def _request(front: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": PROMPT}]
    if front == "openai":
        return "/v1/chat/completions", {"model": model, "messages": messages, "stream": stream}
    body = {"model": model, "max_tokens": 64, "messages": messages, "stream": stream}
    return "/v1/messages", body


@dataclass
class Frame:
    event: str
    data: str


def _frames(raw: bytes) -> tuple[list[Frame], list[str]]:
    """SSE frames (event name, data) and comment lines, in order."""
    frames: list[Frame] = []
    comments: list[str] = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        event, data = "", []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            frames.append(Frame(event, "\n".join(data)))
    return frames, comments


def _openai_stream_text(frames: list[Frame]) -> str:
    assert frames[-1].data == "[DONE]"
    chunks = [json.loads(f.data) for f in frames[:-1]]
    assert all("error" not in c for c in chunks), chunks
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert [d["delta"]["role"] for d in deltas if d["delta"].get("role")] == ["assistant"]
    assert [d["finish_reason"] for d in deltas if d.get("finish_reason")] == ["stop"]
    assert all(f.event == "" for f in frames)
    return "".join(d["delta"].get("content") or "" for d in deltas)


def _anthropic_stream(frames: list[Frame]) -> tuple[str, dict[str, Any]]:
    events = [json.loads(f.data) for f in frames]
    assert [f.event for f in frames] == [e["type"] for e in events]
    kinds = [e["type"] for e in events]
    assert "error" not in kinds, events
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    assert kinds[-2:] == ["message_delta", "message_stop"]
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "end_turn"
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    return text, delta["usage"]


@pytest.mark.parametrize(("front", "fault", "stream"), _cases())
def test_anthropic_first_target_fails_over_to_openai(
    rig: Rig, front: str, fault: str, stream: bool
) -> None:
    model = "fo/dead" if fault == "refused" else "fo/claude"
    behaviour = FAULTS[fault]
    if behaviour is not None:
        rig.claude.script(behaviour)
    rig.backup.script(ok(text=ANSWER, usage=USAGE))
    claude_before, backup_before = len(rig.claude.requests), len(rig.backup.requests)
    path, body = _request(front, model, stream)

    resp = rig.client.post(path, json=body)

    assert resp.status_code == 200, resp.text
    assert resp.headers["x-proxy-attempts"] == "2"
    assert resp.headers["x-proxy-backend"] == "backup"
    assert resp.headers["x-proxy-model"] == "gpt-second"
    # the first target was really tried (as Anthropic), the second answered (as OpenAI)
    tried = rig.claude.requests[claude_before:]
    assert len(tried) == (0 if fault == "refused" else 1)
    if tried:
        assert tried[0].path == "/v1/messages"
        assert tried[0].json["model"] == "claude-first"
        assert tried[0].json["stream"] is stream
    (answered,) = rig.backup.requests[backup_before:]
    assert answered.path == "/v1/chat/completions"
    assert answered.json["model"] == "gpt-second"
    assert answered.json["messages"][-1]["content"] == PROMPT
    assert answered.json.get("stream", False) is stream

    if not stream:
        assert resp.headers["content-type"].startswith("application/json")
        doc = resp.json()
        if front == "openai":
            assert doc["choices"][0]["message"]["content"] == ANSWER
            assert doc["choices"][0]["finish_reason"] == "stop"
            assert (doc["usage"]["prompt_tokens"], doc["usage"]["completion_tokens"]) == USAGE
        else:
            assert doc["type"] == "message"
            assert doc["content"] == [{"type": "text", "text": ANSWER}]
            assert doc["stop_reason"] == "end_turn"
            assert (doc["usage"]["input_tokens"], doc["usage"]["output_tokens"]) == USAGE
        return
    assert resp.headers["content-type"].startswith("text/event-stream")
    frames, _ = _frames(resp.content)
    if front == "openai":
        assert _openai_stream_text(frames) == ANSWER
    else:
        text, usage = _anthropic_stream(frames)
        assert text == ANSWER
        assert (usage["input_tokens"], usage["output_tokens"]) == USAGE


@pytest.mark.parametrize("front", ["openai", "anthropic"])
def test_first_target_healthy_answers_alone(rig: Rig, front: str) -> None:
    """The control: with no fault the Anthropic target answers and the backup is untouched."""
    rig.claude.script(ok(text=ANSWER, usage=USAGE))
    backup_before = len(rig.backup.requests)
    path, body = _request(front, "fo/claude", True)
    resp = rig.client.post(path, json=body)
    assert resp.status_code == 200
    assert resp.headers["x-proxy-attempts"] == "1"
    assert resp.headers["x-proxy-backend"] == "claude"
    assert len(rig.backup.requests) == backup_before
    frames, _ = _frames(resp.content)
    if front == "openai":
        assert _openai_stream_text(frames) == ANSWER
    else:
        assert _anthropic_stream(frames)[0] == ANSWER
