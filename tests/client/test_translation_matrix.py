"""Both official SDKs over every front door x backend pair (issue #5): text, streams, usage,
tools, count_tokens, beta headers and errors, as a parametrized matrix.

    front door               backends (alias)
    openai  /v1/chat/...     via-openai (pass-through), via-anthropic, via-gemini, via-mock
    anthropic /v1/messages   via-anthropic (pass-through), via-openai, via-gemini, via-mock

One gateway for the module, with one fake upstream per wire; `fo` is a failover alias (an
Anthropic target, then an OpenAI one). Every test scripts exactly the upstream answers it
needs and asserts against what that upstream reported (text, usage, tool-call arguments),
and against the request the upstream received (the backend's own shape). The mock backend
answers deterministically and never calls tools, so its cells compare the stream with the
plain answer and check that a tools request is still served.

Below the SDK cells, raw-wire checks of what the SDKs tolerate but WIRE.md §8 requires.
Regression tests for bugs found here carry the bug in their docstring or name.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok, rate_limited, reset_mid_stream, status

pytestmark = pytest.mark.timeout(30)

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


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("matrix")
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


@pytest.fixture(autouse=True)
def _fresh_scripts(rig: Rig) -> Iterator[None]:
    """A failed test may leave scripted answers behind: drop them before and after."""
    _forget(rig)
    yield
    _forget(rig)


def _forget(rig: Rig) -> None:
    for up in rig.ups.values():
        with up._cond:  # the harness has no public way to drop a script
            up._script.clear()
        up.default = ok()


@pytest.fixture(scope="module")
def oa(rig: Rig) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{rig.gw.url}/v1",
        api_key="sk-client",
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    ) as client:
        yield client


@pytest.fixture(scope="module")
def an(rig: Rig) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=rig.gw.url,  # the SDK adds /v1 itself
        api_key="sk-ant-client",
        max_retries=0,
        timeout=10,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),
    ) as client:
        yield client


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


# --- OpenAI front door -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_openai_text(rig: Rig, oa: openai.OpenAI, backend: str) -> None:
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    raw = oa.chat.completions.with_raw_response.create(model=alias(backend), messages=OA_MESSAGES)
    completion = raw.parse()
    check_upstream_shape(rig, backend, before, stream=False)
    assert raw.headers["x-proxy-attempts"] == "1"
    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    # pass-through keeps the upstream's own model id; translated answers name the alias
    assert completion.model in (alias(backend), UPSTREAM_MODEL.get(backend))
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    if backend == "mock":
        assert choice.message.content
        assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    else:
        assert choice.message.content == ANSWER
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == USAGE
        assert completion.usage.total_tokens == sum(USAGE)


def _plain_text(oa: openai.OpenAI, backend: str) -> str:
    """What the backend answers without streaming (the mock's text is deterministic)."""
    if backend != "mock":
        return ANSWER
    completion = oa.chat.completions.create(model=alias(backend), messages=OA_MESSAGES)
    return completion.choices[0].message.content or ""


def _chunk_invariants(chunks: list[Any], finish: str) -> None:
    """WIRE.md §8.6: constant id/created/model, role once, finish_reason once."""
    assert chunks, "no chunks"
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    choices = [c.choices[0] for c in chunks if c.choices]
    assert [ch.delta.role for ch in choices if ch.delta.role] == ["assistant"]
    assert [ch.finish_reason for ch in choices if ch.finish_reason] == [finish]


@pytest.mark.parametrize("backend", BACKENDS)
def test_openai_stream_text(rig: Rig, oa: openai.OpenAI, backend: str) -> None:
    expected = _plain_text(oa, backend)
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    chunks = list(
        oa.chat.completions.create(model=alias(backend), messages=OA_MESSAGES, stream=True)
    )
    body = check_upstream_shape(rig, backend, before, stream=True)
    if backend == "openai":  # the gateway asks for usage on the client's behalf ...
        assert body["stream_options"] == {"include_usage": True}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    _chunk_invariants(chunks, "stop")
    # ... and, as the client did not ask, no chunk carries it
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


@pytest.mark.parametrize("backend", BACKENDS)
def test_openai_stream_include_usage(rig: Rig, oa: openai.OpenAI, backend: str) -> None:
    plain_usage = None
    if backend == "mock":
        plain = oa.chat.completions.create(model=alias(backend), messages=OA_MESSAGES)
        assert plain.usage is not None
        plain_usage = (plain.usage.prompt_tokens, plain.usage.completion_tokens)
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    chunks = list(
        oa.chat.completions.create(
            model=alias(backend),
            messages=OA_MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1, f"{len(with_usage)} usage chunks"
    last = chunks[-1]
    assert last is with_usage[0] and last.choices == []
    assert last.usage is not None
    got = (last.usage.prompt_tokens, last.usage.completion_tokens)
    assert got == (plain_usage if backend == "mock" else USAGE)
    assert last.usage.total_tokens == sum(got) and all(got)
    _chunk_invariants(chunks, "stop")


def _accumulated(stream: Any) -> tuple[Any, list[Any]]:
    """The SDK's own accumulation of a chunk stream, and the chunks."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(input_tools=OA_TOOLS)
    chunks = []
    for chunk in stream:
        state.handle_chunk(chunk)
        chunks.append(chunk)
    return state.get_final_completion(), chunks


def _tool_call_entries_invariants(chunks: list[Any]) -> None:
    """WIRE.md §8.8: `index` on every entry; id, type and name only in the first per index."""
    seen: set[int] = set()
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                assert tc.index is not None
                first = tc.index not in seen
                seen.add(tc.index)
                if first:
                    assert tc.id and tc.type == "function"
                    assert tc.function is not None and tc.function.name
                else:
                    assert tc.id is None and tc.type is None, f"repeated id/type: {tc}"
                    assert tc.function is None or tc.function.name is None, f"repeated name: {tc}"


def _check_openai_tool_calls(message: Any, calls: tuple[tuple[str, str], ...]) -> None:
    got = message.tool_calls or []
    assert [tc.function.name for tc in got] == [name for name, _ in calls]
    for tc, (_, arguments) in zip(got, calls, strict=True):
        assert tc.type == "function"
        assert json.loads(tc.function.arguments) == json.loads(arguments)
    ids = [tc.id for tc in got]
    assert all(ids) and len(set(ids)) == len(ids), ids
    for call_id in ids:  # a translator that repeats the id gives "call_1call_1"
        half = len(call_id) // 2
        assert not (len(call_id) % 2 == 0 and call_id[:half] == call_id[half:]), call_id


@pytest.mark.parametrize("calls", CALLS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_openai_tool_calls(
    rig: Rig, oa: openai.OpenAI, backend: str, stream: bool, calls: str
) -> None:
    wanted = CALLS[calls]
    script(rig, backend, ok(tool_calls=wanted, usage=USAGE))
    before = rig.mark()
    request: Any = {"model": alias(backend), "messages": OA_MESSAGES, "tools": OA_TOOLS}
    if stream:
        final, chunks = _accumulated(oa.chat.completions.create(**request, stream=True))
        _tool_call_entries_invariants(chunks)
        _chunk_invariants(chunks, "tool_calls")
    else:
        final = oa.chat.completions.create(**request)
    body = check_upstream_shape(rig, backend, before, stream)
    check_tool_definitions(backend, body)
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    _check_openai_tool_calls(choice.message, wanted)
    assert not choice.message.content


@pytest.mark.parametrize("backend", FAKES)
def test_openai_stream_manager_tool_calls(rig: Rig, oa: openai.OpenAI, backend: str) -> None:
    """`client.chat.completions.stream(...)`: the helper's events and final completion."""
    script(rig, backend, ok(text="Checking.", tool_calls=CALLS["two"], usage=USAGE))
    done: dict[int, str] = {}
    with oa.chat.completions.stream(
        model=alias(backend),
        messages=OA_MESSAGES,
        tools=OA_TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done[event.index] = event.arguments
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    _check_openai_tool_calls(choice.message, CALLS["two"])
    assert {i: json.loads(a) for i, a in done.items()} == {
        i: json.loads(a) for i, (_, a) in enumerate(CALLS["two"])
    }
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == USAGE


def _no_argument_call(backend: str, stream: bool) -> Any:
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


@pytest.mark.parametrize(
    ("backend", "stream"),
    [
        pytest.param(b, st, id=f"{b}-{'stream' if st else 'plain'}",
                     )
        for b in FAKES
        for st in (False, True)
    ],
)  # fmt: skip
def test_openai_tool_call_without_arguments(
    rig: Rig, oa: openai.OpenAI, backend: str, stream: bool
) -> None:
    """A no-argument tool call's arguments are still JSON (`{}`), as OpenAI sends them."""
    script(rig, backend, _no_argument_call(backend, stream))
    request: Any = {"model": alias(backend), "messages": OA_MESSAGES, "tools": OA_TOOLS}
    if stream:
        final, _ = _accumulated(oa.chat.completions.create(**request, stream=True))
    else:
        final = oa.chat.completions.create(**request)
    (call,) = final.choices[0].message.tool_calls
    assert call.function.name == "get_time" and call.id
    assert json.loads(call.function.arguments) == {}
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_tool_use_without_arguments(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    script(rig, backend, _no_argument_call(backend, stream))
    request: Any = {
        "model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES, "tools": AN_TOOLS,
    }  # fmt: skip
    if stream:
        with an.messages.stream(**request) as s:
            final = s.get_final_message()
    else:
        final = an.messages.create(**request)
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "get_time" and use.id
    assert use.input == {}
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_tools_request_served_by_mock(oa: openai.OpenAI, stream: bool) -> None:
    """The mock never calls tools: a tools request still gets a text answer."""
    request: Any = {"model": "via-mock", "messages": OA_MESSAGES, "tools": OA_TOOLS}
    if stream:
        chunks = list(oa.chat.completions.create(**request, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        _chunk_invariants(chunks, "stop")
    else:
        completion = oa.chat.completions.create(**request)
        assert completion.choices[0].message.content
        assert completion.choices[0].finish_reason == "stop"


# --- Anthropic front door --------------------------------------------------------------------


def _check_usage(usage: Any, backend: str, plain: tuple[int, int] | None = None) -> None:
    got = (usage.input_tokens, usage.output_tokens)
    assert all(got), f"zero usage: {got}"
    if backend != "mock":
        assert got == USAGE
    elif plain is not None:
        assert got == plain


@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_text(rig: Rig, an: anthropic.Anthropic, backend: str) -> None:
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    raw = an.messages.with_raw_response.create(
        model=alias(backend), max_tokens=256, messages=AN_MESSAGES
    )
    message = raw.parse()
    body = check_upstream_shape(rig, backend, before, stream=False)
    if backend == "openai":
        assert body["messages"] == [{"role": "user", "content": PROMPT}]
        assert body["max_tokens"] == 256
    assert raw.headers["x-proxy-attempts"] == "1"
    assert message.type == "message" and message.role == "assistant"
    assert message.model in (alias(backend), UPSTREAM_MODEL.get(backend))
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    text = message.content[0].text  # type: ignore[union-attr]
    if backend == "mock":
        assert text
    else:
        assert text == ANSWER
    _check_usage(message.usage, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_stream_text(rig: Rig, an: anthropic.Anthropic, backend: str) -> None:
    plain_text, plain_usage = ANSWER, None
    if backend == "mock":
        plain = an.messages.create(model=alias(backend), max_tokens=256, messages=AN_MESSAGES)
        plain_text = plain.content[0].text  # type: ignore[union-attr]
        plain_usage = (plain.usage.input_tokens, plain.usage.output_tokens)
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    with an.messages.stream(model=alias(backend), max_tokens=256, messages=AN_MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    body = check_upstream_shape(rig, backend, before, stream=True)
    if backend == "openai":  # usage is read from the upstream, never guessed
        assert body["stream_options"] == {"include_usage": True}
    assert headers["x-proxy-attempts"] == "1"
    assert text == plain_text
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == plain_text  # type: ignore[union-attr]
    _check_usage(final.usage, backend, plain_usage)


def _check_tool_use(message: Any, calls: tuple[tuple[str, str], ...]) -> None:
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.name for u in uses] == [name for name, _ in calls]
    for use, (_, arguments) in zip(uses, calls, strict=True):
        assert use.input == json.loads(arguments)
    ids = [u.id for u in uses]
    assert all(ids) and len(set(ids)) == len(ids), ids


@pytest.mark.parametrize("calls", CALLS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_tool_use(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool, calls: str
) -> None:
    wanted = CALLS[calls]
    script(rig, backend, ok(text="Let me check.", tool_calls=wanted, usage=USAGE))
    before = rig.mark()
    request: Any = {
        "model": alias(backend),
        "max_tokens": 256,
        "messages": AN_MESSAGES,
        "tools": AN_TOOLS,
    }
    if stream:
        with an.messages.stream(**request) as s:
            stops = [e for e in s if e.type == "content_block_stop"]
            final = s.get_final_message()
        assert len(stops) == 1 + len(wanted)  # one text block, one block per call
    else:
        final = an.messages.create(**request)
    body = check_upstream_shape(rig, backend, before, stream)
    check_tool_definitions(backend, body)
    assert final.content[0].type == "text"
    assert final.content[0].text == "Let me check."
    _check_tool_use(final, wanted)
    _check_usage(final.usage, backend)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_tools_request_served_by_mock(an: anthropic.Anthropic, stream: bool) -> None:
    request: Any = {
        "model": "via-mock",
        "max_tokens": 256,
        "messages": AN_MESSAGES,
        "tools": AN_TOOLS,
    }
    if stream:
        with an.messages.stream(**request) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text
    else:
        final = an.messages.create(**request)
    assert final.stop_reason == "end_turn"
    assert final.content and final.content[0].type == "text"


@pytest.mark.parametrize("beta_client", [False, True], ids=["plain", "beta-client"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_count_tokens(
    rig: Rig, an: anthropic.Anthropic, backend: str, beta_client: bool
) -> None:
    script(rig, backend, ok(usage=(77, 1)))
    before = rig.mark()
    request: Any = {"model": alias(backend), "messages": AN_MESSAGES, "tools": AN_TOOLS}
    raw: Any
    if beta_client:  # POST /v1/messages/count_tokens?beta=true
        raw = an.beta.messages.with_raw_response.count_tokens(**request, betas=[BETA])
    else:
        raw = an.messages.with_raw_response.count_tokens(**request)
    counted = raw.parse()
    if backend == "anthropic":  # passed through: the upstream's own count
        (req,) = received(rig, backend, before)
        assert req.path == "/v1/messages/count_tokens"
        assert req.json["model"] == UPSTREAM_MODEL["anthropic"]
        assert req.json["tools"] == AN_TOOLS
        assert counted.input_tokens == 77
        assert "x-proxy-estimate" not in raw.headers
        if beta_client:  # the SDK adds its own token-counting flag to ours
            assert BETA in req.headers["anthropic-beta"].split(",")
        else:
            assert "anthropic-beta" not in req.headers
    else:  # no counting endpoint: an estimate, said to be one, and no upstream call
        assert counted.input_tokens > 0
        assert raw.headers["x-proxy-estimate"] == "true"
        assert rig.mark() == before


@pytest.mark.parametrize("mode", ["header", "beta-client", "beta-stream"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_anthropic_beta_header(rig: Rig, an: anthropic.Anthropic, backend: str, mode: str) -> None:
    """`anthropic-beta` reaches Anthropic only; the beta client's `?beta=true` path works."""
    script(rig, backend, ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    message: Any
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    if mode == "beta-client":  # POST /v1/messages?beta=true with `anthropic-beta: <betas>`
        message = an.beta.messages.create(**request, betas=[BETA])
    elif mode == "beta-stream":
        with an.beta.messages.stream(**request, betas=[BETA]) as s:
            assert "".join(s.text_stream)
            message = s.get_final_message()
    else:
        message = an.messages.create(**request, extra_headers={"anthropic-beta": BETA})
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    if backend == "mock":
        return
    assert message.content[0].text == ANSWER
    assert (message.usage.input_tokens, message.usage.output_tokens) == USAGE
    (req,) = received(rig, backend, before)
    assert req.path == expected_path(backend, mode == "beta-stream")
    assert "beta" not in req.query
    if backend == "anthropic":
        assert req.headers.get("anthropic-beta") == BETA
        # the client's own version travels unchanged (the gateway's default is only a fallback)
        assert req.headers.get("anthropic-version") == an.default_headers["anthropic-version"]
    else:
        assert "anthropic-beta" not in req.headers
        assert "anthropic-version" not in req.headers


# --- the wire under the SDKs: what they tolerate but WIRE.md section 8 requires ----------------


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


# --- errors ----------------------------------------------------------------------------------


BAD_REQUEST = 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'
BAD_REQUEST_BODIES: Any = {
    "openai": {"error": {"message": BAD_REQUEST, "type": "invalid_request_error",
                         "param": "foo", "code": "unknown_parameter"}},
    "anthropic": {"type": "error",
                  "error": {"type": "invalid_request_error", "message": BAD_REQUEST}},
    "gemini": {"error": {"code": 400, "message": BAD_REQUEST, "status": "INVALID_ARGUMENT"}},
}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_openai_client_gets_upstream_400_as_bad_request(
    rig: Rig, oa: openai.OpenAI, backend: str, stream: bool
) -> None:
    script(rig, backend, status(400, BAD_REQUEST_BODIES[backend]))
    before = rig.mark()
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model=alias(backend), messages=OA_MESSAGES, stream=stream)
    received(rig, backend, before)  # a client error: no failover, no retry
    err = info.value
    assert err.status_code == 400
    assert isinstance(err.body, dict) and err.body["message"] == BAD_REQUEST
    assert err.type == "invalid_request_error"
    if backend == "gemini":  # Gemini's status is the closest thing to an OpenAI code
        assert err.code == "INVALID_ARGUMENT"
    assert err.response.headers["x-request-id"]
    assert err.response.headers["x-proxy-attempts"] == "1"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_gets_upstream_400_as_bad_request(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    script(rig, backend, status(400, BAD_REQUEST_BODIES[backend]))
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    with pytest.raises(anthropic.BadRequestError) as info:
        if stream:
            with an.messages.stream(**request) as s:
                s.get_final_message()
        else:
            an.messages.create(**request)
    body: Any = info.value.body
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": BAD_REQUEST}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_client_fails_over_a_529_transparently(
    rig: Rig, oa: openai.OpenAI, stream: bool
) -> None:
    rig.ups["anthropic"].script(rate_limited(None, code=529))  # no retry-after: no cooling
    rig.ups["openai"].script(ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    raw = oa.chat.completions.with_raw_response.create(
        model="fo", messages=OA_MESSAGES, stream=stream
    )
    assert raw.headers["x-proxy-attempts"] == "2"
    assert raw.headers["x-proxy-backend"] == "oa"
    if stream:
        chunks = list(raw.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        _chunk_invariants(chunks, "stop")
    else:
        text = raw.parse().choices[0].message.content
    assert text == ANSWER
    assert [len(u.requests) - before[w] for w, u in rig.ups.items()] == [1, 1, 0]
    assert rig.ups["anthropic"].requests[-1].path == "/v1/messages"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_client_fails_over_a_529_transparently(
    rig: Rig, an: anthropic.Anthropic, stream: bool
) -> None:
    rig.ups["anthropic"].script(rate_limited(None, code=529))  # no retry-after: no cooling
    rig.ups["openai"].script(ok(text=ANSWER, usage=USAGE))
    before = rig.mark()
    request: Any = {
        "model": "fo",
        "max_tokens": 64,
        "messages": AN_MESSAGES,
        "extra_headers": {"anthropic-beta": BETA},
    }
    if stream:
        with an.messages.stream(**request) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
            headers = s.response.headers
    else:
        raw = an.messages.with_raw_response.create(**request)
        final, headers = raw.parse(), raw.headers
        text = final.content[0].text  # type: ignore[union-attr]
    assert headers["x-proxy-attempts"] == "2"
    assert headers["x-proxy-backend"] == "oa"
    assert text == ANSWER
    _check_usage(final.usage, "openai")
    # the beta flag went to the Anthropic attempt only, never to the OpenAI one
    (first,) = rig.ups["anthropic"].requests[before["anthropic"] :]
    (second,) = rig.ups["openai"].requests[before["openai"] :]
    assert first.headers.get("anthropic-beta") == BETA
    assert "anthropic-beta" not in second.headers and "anthropic-version" not in second.headers


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_client_sees_529_when_no_target_is_left(
    rig: Rig, an: anthropic.Anthropic, stream: bool
) -> None:
    """Failover exhausted: the upstream's status and body, and no SDK retry invited."""
    rig.ups["anthropic"].script(rate_limited("3", code=529))  # cools this target for 3 s
    model = f"solo-anthropic/an-{'stream' if stream else 'plain'}"
    request: Any = {"model": model, "max_tokens": 64, "messages": AN_MESSAGES}
    with pytest.raises(anthropic.OverloadedError) as info:
        if stream:
            with an.messages.stream(**request) as s:
                s.get_final_message()
        else:
            an.messages.create(**request)
    err = info.value
    assert err.status_code == 529
    assert isinstance(err.body, dict) and err.body["error"]["type"] == "overloaded_error"
    assert err.response.headers["x-should-retry"] == "false"
    assert err.response.headers["retry-after"] == "3"
    assert err.response.headers["x-proxy-attempts"] == "1"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_client_sees_529_when_no_target_is_left(
    rig: Rig, oa: openai.OpenAI, stream: bool
) -> None:
    rig.ups["anthropic"].script(rate_limited("3", code=529))  # cools this target for 3 s
    model = f"solo-anthropic/oa-{'stream' if stream else 'plain'}"
    with pytest.raises(openai.InternalServerError) as info:
        oa.chat.completions.create(model=model, messages=OA_MESSAGES, stream=stream)
    err = info.value
    assert err.status_code == 529
    assert isinstance(err.body, dict)
    assert err.body["type"] == "overloaded_error"
    assert err.body["message"] == "fake anthropic upstream: 529"
    assert err.response.headers["x-should-retry"] == "false"


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


@pytest.mark.parametrize("fault", ["error-event", "reset"])
@pytest.mark.parametrize("backend", FAKES)
def test_openai_client_gets_mid_stream_error(
    rig: Rig, oa: openai.OpenAI, backend: str, fault: str
) -> None:
    """After commit: the text so far, then `openai.APIError` (an error chunk), no [DONE]."""
    behaviour = error_stream(backend) if fault == "error-event" else reset_mid_stream(2)
    rig.ups[backend].script(behaviour)
    texts: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in oa.chat.completions.create(
            model=alias(backend), messages=OA_MESSAGES, stream=True
        ):
            texts.extend(c.delta.content or "" for c in chunk.choices)
    assert not isinstance(info.value, openai.APIStatusError)  # in-band: the status was 200
    assert "".join(texts).strip()  # the committed part arrived first
    if fault == "error-event":
        assert "".join(texts) == "Partial"
        assert "Overloaded mid-stream" in info.value.message


@pytest.mark.parametrize("fault", ["error-event", "reset"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_gets_mid_stream_error(
    rig: Rig, an: anthropic.Anthropic, backend: str, fault: str
) -> None:
    """After commit: the text so far, then `event: error` (APIStatusError on a 200 stream)."""
    behaviour = error_stream(backend) if fault == "error-event" else reset_mid_stream(2)
    rig.ups[backend].script(behaviour)
    texts: list[str] = []
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    with pytest.raises(anthropic.APIStatusError) as info, an.messages.stream(**request) as s:
        texts.extend(s.text_stream)
    assert "".join(texts).strip()
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"]
    if fault == "error-event":
        assert "".join(texts) == "Partial"
        assert "Overloaded mid-stream" in body["error"]["message"]


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


def test_count_tokens_on_a_failover_model_goes_to_anthropic(
    rig: Rig, an: anthropic.Anthropic
) -> None:
    rig.ups["anthropic"].script(ok(usage=(55, 1)))
    raw = an.messages.with_raw_response.count_tokens(model="fo", messages=AN_MESSAGES)
    assert raw.parse().input_tokens == 55
    assert raw.headers["x-proxy-backend"] == "an"
    assert "x-proxy-estimate" not in raw.headers


def test_count_tokens_on_a_failover_model_survives_an_overloaded_anthropic(
    rig: Rig, an: anthropic.Anthropic
) -> None:
    """The request is valid: the client gets the 529 passed through or an estimate, never a
    400 blaming its body."""
    rig.ups["anthropic"].script(rate_limited(None, code=529))
    try:
        raw = an.messages.with_raw_response.count_tokens(model="fo", messages=AN_MESSAGES)
    except anthropic.OverloadedError:
        return  # the upstream's status passed through: sensible
    assert raw.headers["x-proxy-estimate"] == "true"
    assert raw.parse().input_tokens > 0


# --- stop reasons and usage arithmetic -------------------------------------------------------

NATIVE_MAX_TOKENS = {"openai": "length", "anthropic": "max_tokens", "gemini": "MAX_TOKENS"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_openai_client_finish_reason_length(
    rig: Rig, oa: openai.OpenAI, backend: str, stream: bool
) -> None:
    script(rig, backend, ok(text=ANSWER, usage=USAGE, finish_reason=NATIVE_MAX_TOKENS[backend]))
    request: Any = {"model": alias(backend), "messages": OA_MESSAGES}
    if stream:
        chunks = list(oa.chat.completions.create(**request, stream=True))
        _chunk_invariants(chunks, "length")
    else:
        assert oa.chat.completions.create(**request).choices[0].finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_stop_reason_max_tokens(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    script(rig, backend, ok(text=ANSWER, usage=USAGE, finish_reason=NATIVE_MAX_TOKENS[backend]))
    request: Any = {"model": alias(backend), "max_tokens": 11, "messages": AN_MESSAGES}
    if stream:
        with an.messages.stream(**request) as s:
            final = s.get_final_message()
    else:
        final = an.messages.create(**request)
    assert final.stop_reason == "max_tokens"
    assert final.content[0].text == ANSWER  # type: ignore[union-attr]


# Usage with cached input, as each wire reports it: 15 uncached + 100 cache reads in, 7 out.
def _cached_answer(backend: str, stream: bool) -> Any:
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


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_openai_client_usage_counts_cached_input(
    rig: Rig, oa: openai.OpenAI, backend: str, stream: bool
) -> None:
    """prompt_tokens is every input token (cache writes and reads included); cached_tokens
    says how many were read from cache (WIRE.md §2, §8.13)."""
    script(rig, backend, _cached_answer(backend, stream))
    request: Any = {"model": alias(backend), "messages": OA_MESSAGES}
    if stream:
        chunks = list(
            oa.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    else:
        completion = oa.chat.completions.create(**request)
        usage = completion.usage
        assert completion.choices[0].message.content == ANSWER
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (115, 7, 122)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("backend", FAKES)
def test_anthropic_client_usage_splits_cached_input(
    rig: Rig, an: anthropic.Anthropic, backend: str, stream: bool
) -> None:
    """input_tokens are the uncached ones; input + cache creation + cache reads is the total."""
    script(rig, backend, _cached_answer(backend, stream))
    request: Any = {"model": alias(backend), "max_tokens": 64, "messages": AN_MESSAGES}
    if stream:
        with an.messages.stream(**request) as s:
            final = s.get_final_message()
    else:
        final = an.messages.create(**request)
    assert final.content[0].text == ANSWER  # type: ignore[union-attr]
    u = final.usage
    total_in = (
        u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
    )
    assert (total_in, u.output_tokens, u.cache_read_input_tokens) == (115, 7, 100)
    if backend == "anthropic":  # the upstream's own split, passed through
        assert (u.input_tokens, u.cache_creation_input_tokens) == (10, 5)
    else:  # OpenAI-style backends do not report cache writes
        assert u.input_tokens == 15


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
