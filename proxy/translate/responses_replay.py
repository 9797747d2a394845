"""A whole Responses API response object → the event stream that would have produced it, for
backends configured `stream: false` (the gateway synthesizes SSE); and what the stream core
needs to read a Responses stream (translated or passed through): `verdict` (preamble, commit
or error), `failure_message`, `stream_usage`.

Pure. Invariant: `replay` emits exactly the events a live translated stream emits for the
same output (created, in_progress; per item added / part added / one delta / done events;
one terminal event matching the status), numbered from 0, so a client cannot tell the two
apart; every text arrives as one delta.
"""

from typing import Any, Literal

import msgspec
from msgspec import Struct

from proxy.sse import Event, encode
from schemas import responses as rs

_response = msgspec.json.Decoder(rs.Response)
_encode = msgspec.json.Encoder().encode


class _Numbered:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Any) -> None:
        event.sequence_number = len(self.events)
        self.events.append(Event(_encode(event).decode(), type(event).__struct_config__.tag))


def replay(body: bytes) -> bytes:
    """SSE frames for a response body; raises msgspec.DecodeError if it is not one."""
    return b"".join(encode(e.data, e.event) for e in events(_response.decode(body)))


def events(done: rs.Response) -> list[Event]:
    emit = _Numbered()
    opening = msgspec.structs.replace(
        done, status="in_progress", output=[], usage=None, error=None, incomplete_details=None
    )
    emit(rs.Created(response=opening))
    emit(rs.InProgress(response=opening))
    for index, item in enumerate(done.output):
        _item(emit, index, item)
    terminal = {"completed": rs.Completed, "incomplete": rs.Incomplete, "failed": rs.Failed}
    emit(terminal.get(done.status, rs.Completed)(response=done))
    if done.status == "failed" and done.error is not None:
        message, code = done.error.message, done.error.code
        body = rs.StreamErrorBody(message=message, type="api_error", code=code)
        emit(rs.Error(message=message, code=code, error=body))
    return emit.events


def _item(emit: _Numbered, index: int, item: rs.OutputItem) -> None:
    if isinstance(item, rs.FunctionCall):
        started = msgspec.structs.replace(item, arguments="", status="in_progress")
        emit(rs.ItemAdded(output_index=index, item=started))
        if item.arguments:
            emit(rs.ArgumentsDelta(item_id=item.id, output_index=index, delta=item.arguments))
        emit(
            rs.ArgumentsDone(
                item_id=item.id, output_index=index, arguments=item.arguments, name=item.name
            )
        )
        emit(rs.ItemDone(output_index=index, item=item))
        return
    started_item = msgspec.structs.replace(item, content=[], status="in_progress")
    emit(rs.ItemAdded(output_index=index, item=started_item))
    for k, part in enumerate(item.content):
        where: dict[str, Any] = {"item_id": item.id, "output_index": index, "content_index": k}
        if isinstance(part, rs.OutputText):
            emit(rs.PartAdded(part=rs.OutputText(text=""), **where))
            if part.text:
                emit(rs.TextDelta(delta=part.text, **where))
            emit(rs.TextDone(text=part.text, **where))
        elif isinstance(part, rs.ReasoningText):
            emit(rs.PartAdded(part=rs.ReasoningText(text=""), **where))
            if part.text:
                emit(rs.ReasoningDelta(delta=part.text, **where))
            emit(rs.ReasoningDone(text=part.text, **where))
        else:  # a refusal: the item's done event carries it
            continue
        emit(rs.PartDone(part=part, **where))
    emit(rs.ItemDone(output_index=index, item=item))


class _Usage(Struct):
    input_tokens: int = 0
    output_tokens: int = 0


class _Lifecycle(Struct):
    usage: _Usage | None = None


class _Terminal(Struct):
    response: _Lifecycle


_terminal = msgspec.json.Decoder(_Terminal)
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def stream_usage(event: Event) -> tuple[int, int] | None:
    """(input, output) tokens from a passed-through stream's terminal event, else None. Only
    terminal events are decoded, so a relay can call it on every event it forwards."""
    if event.event not in TERMINAL:
        return None
    try:
        usage = _terminal.decode(event.data).response.usage
    except msgspec.DecodeError:
        return None
    return None if usage is None else (usage.input_tokens, usage.output_tokens)


class _Typed(Struct):
    type: str = ""


class _Detail(Struct):
    message: str = ""


class _Failed(Struct):
    error: _Detail | None = None


class _ErrorEvent(Struct):
    message: str = ""
    error: _Detail | None = None
    response: _Failed | None = None


_typed = msgspec.json.Decoder(_Typed)
_error_event = msgspec.json.Decoder(_ErrorEvent)

# What a Responses stream opens with before any content: held back so a target that fails
# before its first token is replaced invisibly (the stream core's commit rule).
PREAMBLE = frozenset(
    {
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    }
)
FAILURE = frozenset({"error", "response.failed"})
COMPLETE = frozenset({"response.completed", "response.incomplete"})  # a stream's end markers


def kind(event: Event) -> str:
    """The event's type: its `event:` line, else the `type` in its data."""
    if event.event:
        return event.event
    try:
        return _typed.decode(event.data).type
    except msgspec.DecodeError:
        return ""


def verdict(event: Event) -> Literal["hold", "commit", "error"]:
    """Does this Responses event commit the stream, fail it, or belong to the preamble?"""
    if event.data.startswith("[DONE]"):  # some servers end Responses streams the chat way
        return "commit"
    name = kind(event)
    if name in PREAMBLE:
        return "hold"
    if name in FAILURE or not name:  # no type at all: not a Responses event
        return "error"
    return "commit"


def failure_message(event: Event) -> str:
    """The message of an `error` or `response.failed` event (unmasked: the caller scrubs)."""
    try:
        ev = _error_event.decode(event.data)
    except msgspec.DecodeError:
        return "upstream sent malformed stream data"
    failed = ev.response.error if ev.response is not None else None
    return (
        ev.message
        or (ev.error.message if ev.error is not None else "")
        or (failed.message if failed is not None else "")
        or "upstream stream failed"
    )
