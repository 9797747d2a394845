"""A streamed answer assembles back into the whole answer it replays as (pure)."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy import synthesize
from proxy.cache import assemble

texts = st.text(max_size=40)
calls = st.lists(
    st.tuples(
        st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    ),
    max_size=3,
)


def chat(text: str, tools: list[tuple[str, dict[str, int]]], usage: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tools:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": n, "arguments": json.dumps(a)},
            }
            for i, (n, a) in enumerate(tools)
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tools else "stop",
                "logprobs": None,
            }
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    return body


@given(texts, calls, st.booleans())
def test_openai_stream_assembles_to_the_same_answer(
    text: str, tools: list[tuple[str, dict[str, int]]], usage: bool
) -> None:
    body = chat(text, tools, usage)
    stream = synthesize.openai_stream(json.dumps(body).encode(), include_usage=usage)
    whole = assemble.openai(stream)
    assert whole is not None
    assert json.loads(whole) == body


@given(texts, calls)
def test_anthropic_stream_assembles_to_the_same_message(
    text: str, tools: list[tuple[str, dict[str, int]]]
) -> None:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [
        {"type": "tool_use", "id": f"tu_{i}", "name": n, "input": a}
        for i, (n, a) in enumerate(tools)
    ]
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": content,
        "stop_reason": "tool_use" if tools else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 6},
    }
    whole = assemble.anthropic(synthesize.anthropic_stream(json.dumps(body).encode()))
    assert whole is not None
    assert json.loads(whole) == body


def test_text_completion_stream_assembles() -> None:
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "hello world", "finish_reason": "stop", "logprobs": None}],
    }
    whole = assemble.openai(synthesize.openai_stream(json.dumps(body).encode(), False))
    assert whole is not None and json.loads(whole) == body


@given(st.data())
def test_an_unfinished_stream_assembles_to_nothing(data: st.DataObject) -> None:
    openai = synthesize.openai_stream(
        json.dumps(chat("some words here", [("f", {"a": 1})], True)).encode(), True
    )
    cut = data.draw(st.integers(0, len(openai) - 1))
    assert assemble.openai(openai[:cut]) is None
    anthropic = synthesize.anthropic_stream(
        json.dumps({"id": "m", "content": [{"type": "text", "text": "hi"}], "usage": {}}).encode()
    )
    cut = data.draw(st.integers(0, len(anthropic) - 1))
    assert assemble.anthropic(anthropic[:cut]) is None


def test_an_error_event_is_never_assembled() -> None:
    openai = synthesize.openai_stream(json.dumps(chat("hi", [], False)).encode(), False)
    error = b'data: {"error": {"message": "upstream failed", "type": "upstream_error"}}\n\n'
    assert (
        assemble.openai(openai.replace(b"data: [DONE]", error[:-2] + b"\n\ndata: [DONE]")) is None
    )
    anthropic = synthesize.anthropic_stream(
        json.dumps({"id": "m", "content": [], "usage": {}}).encode()
    )
    broken = anthropic.replace(
        b"event: message_stop",
        b'event: error\ndata: {"type": "error", "error": {}}\n\nevent: message_stop',
    )
    assert assemble.anthropic(broken) is None


def test_a_stream_without_its_usage_chunk_takes_the_counted_usage() -> None:
    body = chat("hi", [], usage=True)
    stream = synthesize.openai_stream(json.dumps(body).encode(), include_usage=False)
    whole = assemble.openai(stream, counted=(3, 4))
    assert whole is not None and json.loads(whole) == body
    bare = assemble.openai(stream)
    assert bare is not None and "usage" not in json.loads(bare)
