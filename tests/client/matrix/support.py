"""The translation matrix's rig and scripts, shared by its modules (issue #5).

    front door               backends (alias)
    openai  /v1/chat/...     via-openai (pass-through), via-anthropic, via-gemini, via-mock
    anthropic /v1/messages   via-anthropic (pass-through), via-openai, via-gemini, via-mock

Each matrix module starts one gateway of its own (`matrix_rig`), with one fake upstream per
wire; `fo` is a failover alias (an Anthropic target, then an OpenAI one), and `solo-WIRE/*`
gives a test a target (so a circuit) of its own. Every test scripts exactly the upstream
answers it needs (`script`, or the canned answers below) and asserts against what that
upstream reported and against the request the upstream received (`check_upstream_shape`).
The mock backend answers deterministically and never calls tools.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok, status

BACKENDS = ("openai", "anthropic", "gemini", "mock")
FAKES = ("openai", "anthropic", "gemini")  # backends with a scriptable upstream
UPSTREAM_MODEL = {"openai": "up-gpt", "anthropic": "up-claude", "gemini": "up-gemini"}

PROMPT = "What is the weather in São Paulo today?"
ANSWER = 'It is sunny in São Paulo — 25 °C, "clear" skies.'
USAGE = (23, 11)  # (prompt, completion) as every fake upstream reports it
OA_MESSAGES: Any = [{"role": "user", "content": PROMPT}]
AN_MESSAGES: Any = [{"role": "user", "content": PROMPT}]

# Arguments the fake upstreams stream in three fragments each: escapes, unicode and nesting
# are cut mid-token, so only a translator that passes fragments through intact survives.
WEATHER = ("get_weather", '{"city": "São Paulo", "unit": "celsius", "days": [1, 2, 3]}')
CLOCK = ("get_time", '{"tz": "America/Sao_Paulo", "note": "a \\"quoted\\" word", "x": {"y": null}}')
CALLS = {"one": (WEATHER,), "two": (WEATHER, CLOCK)}

WEATHER_SCHEMA: Any = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "city name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["city"],
}
CLOCK_SCHEMA: Any = {
    "type": "object",
    "properties": {"tz": {"type": "string"}, "note": {"type": "string"}},
    "required": ["tz"],
}
SCHEMAS = {"get_weather": WEATHER_SCHEMA, "get_time": CLOCK_SCHEMA}
OA_TOOLS: Any = [
    {"type": "function", "function": {"name": n, "description": f"{n} tool", "parameters": s}}
    for n, s in SCHEMAS.items()
]
AN_TOOLS: Any = [
    {"name": n, "description": f"{n} tool", "input_schema": s} for n, s in SCHEMAS.items()
]
BETA = "tools-2024-05-16"


# --- the rig ---------------------------------------------------------------------------------


@dataclass
class Rig:
    gw: Gateway
    ups: dict[str, FakeUpstream]

    def mark(self) -> dict[str, int]:
        """How many requests each upstream has seen so far."""
        return {wire: len(up.requests) for wire, up in self.ups.items()}


@contextmanager
def matrix_rig(tmp: Path) -> Iterator[Rig]:
    """A gateway over one fake upstream per wire (and the mock), stopped on exit."""
    ups: dict[str, FakeUpstream] = {}
    try:
        for wire in FAKES:
            ups[wire] = FakeUpstream(wire=wire).start()  # type: ignore[arg-type]
        config = RoutesFile(tmp)(
            f"""
            version: 1
            settings:
              failure_threshold: 1000   # error tests must not open a circuit for the rest
              cooldown: 1s
              retries: 1
              timeouts: {{connect: 2s, first_byte: 5s, idle: 5s, total: 20s}}
            backends:
              oa: {{type: openai, base_url: "{ups["openai"].url}", api_key: sk-oa-upstream}}
              an: {{type: anthropic, base_url: "{ups["anthropic"].url}", api_key: sk-ant-up}}
              gm: {{type: gemini, base_url: "{ups["gemini"].url}", api_key: gm-upstream-key}}
              mock: {{type: mock}}
            models:
              via-openai: {{targets: [{{backend: oa, model: {UPSTREAM_MODEL["openai"]}}}]}}
              via-anthropic: {{targets: [{{backend: an, model: {UPSTREAM_MODEL["anthropic"]}}}]}}
              via-gemini: {{targets: [{{backend: gm, model: {UPSTREAM_MODEL["gemini"]}}}]}}
              via-mock: {{targets: [{{backend: mock}}]}}
              # a target (so a circuit) per test, for answers whose retry-after cools it
              "solo-openai/*": {{targets: [{{backend: oa, model: "*"}}]}}
              "solo-anthropic/*": {{targets: [{{backend: an, model: "*"}}]}}
              "solo-gemini/*": {{targets: [{{backend: gm, model: "*"}}]}}
              fo:
                targets:
                  - {{backend: an, model: fo-claude}}
                  - {{backend: oa, model: fo-backup, priority: 1}}
            """
        )
        with serve(config, tmp) as gw:
            yield Rig(gw, ups)
    finally:
        for up in ups.values():
            up.stop()


def forget(rig: Rig) -> None:
    """Drop scripted answers a failed test may have left behind."""
    for up in rig.ups.values():
        with up._cond:  # the harness has no public way to drop a script
            up._script.clear()
        up.default = ok()


def openai_client(rig: Rig) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{rig.gw.url}/v1",
        api_key="sk-client",
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )


def anthropic_client(rig: Rig) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=rig.gw.url,  # the SDK adds /v1 itself
        api_key="sk-ant-client",
        max_retries=0,
        timeout=10,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),
    )


def alias(backend: str) -> str:
    return f"via-{backend}"


def script(rig: Rig, backend: str, *behaviours: Any) -> None:
    if backend != "mock":
        rig.ups[backend].script(*behaviours)


def received(rig: Rig, backend: str, before: dict[str, int]) -> list[Any]:
    """What the backend's upstream got since `before` (always exactly one request here)."""
    new = rig.ups[backend].requests[before[backend] :]
    assert len(new) == 1, f"{backend} upstream got {len(new)} requests"
    others = {w: len(u.requests) - before[w] for w, u in rig.ups.items() if w != backend}
    assert not any(others.values()), f"other upstreams were called: {others}"
    return new


def expected_path(backend: str, stream: bool) -> str:
    if backend == "openai":
        return "/v1/chat/completions"
    if backend == "anthropic":
        return "/v1/messages"
    verb = "streamGenerateContent" if stream else "generateContent"
    return f"/v1beta/models/{UPSTREAM_MODEL['gemini']}:{verb}"


def check_upstream_shape(rig: Rig, backend: str, before: dict[str, int], stream: bool) -> Any:
    """The single upstream request went to the backend's own endpoint; returns its body."""
    if backend == "mock":
        return None
    (req,) = received(rig, backend, before)
    assert req.path == expected_path(backend, stream)
    body = req.json
    if backend == "gemini":
        assert "model" not in body
        assert body["contents"][-1]["role"] == "user"
        if stream:
            assert req.query.get("alt") == "sse"
    else:
        assert body["model"] == UPSTREAM_MODEL[backend]
        assert body.get("stream", False) is stream
    if backend == "anthropic":
        assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
        assert req.headers["anthropic-version"]
    return body


def tool_definitions_in(body: Any, backend: str) -> Any:
    """The tool definitions the upstream received, as (name, schema) in order."""
    if backend == "anthropic":
        return [(t["name"], t["input_schema"]) for t in body["tools"]]
    if backend == "openai":
        assert all(t["type"] == "function" for t in body["tools"])
        return [(t["function"]["name"], t["function"]["parameters"]) for t in body["tools"]]
    (group,) = body["tools"]
    return [(d["name"], d["parameters"]) for d in group["functionDeclarations"]]


def check_tool_definitions(backend: str, body: Any) -> None:
    if backend == "mock":
        return
    got = tool_definitions_in(body, backend)
    assert [name for name, _ in got] == list(SCHEMAS)
    for name, schema in got:
        if backend == "gemini":  # the OpenAPI subset Gemini takes: same properties, same required
            assert set(schema["properties"]) == set(SCHEMAS[name]["properties"])
            assert schema["required"] == SCHEMAS[name]["required"]
            assert schema["properties"]["tz" if name == "get_time" else "unit"]["type"] == "string"
        else:
            assert schema == SCHEMAS[name]


# --- canned upstream answers, as each wire sends them ----------------------------------------


def no_argument_call(backend: str, stream: bool) -> Any:
    """A call to a tool that takes no arguments, as each wire sends it."""
    if backend != "anthropic" or not stream:
        return ok(tool_calls=[("get_time", "{}")], usage=USAGE)
    # Anthropic streams an empty input as one `input_json_delta` with `partial_json: ""`
    message = {
        "id": "msg_n", "type": "message", "role": "assistant", "content": [],
        "model": "up-claude", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": USAGE[0], "output_tokens": 1},
    }  # fmt: skip
    tool = {"type": "tool_use", "id": "toolu_n", "name": "get_time", "input": {}}
    events: list[Any] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": tool},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": USAGE[1]}},
        {"type": "message_stop"},
    ]  # fmt: skip
    text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return status(200, text, {"content-type": "text/event-stream"})


BAD_REQUEST = 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'
BAD_REQUEST_BODIES: Any = {
    "openai": {"error": {"message": BAD_REQUEST, "type": "invalid_request_error",
                         "param": "foo", "code": "unknown_parameter"}},
    "anthropic": {"type": "error",
                  "error": {"type": "invalid_request_error", "message": BAD_REQUEST}},
    "gemini": {"error": {"code": 400, "message": BAD_REQUEST, "status": "INVALID_ARGUMENT"}},
}  # fmt: skip


# Mid-stream errors: the upstream commits (some text), then reports an error in-band.
def _anthropic_error_stream() -> str:
    def frame(obj: dict[str, Any]) -> str:
        return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n"

    message = {
        "id": "msg_err", "type": "message", "role": "assistant", "content": [],
        "model": "up-claude", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }  # fmt: skip
    return (
        frame({"type": "message_start", "message": message})
        + frame({"type": "content_block_start", "index": 0,
                 "content_block": {"type": "text", "text": ""}})
        + frame({"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": "Partial"}})
        + frame({"type": "error",
                 "error": {"type": "overloaded_error", "message": "Overloaded mid-stream"}})
    )  # fmt: skip


def _openai_error_stream() -> str:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up-gpt"}
    first = {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    text = {**head, "choices": [{"index": 0, "delta": {"content": "Partial"}}]}
    error = {"error": {"message": "Overloaded mid-stream", "type": "server_error"}}
    return "".join(f"data: {json.dumps(x)}\n\n" for x in (first, text, error))


def _gemini_error_stream() -> str:
    text = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Partial"}]},
                            "index": 0}]}  # fmt: skip
    error = {"error": {"code": 503, "message": "Overloaded mid-stream", "status": "UNAVAILABLE"}}
    return "".join(f"data: {json.dumps(x)}\r\n\r\n" for x in (text, error))


ERROR_STREAMS = {
    "openai": _openai_error_stream,
    "anthropic": _anthropic_error_stream,
    "gemini": _gemini_error_stream,
}


def error_stream(backend: str) -> Any:
    return status(200, ERROR_STREAMS[backend](), {"content-type": "text/event-stream"})


NATIVE_MAX_TOKENS = {"openai": "length", "anthropic": "max_tokens", "gemini": "MAX_TOKENS"}


# Usage with cached input, as each wire reports it: 15 uncached + 100 cache reads in, 7 out.
def cached_answer(backend: str, stream: bool) -> Any:
    """An upstream answer carrying cache usage (the fakes' `usage=(p, c)` has no cache part)."""
    if backend == "anthropic":
        usage = {"input_tokens": 10, "cache_creation_input_tokens": 5,
                 "cache_read_input_tokens": 100, "output_tokens": 7}  # fmt: skip
        message = {"id": "msg_c", "type": "message", "role": "assistant", "model": "up-claude",
                   "stop_reason": "end_turn", "stop_sequence": None}  # fmt: skip
        if not stream:
            body: Any = {**message, "content": [{"type": "text", "text": ANSWER}], "usage": usage}
            return status(200, body)
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events: list[Any] = [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": ANSWER}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": 7}},
            {"type": "message_stop"},
        ]  # fmt: skip
        text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        return status(200, text, {"content-type": "text/event-stream"})
    if backend == "openai":
        usage = {"prompt_tokens": 115, "completion_tokens": 7, "total_tokens": 122,
                 "prompt_tokens_details": {"cached_tokens": 100}}  # fmt: skip
        head = {"id": "chatcmpl-c", "created": 1, "model": "up-gpt"}
        if not stream:
            choice = {"index": 0, "message": {"role": "assistant", "content": ANSWER},
                      "finish_reason": "stop"}  # fmt: skip
            return status(200, {**head, "object": "chat.completion", "choices": [choice],
                                "usage": usage})  # fmt: skip
        chunk = {**head, "object": "chat.completion.chunk"}
        frames = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ANSWER},
                                   "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**chunk, "choices": [], "usage": usage},
        ]  # fmt: skip
        text = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
        return status(200, text, {"content-type": "text/event-stream"})
    record = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": ANSWER}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 115, "candidatesTokenCount": 7,
                          "totalTokenCount": 122, "cachedContentTokenCount": 100},
    }  # fmt: skip
    if not stream:
        return status(200, record)
    return status(200, f"data: {json.dumps(record)}\r\n\r\n", {"content-type": "text/event-stream"})
