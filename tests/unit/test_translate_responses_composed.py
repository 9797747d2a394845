"""Generated Anthropic and Gemini streams through the composed Responses translators: every
frame validates against openai-python's types, the stream completes exactly when the upstream
finished (with its usage), and text, reasoning and function calls arrive whole."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import Event
from proxy.translate import responses_anthropic, responses_gemini
from tests.unit.responses_support import check_responses, responses_final, terminal
from tests.unit.test_translate_openai_anthropic_stream import block, delta, finish, start, stop

texts = st.text(min_size=1, max_size=6)
names = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
objects = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3)
Piece = tuple[str, Any]  # ("text" | "thinking", str) or ("tool", (name, input))
pieces = st.lists(
    st.one_of(
        st.tuples(st.just("text"), texts),
        st.tuples(st.just("thinking"), texts),
        st.tuples(st.just("tool"), st.tuples(names, objects)),
    ),
    max_size=5,
)


def feed(stream: Any, events: list[Event]) -> list[Event]:
    return [out for e in events for out in stream.feed(e)] + stream.close()


def expected(parts: list[Piece]) -> tuple[list[str], list[str], list[tuple[str, Any]]]:
    """(message texts, reasoning texts, calls) as the client must see them: consecutive
    pieces of one kind join into one item."""
    msgs: list[str] = []
    thoughts: list[str] = []
    calls: list[tuple[str, Any]] = []
    last = None
    for kind, value in parts:
        if kind == "tool":
            calls.append(value)
        elif kind == last:
            (msgs if kind == "text" else thoughts)[-1] += value
        else:
            (msgs if kind == "text" else thoughts).append(value)
        last = kind
    return msgs, thoughts, calls


def check(out: list[Event], parts: list[Piece], finished: bool, usage: tuple[int, int]) -> None:
    check_responses(out)
    final = terminal(out)
    if not finished:
        assert final["status"] == "failed"
        return
    assert final["status"] == "completed"
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == usage
    sdk = responses_final(out)
    msgs, thoughts, calls = expected(parts)
    got_msgs = [
        c.text
        for o in sdk.output
        if o.type == "message"
        for c in o.content
        if c.type == "output_text"
    ]
    got_thoughts = [c.text for o in sdk.output if o.type == "reasoning" for c in o.content or ()]
    got_calls = [(o.name, json.loads(o.arguments)) for o in sdk.output if o.type == "function_call"]
    assert (got_msgs, got_thoughts, got_calls) == (msgs, thoughts, calls)


@settings(deadline=None)
@given(pieces, st.booleans())
def test_anthropic_streams(parts: list[Piece], complete: bool) -> None:
    events = [start(input_tokens=7)]
    for i, (kind, value) in enumerate(parts):
        if kind == "text":
            events += [
                block(i, {"type": "text", "text": ""}),
                delta(i, {"type": "text_delta", "text": value}),
            ]
        elif kind == "thinking":
            events += [
                block(i, {"type": "thinking", "thinking": ""}),
                delta(i, {"type": "thinking_delta", "thinking": value}),
            ]
        else:
            name, args = value
            events += [
                block(i, {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": {}}),
                delta(i, {"type": "input_json_delta", "partial_json": json.dumps(args)}),
            ]
        events.append(stop(i))
    if complete:
        events += finish("tool_use" if any(k == "tool" for k, _ in parts) else "end_turn", 9)
    stream = responses_anthropic.Stream("alias", id="resp_a", created=1)
    check(feed(stream, events), parts, complete, (7, 9))


@settings(deadline=None)
@given(pieces, st.booleans())
def test_gemini_streams(parts: list[Piece], complete: bool) -> None:
    events = []
    for kind, value in parts:
        if kind == "tool":
            part: dict[str, Any] = {"functionCall": {"name": value[0], "args": value[1]}}
        else:
            part = {"text": value, **({"thought": True} if kind == "thinking" else {})}
        candidate = {"content": {"role": "model", "parts": [part]}, "index": 0}
        events.append(Event(json.dumps({"candidates": [candidate]})))
    if complete:
        candidate = {"content": {"role": "model", "parts": []}, "index": 0, "finishReason": "STOP"}
        usage = {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10}
        events.append(Event(json.dumps({"candidates": [candidate], "usageMetadata": usage})))
    stream = responses_gemini.Stream("alias", id="resp_g", created=1)
    check(feed(stream, events), parts, complete, (4, 6))
