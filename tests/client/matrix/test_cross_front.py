"""Checks that span both front doors of the translation matrix (issue #5): the raw wire
under the SDKs (what they tolerate but WIRE.md section 8 requires), a 429 either SDK sees,
and the history of a tool call as each backend receives it.

The rig is `support`'s: one fake upstream per wire behind this module's own gateway.
"""

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.client.matrix.support import (
    AN_MESSAGES,
    AN_TOOLS,
    ANSWER,
    BACKENDS,
    CALLS,
    CLOCK,
    FAKES,
    OA_MESSAGES,
    OA_TOOLS,
    PROMPT,
    USAGE,
    WEATHER,
    Rig,
    alias,
    error_stream,
    received,
    script,
)
from tests.upstreams import ok, rate_limited

pytestmark = pytest.mark.timeout(30)


# --- the wire under the SDKs: what they tolerate but WIRE.md section 8 requires --------------


def _raw_stream(rig: Rig, path: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(event name, data) of every SSE frame, in order; comment lines must be keepalives."""
    with httpx.Client(base_url=rig.gw.url, trust_env=False, timeout=10) as client:
        resp = client.post(path, json={**body, "stream": True})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    frames = []
    for block in resp.text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln]
        assert all(ln == ": keepalive" for ln in lines if ln.startswith(":"))
        event = [ln[6:].strip() for ln in lines if ln.startswith("event:")]
        data = [ln[5:].strip() for ln in lines if ln.startswith("data:")]
        if data:
            frames.append((event[0] if event else "", "\n".join(data)))
    return frames


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            b,
        )
        for b in BACKENDS
    ],
)
def test_openai_stream_wire_invariants(rig: Rig, backend: str) -> None:
    """data-only frames, `[DONE]` last, `usage: null` on every chunk before the one usage
    chunk, tool-call entries as §8.8 has them."""
    script(rig, backend, ok(text="Checking.", tool_calls=CALLS["two"], usage=USAGE))
    body = {
        "model": alias(backend), "messages": OA_MESSAGES, "tools": OA_TOOLS,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    frames = _raw_stream(rig, "/v1/chat/completions", body)
    assert all(event == "" for event, _ in frames)
    assert frames[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in frames[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    *content, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert all(c["choices"] for c in content)
    assert all("usage" in c and c["usage"] is None for c in content), "usage: null missing"


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_stream_wire_invariants(rig: Rig, backend: str, tools: bool) -> None:
    """Every frame has `event:` equal to its data's type; canonical order; block indices 0, 1,
    2... each started, deltas, stopped; `stop_reason` null at the start; one message_delta."""
    calls = CALLS["two"] if tools else ()
    script(rig, backend, ok(text="Checking.", tool_calls=calls, usage=USAGE))
    body: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    if tools:
        body["tools"] = AN_TOOLS
    frames = _raw_stream(rig, "/v1/messages", body)
    events = [json.loads(data) for _, data in frames]
    assert [name for name, _ in frames] == [e["type"] for e in events]
    kinds = [e["type"] for e in events if e["type"] != "ping"]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("message_start") == kinds.count("message_delta") == 1
    assert events[0]["message"]["stop_reason"] is None
    assert events[0]["message"]["content"] == []
    open_block: int | None = None
    started: list[int] = []
    for e in events[1:-2]:
        if e["type"] == "content_block_start":
            assert open_block is None, "a block started before the previous one stopped"
            open_block = e["index"]
            started.append(e["index"])
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_block
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_block
            open_block = None
    assert open_block is None
    assert started == list(range(len(started)))
    blocks = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    if backend != "mock":
        assert blocks == ["text"] + ["tool_use"] * len(calls)
    stop = events[-2]["delta"]["stop_reason"]
    assert stop == ("tool_use" if tools and backend != "mock" else "end_turn")


@pytest.mark.parametrize("front", ["openai", "anthropic"], ids=["openai-front", "anthropic-front"])
@pytest.mark.parametrize("backend", FAKES)
def test_mid_stream_error_is_one_frame_and_the_last(rig: Rig, backend: str, front: str) -> None:
    """WIRE.md §8.5/§8.9: on failure one error frame, then the stream closes."""
    rig.ups[backend].script(error_stream(backend))
    if front == "openai":
        body: Any = {"model": alias(backend), "messages": OA_MESSAGES}
        frames = _raw_stream(rig, "/v1/chat/completions", body)
    else:
        body = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
        frames = _raw_stream(rig, "/v1/messages", body)
    errors = [(event, data) for event, data in frames if '"error"' in data]
    assert len(errors) == 1, errors
    assert frames[-1] == errors[0]
    event, data = errors[0]
    assert "Overloaded mid-stream" in data
    assert event == ("error" if front == "anthropic" else "")


# --- errors either SDK sees ------------------------------------------------------------------


@pytest.mark.parametrize("front", ["openai", "anthropic"], ids=["openai-front", "anthropic-front"])
@pytest.mark.parametrize("backend", FAKES)
def test_rate_limit_exhausted_reaches_either_sdk_as_429(
    rig: Rig, oa: openai.OpenAI, an: anthropic.Anthropic, backend: str, front: str
) -> None:
    """A 429 from the only target: the SDK's RateLimitError, with the upstream's retry-after
    and `x-should-retry: false` (the gateway already failed over as far as it could)."""
    script(rig, backend, rate_limited("7"))  # cools this target for 7 s: a model of its own
    model = f"solo-{backend}/rl-{front}"
    err: Any
    if front == "openai":
        with pytest.raises(openai.RateLimitError) as oa_info:
            oa.chat.completions.create(model=model, messages=OA_MESSAGES)
        err = oa_info.value
        assert isinstance(err.body, dict) and err.body["message"] == f"fake {backend} upstream: 429"
    else:
        with pytest.raises(anthropic.RateLimitError) as an_info:
            an.messages.create(model=model, max_tokens=64, messages=AN_MESSAGES)
        err = an_info.value
        body: Any = err.body
        assert body["type"] == "error"
        assert body["error"] == {
            "type": "rate_limit_error",
            "message": f"fake {backend} upstream: 429",
        }
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "7"
    assert err.response.headers["x-should-retry"] == "false"


# --- tool round trips: the history of a tool call, in every backend's shape ------------------

# "." is not allowed in an Anthropic tool_use id: it must be mapped the same both times
OA_CALLS: Any = [
    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
    for i, (n, a) in zip(("call_a.1", "call_b"), (WEATHER, CLOCK), strict=True)
]
OA_HISTORY: Any = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": PROMPT},
    {"role": "assistant", "content": None, "tool_calls": OA_CALLS},
    {"role": "tool", "tool_call_id": "call_a.1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
]  # fmt: skip
AN_HISTORY: Any = [
    {"role": "user", "content": PROMPT},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": WEATHER[0], "input": json.loads(WEATHER[1])},
        {"type": "tool_use", "id": "toolu_2", "name": CLOCK[0], "input": json.loads(CLOCK[1])},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2",
         "content": [{"type": "text", "text": "noon"}]},
    ]},
]  # fmt: skip


def _history_in(body: Any, backend: str) -> list[tuple[str, str, Any]]:
    """(call id or "", function name, arguments or result) for each call and result upstream."""
    out: list[tuple[str, str, Any]] = []
    if backend == "openai":
        for m in body["messages"]:
            for tc in m.get("tool_calls") or ():
                out.append(
                    (tc["id"], tc["function"]["name"], json.loads(tc["function"]["arguments"]))
                )
            if m["role"] == "tool":
                out.append((m["tool_call_id"], "", m["content"]))
    elif backend == "anthropic":
        for m in body["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else ():
                if b["type"] == "tool_use":
                    out.append((b["id"], b["name"], b["input"]))
                elif b["type"] == "tool_result":
                    content = b["content"]
                    text = content if isinstance(content, str) else content[0]["text"]
                    out.append((b["tool_use_id"], "", text))
    else:
        for c in body["contents"]:
            for p in c["parts"]:
                if "functionCall" in p:
                    out.append(("", p["functionCall"]["name"], p["functionCall"]["args"]))
                elif "functionResponse" in p:
                    r = p["functionResponse"]
                    out.append(("", r["name"], r["response"]["output"]))
    return out


@pytest.mark.parametrize("front", ["openai", "anthropic"], ids=["openai-front", "anthropic-front"])
@pytest.mark.parametrize("backend", FAKES)
def test_tool_round_trip_history_arrives_in_backend_shape(
    rig: Rig, oa: openai.OpenAI, an: anthropic.Anthropic, backend: str, front: str
) -> None:
    """The turn after a tool call: calls and results keep their pairing, arguments and order;
    the forced tool choice and the no-parallel flag are carried where the backend has them."""
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    if front == "openai":
        completion = oa.chat.completions.create(
            model=alias(backend), messages=OA_HISTORY, tools=OA_TOOLS,
            tool_choice="required", parallel_tool_calls=False,
        )  # fmt: skip
        assert completion.choices[0].message.content == ANSWER
    else:
        message = an.messages.create(
            model=alias(backend), max_tokens=64, system="Be brief.", messages=AN_HISTORY,
            tools=AN_TOOLS,
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        )  # fmt: skip
        assert message.content[0].text == ANSWER  # type: ignore[union-attr]
    (req,) = received(rig, backend, before)
    body = req.json
    ids = ("call_a.1", "call_b") if front == "openai" else ("toolu_1", "toolu_2")
    weather, clock = json.loads(WEATHER[1]), json.loads(CLOCK[1])
    history = _history_in(body, backend)
    if backend == "gemini":  # no ids on the wire: results name the function they answer
        assert history == [
            ("", "get_weather", weather), ("", "get_time", clock),
            ("", "get_weather", "sunny"), ("", "get_time", "noon"),
        ]  # fmt: skip
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        config = body["toolConfig"]["functionCallingConfig"]
        assert config["mode"] == "ANY"
        if front == "anthropic":
            assert config["allowedFunctionNames"] == ["get_weather"]
        return
    if backend == "anthropic":  # Anthropic ids match ^[A-Za-z0-9_-]+$
        ids = tuple(i.replace(".", "_") for i in ids)
    assert history == [
        (ids[0], "get_weather", weather), (ids[1], "get_time", clock),
        (ids[0], "", "sunny"), (ids[1], "", "noon"),
    ]  # fmt: skip
    if backend == "anthropic":
        assert body["system"] == "Be brief."
        choice = {"type": "any"} if front == "openai" else {"type": "tool", "name": "get_weather"}
        assert body["tool_choice"] == {**choice, "disable_parallel_tool_use": True}
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["parallel_tool_calls"] is False
        named = {"type": "function", "function": {"name": "get_weather"}}
        assert body["tool_choice"] == ("required" if front == "openai" else named)
