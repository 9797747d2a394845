"""Client-side conformance checks for translated streams, shared by the translate tests.

`openai_final` / `anthropic_final` reassemble a translated stream with the official SDKs' own
accumulators (offline), after validating every frame against the SDKs' Pydantic types;
`check_openai` / `check_anthropic` assert the WIRE.md §8 invariants the accumulators do not.
The tests at the bottom prove the checks reject the mistakes they exist to catch.
"""

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from proxy.sse import Event

_anthropic_event: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def check_openai(events: list[Event], *, include_usage: bool) -> list[ChatCompletionChunk]:
    """WIRE.md §8 items 5 to 8 on a complete OpenAI stream; returns the validated chunks."""
    assert events, "an OpenAI stream is never empty"
    assert all(e.event == "" for e in events), "OpenAI frames carry no event: names"
    assert events[-1].data == "[DONE]", "a complete stream ends with [DONE]"
    assert [e.data for e in events].count("[DONE]") == 1
    raw = [json.loads(e.data) for e in events[:-1]]
    chunks = [ChatCompletionChunk.model_validate(r) for r in raw]
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1, "id/created/model constant"
    usage_chunks = [i for i, r in enumerate(raw) if r["choices"] == []]
    if include_usage:
        assert usage_chunks == [len(raw) - 1], "one usage chunk, right before [DONE]"
        assert raw[-1]["usage"]["total_tokens"] >= 0
        assert all(r["usage"] is None for r in raw[:-1]), "usage: null on every other chunk"
    else:
        assert usage_chunks == []
        assert all("usage" not in r for r in raw), "no usage unless asked"
    roles: dict[int, int] = {}
    finishes: dict[int, int] = {}
    seen_tools: set[tuple[int, int]] = set()
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.delta.role is not None:
                roles[choice.index] = roles.get(choice.index, 0) + 1
            if choice.finish_reason is not None:
                finishes[choice.index] = finishes.get(choice.index, 0) + 1
            for call in choice.delta.tool_calls or ():
                key = (choice.index, call.index)
                head = call.id is not None or call.type is not None
                head = head or (call.function is not None and call.function.name is not None)
                if key in seen_tools:
                    assert not head, "id/type/name only in the first entry for an index"
                else:
                    assert call.id and call.type == "function" and call.function
                    assert call.function.name, "the first entry names the function"
                seen_tools.add(key)
    assert roles and all(n == 1 for n in roles.values()), "role once per choice"
    assert finishes and all(n == 1 for n in finishes.values()), "finish_reason once per choice"
    first = next(c for c in chunks if c.choices)
    assert first.choices[0].delta.role == "assistant", "role in the first delta"
    return chunks


def openai_final(events: list[Event], *, include_usage: bool = True) -> ChatCompletion:
    """The completion openai-python's stream accumulator builds from these events."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in check_openai(events, include_usage=include_usage):
        state.handle_chunk(chunk)
    return state.get_final_completion()


def check_anthropic(events: list[Event]) -> list[RawMessageStreamEvent]:
    """WIRE.md §8.9 on a complete Anthropic stream; returns the validated events."""
    parsed = []
    for e in events:
        data = json.loads(e.data)
        assert e.event == data["type"], "event: name equals data.type"
        parsed.append(_anthropic_event.validate_python(data))
    types = [p.type for p in parsed]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types.count("message_start") == types.count("message_delta") == 1
    start = parsed[0]
    assert start.type == "message_start" and start.message.stop_reason is None
    open_index: int | None = None
    next_index = 0
    for p in parsed[1:-2]:
        if p.type == "content_block_start":
            assert open_index is None, "a block stops before the next starts"
            assert p.index == next_index, "block indices are 0, 1, 2 ..."
            open_index, next_index = p.index, next_index + 1
        elif p.type == "content_block_delta":
            assert p.index < next_index, "deltas go to a started block"
        elif p.type == "content_block_stop":
            assert p.index == open_index
            open_index = None
        else:
            raise AssertionError(f"unexpected {p.type} mid-message")
    assert open_index is None, "every block is stopped before message_delta"
    return parsed


def anthropic_final(events: list[Event]) -> Message:
    """The message anthropic-python's stream accumulator builds from these events."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for ev in check_anthropic(events):
        snapshot = accumulate_event(event=ev, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump())


# -- the checks catch what they are for --------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> Event:
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **top,
    }
    return Event(json.dumps(body))


_CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}


def test_openai_check_accepts_a_good_stream() -> None:
    events = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"tool_calls": [_CALL]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        _chunk({}, "tool_calls"),
        Event("[DONE]"),
    ]
    final = openai_final(events, include_usage=False)
    calls = final.choices[0].message.tool_calls
    assert calls and calls[0].id == "call_1" and calls[0].function.name == "f"


@pytest.mark.parametrize(
    "events",
    [
        # the id repeated on a later entry: the accumulator would make "call_1call_1"
        [
            _chunk({"role": "assistant", "tool_calls": [_CALL]}),
            _chunk({"tool_calls": [_CALL]}),
            _chunk({}, "stop"),
            Event("[DONE]"),
        ],
        [_chunk({"role": "assistant"}), _chunk({"role": "assistant"}, "stop"), Event("[DONE]")],
        [_chunk({"role": "assistant"}, "stop"), _chunk({}, "stop"), Event("[DONE]")],
        [_chunk({"role": "assistant"}, "stop")],
        [_chunk({"role": "assistant"}, "stop"), _chunk({}, id="other"), Event("[DONE]")],
        [_chunk({"role": "assistant"}, "stop", usage=None), Event("[DONE]")],
    ],
)
def test_openai_check_rejects(events: list[Event]) -> None:
    with pytest.raises(AssertionError):
        check_openai(events, include_usage=False)


def _an(data: dict[str, Any], name: str | None = None) -> Event:
    return Event(json.dumps(data), name or data["type"])


_START = {
    "type": "message_start",
    "message": {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "x",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    },
}
_TEXT = {"type": "text", "text": ""}
_END = [
    _an(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 1},
        }
    ),
    _an({"type": "message_stop"}),
]


def test_anthropic_check_accepts_a_good_stream() -> None:
    events = [
        _an(_START),
        _an({"type": "content_block_start", "index": 0, "content_block": _TEXT}),
        _an(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi"},
            }
        ),
        _an({"type": "content_block_stop", "index": 0}),
        *_END,
    ]
    assert anthropic_final(events).content[0].model_dump()["text"] == "hi"


@pytest.mark.parametrize(
    "events",
    [
        [_an(_START, "message"), *_END],  # event name differs from data.type
        [_an({"type": "content_block_start", "index": 1, "content_block": _TEXT}), *_END],
        [
            _an(_START),
            _an({"type": "content_block_start", "index": 1, "content_block": _TEXT}),
            _an({"type": "content_block_stop", "index": 1}),
            *_END,
        ],
        [
            _an(_START),
            _an({"type": "content_block_start", "index": 0, "content_block": _TEXT}),
            _an({"type": "content_block_start", "index": 1, "content_block": _TEXT}),
            *_END,
        ],
        [_an(_START), _END[1]],
    ],
)
def test_anthropic_check_rejects(events: list[Event]) -> None:
    with pytest.raises(AssertionError):
        check_anthropic(events)
