"""Anthropic client → OpenAI-compatible backend, streaming
(`proxy.translate.anthropic_openai.Stream`): OpenAI chunks in, Anthropic events out, checked
with anthropic-python's own accumulator."""

import json
from typing import Any

import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import Event
from proxy.translate import anthropic_openai
from tests.unit.test_translate_anthropic_openai import json_objects, names, texts
from tests.unit.test_translate_conformance import anthropic_final, check_anthropic


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> Event:
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return Event(
        json.dumps(
            {
                "id": "u",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "g",
                "choices": choices,
                **top,
            }
        )
    )


Segment = tuple[str, Any]
segments = st.lists(
    st.one_of(
        st.tuples(st.just("text"), texts),
        st.tuples(st.just("reasoning"), texts),
        st.tuples(st.just("tool"), st.tuples(names, json_objects)),
    ),
    max_size=6,
)


def upstream_chunks(segs: list[Segment], style: str, data: st.DataObject) -> list[Event]:
    """OpenAI-style chunks for these segments: text/reasoning deltas, tool calls in `style`:
    'openai' (id and name first, then argument fragments), 'whole' (one entry), or 'repeat'
    (a server that repeats id and name on every fragment)."""
    out = [chunk({"role": "assistant", "content": ""})]
    tool = 0
    for kind, value in segs:
        if kind == "text":
            out.append(chunk({"content": value}))
        elif kind == "reasoning":
            out.append(chunk({"reasoning_content": value}))
        else:
            name, arguments = value
            text = json.dumps(arguments)
            head = {"index": tool, "id": f"call_{tool}", "type": "function"}
            if style == "whole":
                out.append(
                    chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": text}}]})
                )
            else:
                cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=4)))
                pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
                out.append(
                    chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
                )
                for piece in pieces:
                    entry: dict[str, Any] = {"index": tool, "function": {"arguments": piece}}
                    if style == "repeat":
                        entry = {**head, "function": {"name": name, "arguments": piece}}
                    out.append(chunk({"tool_calls": [entry]}))
            tool += 1
    return out


def expected_blocks(segs: list[Segment]) -> list[tuple[str, Any]]:
    blocks: list[tuple[str, Any]] = []
    tool = 0
    for kind, value in segs:
        if kind == "tool":
            blocks.append(("tool_use", (f"call_{tool}", value[0], value[1])))
            tool += 1
        elif blocks and blocks[-1][0] == kind:
            blocks[-1] = (kind, blocks[-1][1] + value)
        else:
            blocks.append((kind, value))
    return [("thinking" if k == "reasoning" else k, v) for k, v in blocks]


def got_blocks(message: Message) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for b in message.content:
        if b.type == "tool_use":
            out.append(("tool_use", (b.id, b.name, b.input)))
        elif b.type == "text":
            out.append(("text", b.text))
        elif b.type == "thinking":
            out.append(("thinking", b.thinking))
    return out


def run(events: list[Event]) -> tuple[list[Event], anthropic_openai.Stream]:
    s = anthropic_openai.Stream("alias", include_usage=False, id="msg_1", created=0)
    out = [o for e in events for o in s.feed(e)]
    return out + s.close(), s


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(segments, st.sampled_from(["openai", "whole", "repeat"]), st.data())
def test_stream_blocks_reassemble_in_the_anthropic_sdk(
    segs: list[Segment], style: str, data: st.DataObject
) -> None:
    has_tools = any(kind == "tool" for kind, _ in segs)
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 5,
        "total_tokens": 55,
        "prompt_tokens_details": {"cached_tokens": 20},
    }
    events = [
        *upstream_chunks(segs, style, data),
        chunk({}, "tool_calls" if has_tools else "stop"),
        chunk(None, usage=usage),
        Event("[DONE]"),
    ]
    out, s = run(events)
    final = anthropic_final(out)  # anthropic-python's own accumulator, after the order checks
    assert got_blocks(final) == expected_blocks(segs)
    assert final.stop_reason == ("tool_use" if has_tools else "end_turn") == s.finish
    assert (final.usage.input_tokens, final.usage.output_tokens) == (30, 5)
    assert final.usage.cache_read_input_tokens == 20
    assert s.usage == (50, 5)


def test_error_chunk_becomes_error_event() -> None:
    out, s = run(
        [
            chunk({"role": "assistant", "content": "Hi"}),
            Event('{"error": {"message": "boom", "type": "server_error"}}'),
        ]
    )
    assert out[-1].event == "error"
    assert json.loads(out[-1].data) == {
        "type": "error",
        "error": {"type": "api_error", "message": "boom"},
    }
    assert s.feed(chunk({"content": "late"})) == [] and s.close() == []


@pytest.mark.parametrize(
    "events",
    [
        [chunk({"role": "assistant", "content": "Hi"})],  # cut off: no finish, no [DONE]
        [chunk({"role": "assistant", "content": "Hi"}), Event("{truncated")],
        [],
    ],
)
def test_truncated_or_garbled_upstream_is_an_error_event(events: list[Event]) -> None:
    out, s = run(events)
    assert out[-1].event == "error" and "message_stop" not in [e.event for e in out]
    assert s.finish is None


def test_finish_without_done_still_completes_on_close() -> None:
    out, s = run([chunk({"role": "assistant", "content": "Hi"}), chunk({}, "length")])
    check_anthropic(out)
    assert s.finish == "max_tokens" and s.usage is None
    assert json.loads(out[-2].data)["usage"] == {"output_tokens": 0}


def test_only_the_first_choice_is_used_and_events_name_their_type() -> None:
    two = Event(
        json.dumps(
            {
                "choices": [
                    {"index": 1, "delta": {"content": "other"}, "finish_reason": None},
                    {"index": 0, "delta": {"content": "mine"}, "finish_reason": None},
                ]
            }
        )
    )
    out, _ = run([two, chunk({}, "stop"), Event("[DONE]")])
    assert [b.model_dump()["text"] for b in anthropic_final(out).content] == ["mine"]


def test_usage_in_the_first_chunk_reaches_message_start() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}
    out, _ = run([chunk({"role": "assistant"}, usage=usage), chunk({}, "stop"), Event("[DONE]")])
    assert json.loads(out[0].data)["message"]["usage"]["input_tokens"] == 9
