"""The official OpenAI SDK through /v1/chat/completions over every backend (issue #5): text,
streams, usage, tools, errors and stop reasons, as a parametrized matrix.

The rig is `support`'s: one fake upstream per wire behind this module's own gateway.
Each test scripts the upstream's answer and asserts against what the upstream reported and
the request it received. Regression tests for bugs found here carry the bug in their
docstring or name.
"""

import json
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from tests.client.matrix.support import (
    ANSWER,
    BACKENDS,
    BAD_REQUEST,
    BAD_REQUEST_BODIES,
    CALLS,
    FAKES,
    NATIVE_MAX_TOKENS,
    OA_MESSAGES,
    OA_TOOLS,
    UPSTREAM_MODEL,
    USAGE,
    Rig,
    alias,
    cached_answer,
    check_tool_definitions,
    check_upstream_shape,
    error_stream,
    no_argument_call,
    received,
    script,
)
from tests.upstreams import ok, rate_limited, reset_mid_stream, status

pytestmark = pytest.mark.timeout(30)


# --- text, streams and usage -----------------------------------------------------------------


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


# --- tool calls ------------------------------------------------------------------------------


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
    script(rig, backend, no_argument_call(backend, stream))
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


# --- errors ----------------------------------------------------------------------------------


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


# --- stop reasons and usage arithmetic -------------------------------------------------------


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
def test_openai_client_usage_counts_cached_input(
    rig: Rig, oa: openai.OpenAI, backend: str, stream: bool
) -> None:
    """prompt_tokens is every input token (cache writes and reads included); cached_tokens
    says how many were read from cache (WIRE.md §2, §8.13)."""
    script(rig, backend, cached_answer(backend, stream))
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
