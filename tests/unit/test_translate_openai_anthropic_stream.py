"""OpenAI client → Anthropic backend, streaming (`proxy.translate.openai_anthropic.Stream`):
Anthropic SSE events in, OpenAI chunks out, checked with openai-python's own accumulator."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import Event
from proxy.translate import openai_anthropic
from tests.unit.test_translate_conformance import check_openai, openai_final
from tests.unit.test_translate_openai_anthropic import json_objects, names, texts


def ev(data: dict[str, Any]) -> Event:
    return Event(json.dumps(data), data["type"])


def start(input_tokens: int = 7) -> Event:
    return ev(
        {
            "type": "message_start",
            "message": {
                "id": "msg_x",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            },
        }
    )


def block(index: int, content_block: dict[str, Any]) -> Event:
    return ev({"type": "content_block_start", "index": index, "content_block": content_block})


def delta(index: int, d: dict[str, Any]) -> Event:
    return ev({"type": "content_block_delta", "index": index, "delta": d})


def stop(index: int) -> Event:
    return ev({"type": "content_block_stop", "index": index})


def finish(reason: str, output_tokens: int = 9) -> list[Event]:
    return [
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        ),
        ev({"type": "message_stop"}),
    ]


def run(
    events: list[Event], include_usage: bool = True
) -> tuple[list[Event], openai_anthropic.Stream]:
    s = openai_anthropic.Stream("alias", include_usage=include_usage, id="chatcmpl-1", created=5)
    out = [o for e in events for o in s.feed(e)]
    return out + s.close(), s


def fragments(data: st.DataObject, text: str) -> list[str]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(
    st.lists(st.tuples(names, json_objects), min_size=1, max_size=4),
    st.none() | texts,
    st.booleans(),
    st.data(),
)
def test_parallel_tool_call_fragments_reassemble(
    calls: list[tuple[str, dict[str, Any]]],
    text: str | None,
    include_usage: bool,
    data: st.DataObject,
) -> None:
    events = [start()]
    index = 0
    if text is not None:
        events += [
            block(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": text}),
            stop(0),
        ]
        index = 1
    for k, (name, arguments) in enumerate(calls):
        events.append(
            block(index, {"type": "tool_use", "id": f"toolu_{k}", "name": name, "input": {}})
        )
        for piece in ["", *fragments(data, json.dumps(arguments))]:
            events.append(delta(index, {"type": "input_json_delta", "partial_json": piece}))
        events.append(stop(index))
        index += 1
    out, s = run([*events, *finish("tool_use")], include_usage)
    final = openai_final(out, include_usage=include_usage)  # openai-python's own accumulator
    message = final.choices[0].message
    got = [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()
    ]
    assert got == [(f"toolu_{k}", name, arguments) for k, (name, arguments) in enumerate(calls)]
    assert (message.content or None) == text  # the first delta carries content: ""
    assert final.choices[0].finish_reason == "tool_calls" and s.finish == "tool_calls"
    assert s.usage == (7, 9)


def test_without_include_usage_no_chunk_has_usage() -> None:
    out, _ = run(
        [start(), block(0, {"type": "text", "text": "hi"}), stop(0), *finish("end_turn")], False
    )
    check_openai(out, include_usage=False)
    assert all("usage" not in json.loads(e.data) for e in out[:-1])


def test_usage_counts_cache_and_takes_message_delta_input() -> None:
    begin = start(0)
    late = ev(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {
                "input_tokens": 4,
                "cache_read_input_tokens": 6,
                "cache_creation_input_tokens": 2,
                "output_tokens": 3,
            },
        }
    )
    out, s = run([begin, late, ev({"type": "message_stop"})])
    assert s.usage == (12, 3)
    assert json.loads(out[-2].data)["usage"]["prompt_tokens_details"] == {"cached_tokens": 6}


def test_error_event_ends_the_stream_without_done() -> None:
    s = openai_anthropic.Stream("alias", include_usage=True, id="c", created=0)
    s.feed(start())
    err = s.feed(
        ev({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    assert [json.loads(e.data) for e in err] == [
        {
            "error": {
                "message": "Overloaded",
                "type": "overloaded_error",
                "param": None,
                "code": None,
            }
        }
    ]
    assert s.feed(block(0, {"type": "text", "text": "late"})) == [] and s.close() == []


@pytest.mark.parametrize(
    "events",
    [
        [start(), block(0, {"type": "text", "text": ""})],  # cut off before message_delta
        [start(), Event("{not json", "content_block_delta")],
    ],
)
def test_truncated_or_garbled_upstream_is_an_error_not_a_clean_end(events: list[Event]) -> None:
    out, s = run(events)
    assert "error" in json.loads(out[-1].data) and "[DONE]" not in [e.data for e in out]
    assert s.finish is None


def test_unknown_blocks_events_and_deltas_are_skipped() -> None:
    events = [
        start(),
        block(0, {"type": "mystery_block", "payload": 1}),
        delta(0, {"type": "text_delta", "text": "hidden"}),
        stop(0),
        ev({"type": "future_event", "x": 1}),
        block(1, {"type": "text", "text": ""}),
        delta(1, {"type": "future_delta", "y": 2}),
        delta(1, {"type": "text_delta", "text": "shown"}),
        delta(1, {"type": "citations_delta", "citation": {"type": "char_location"}}),
        stop(1),
        *finish("end_turn"),
    ]
    out, _ = run(events)
    assert openai_final(out).choices[0].message.content == "shown"


def test_message_stop_without_message_delta_still_finishes_once() -> None:
    out, s = run([start(), ev({"type": "message_stop"})])
    check_openai(out, include_usage=True)
    assert s.finish == "stop"
