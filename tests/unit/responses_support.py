"""Client-side checks for translated Responses API streams, shared by the responses tests.

`check_responses` validates every frame against openai-python's own `ResponseStreamEvent`
types and asserts the stream invariants the SDK's accumulator does not (event name = `type`,
`sequence_number` 0..n-1, created/in_progress first, exactly one terminal event, failure =
`response.failed` then `error`). `responses_final` reassembles a complete stream with the SDK's
`ResponseStreamState` (offline) and returns what `get_final_response()` would; `translate` runs
any translator's Stream over upstream bytes.
"""

import json
from typing import Any, get_args

from openai import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import ParsedResponse, ResponseStreamEvent

from proxy.sse import Decoder, Event

# The SDK's union is discriminated by `type` through its own machinery, not pydantic's: pick
# the member class by `type` and validate strictly against that one.
_MODELS: dict[str, Any] = {
    get_args(m.model_fields["type"].annotation)[0]: m
    for m in get_args(get_args(ResponseStreamEvent)[0])
}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def check_responses(events: list[Event]) -> list[ResponseStreamEvent]:
    assert events, "a Responses stream is never empty"
    parsed = []
    for n, e in enumerate(events):
        data = json.loads(e.data)
        assert e.event == data["type"], "the event: line names the event's type"
        assert data["sequence_number"] == n, "sequence numbers count from 0 without gaps"
        parsed.append(_MODELS[data["type"]].model_validate(data))
    kinds = [e.event for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    ends = [k for k in kinds if k in TERMINAL]
    assert len(ends) == 1, f"exactly one terminal event, got {ends}"
    if ends[0] == "response.failed":
        assert kinds[-2:] == ["response.failed", "error"], "a failure ends failed + error"
        error = json.loads(events[-1].data)
        assert error["error"]["message"] == error["message"], "the SDK raises on `error`"
    else:
        assert kinds[-1] == ends[0]
        added = [_index(e) for e in events if e.event == "response.output_item.added"]
        done = [_index(e) for e in events if e.event == "response.output_item.done"]
        assert sorted(added) == sorted(done) == list(range(len(added))), "every item done"
    lifecycle = ("response.created", "response.in_progress", *TERMINAL)
    ids = {json.loads(e.data)["response"]["id"] for e in events if e.event in lifecycle}
    assert len(ids) == 1, "one response id throughout"
    return parsed


def _index(event: Event) -> int:
    found: int = json.loads(event.data)["output_index"]
    return found


def responses_final(events: list[Event]) -> ParsedResponse[Any]:
    """The SDK's final response for a completed (or incomplete) stream."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    final = None
    for event in check_responses(events):
        for out in state.handle_event(event):
            if out.type in ("response.completed", "response.incomplete"):
                final = out.response
    assert final is not None, "the stream did not complete"
    return final  # type: ignore[return-value]


def terminal(events: list[Event]) -> dict[str, Any]:
    """The response object of the terminal event."""
    for e in events:
        if e.event in TERMINAL:
            found: dict[str, Any] = json.loads(e.data)["response"]
            return found
    raise AssertionError("no terminal event")


def translate(stream: Any, chunks: list[bytes]) -> list[Event]:
    decoder = Decoder()
    out: list[Event] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            out += stream.feed(event)
    return out + stream.close()
