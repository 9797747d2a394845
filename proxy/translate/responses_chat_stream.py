"""Chat Completions SSE → Responses API stream events, one upstream event at a time.

Invariants: every event carries `sequence_number`, counting from 0 without gaps; the stream
opens with `response.created` then `response.in_progress` and ends with exactly one terminal
event: `response.completed` (or `response.incomplete` for a `length` / `content_filter`
finish) only after the upstream sent a `finish_reason`, carrying the usage the upstream
reported; anything else — an upstream `{"error": ...}` chunk, an unreadable event, an end
before the finish — gives `response.failed` followed by an `error` event (whose top-level
`error` key makes openai-python raise), never a completed response. Every output item is
`added` before its deltas and `done` before the next item is added (OpenAI's order); a
message item holds one `output_text` part, a reasoning item (from `reasoning_content`) one
`reasoning_text` part; function-call items carry the upstream call id and the concatenated
argument fragments (`{}` when there were none). Item ids derive from the response id, so a
transcript is deterministic. Refusal deltas are not carried (no chat backend streams them).
"""

from typing import Any, Literal

import msgspec
from msgspec import Struct

from proxy.sse import Event
from proxy.translate.common import read_error
from proxy.translate.responses_output import (
    INCOMPLETE,
    finished,
    item_id,
    responses_usage,
    shell,
)
from schemas import openai as oa
from schemas import responses as rs

_encode = msgspec.json.Encoder().encode


class _UpstreamError(Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class _Chunk(Struct):
    """A chat chunk, or the `{"error": ...}` chunk that ends a broken OpenAI stream."""

    choices: list[oa.ChunkChoice] = []
    usage: oa.Usage | None = None
    error: _UpstreamError | None = None


_chunk = msgspec.json.Decoder(_Chunk)


class _Text:
    """The open message (`msg`) or reasoning (`rs`) item: one text part, growing."""

    __slots__ = ("index", "kind", "parts")

    def __init__(self, index: int, kind: Literal["msg", "rs"]) -> None:
        self.index = index
        self.kind = kind
        self.parts: list[str] = []


class _Call:
    __slots__ = ("arguments", "call_id", "index", "name")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index = index
        self.call_id = call_id
        self.name = name
        self.arguments: list[str] = []


class Stream:
    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = True,  # the Responses API always reports usage
        id: str,
        created: int,
        request: rs.Request | None = None,
    ) -> None:
        self._response = shell(request, id=id, created=created, model=model)
        self._seq = 0
        self._started = False
        self._done = False
        self._output: dict[int, rs.OutputItem] = {}  # finished items by output index
        self._text: _Text | None = None
        self._call: _Call | None = None  # the open function call
        self._calls: dict[int, int] = {}  # chat tool-call index → output index
        self._next = 0  # the next output index
        self._finish: str | None = None
        self._usage: rs.Usage | None = None
        self._final: rs.Response | None = None

    @property
    def usage(self) -> tuple[int, int] | None:
        u = self._usage
        return (u.input_tokens, u.output_tokens) if u else None

    @property
    def finish(self) -> str | None:
        """The upstream's chat `finish_reason`, once it came."""
        return self._finish

    @property
    def response(self) -> rs.Response | None:
        """The terminal response object (completed, incomplete or failed), once sent."""
        return self._final

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return []
        if event.data == "[DONE]":
            return self._end()
        try:
            chunk = _chunk.decode(event.data)
        except msgspec.ValidationError:  # an error body of another shape: {"error": "text"}
            up = read_error(500, event.data.encode())
            return self.fail(up.type or "api_error", up.message)
        except msgspec.DecodeError:
            return self.fail("api_error", "upstream sent an event that is not JSON")
        if chunk.error is not None:
            message = chunk.error.message or "upstream stream failed"
            return self.fail(chunk.error.type or "api_error", message)
        out = self._start()
        if chunk.usage is not None:
            self._usage = responses_usage(chunk.usage)
        for choice in chunk.choices:
            if choice.index == 0:
                out += self._delta(choice.delta)
                if choice.finish_reason and self._finish is None:
                    self._finish = choice.finish_reason
                    out += self._close_items()
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        if self._finish is None:
            return self.fail("api_error", "upstream stream ended before the response was complete")
        return self._end()

    # -- building blocks ------------------------------------------------------------------------

    def _emit(self, event: Any) -> Event:
        event.sequence_number = self._seq
        self._seq += 1
        data = _encode(event).decode()
        return Event(data, type(event).__struct_config__.tag)

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [
            self._emit(rs.Created(response=self._response)),
            self._emit(rs.InProgress(response=self._response)),
        ]

    def _delta(self, delta: oa.Delta) -> list[Event]:
        out: list[Event] = []
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            out += self._text_delta("rs", reasoning)
        if delta.content:
            out += self._text_delta("msg", delta.content)
        for call in delta.tool_calls or ():
            out += self._call_delta(call)
        return out  # refusal deltas have no place in a translated stream yet

    def _text_delta(self, kind: Literal["msg", "rs"], text: str) -> list[Event]:
        out: list[Event] = []
        if self._text is not None and self._text.kind != kind:
            out += self._close_text()
        if self._text is None:
            out += self._close_call()
            self._text = _Text(self._take_index(), kind)
            ident = item_id(self._response.id, kind, self._text.index)
            where = (ident, self._text.index)
            empty = rs.OutputText(text="") if kind == "msg" else rs.ReasoningText(text="")
            item = self._text_item(self._text, "in_progress")
            out.append(self._emit(rs.ItemAdded(output_index=self._text.index, item=item)))
            out.append(
                self._emit(
                    rs.PartAdded(
                        part=empty, item_id=where[0], output_index=where[1], content_index=0
                    )
                )
            )
        t = self._text
        t.parts.append(text)
        ident = item_id(self._response.id, kind, t.index)
        where = (ident, t.index)
        delta = rs.TextDelta if kind == "msg" else rs.ReasoningDelta
        out.append(
            self._emit(delta(delta=text, item_id=where[0], output_index=where[1], content_index=0))
        )
        return out

    def _text_item(self, t: _Text, status: rs.Status) -> rs.OutputMessage | rs.ReasoningItem:
        """The item as it stands: no content while in progress, its whole text after."""
        ident = item_id(self._response.id, t.kind, t.index)
        text = "".join(t.parts)
        if t.kind == "rs":
            parts = [rs.ReasoningText(text=text)] if status != "in_progress" else []
            return rs.ReasoningItem(id=ident, status=status, content=parts)
        content = [rs.OutputText(text=text)] if status != "in_progress" else []
        return rs.OutputMessage(id=ident, status=status, content=list(content))

    def _call_delta(self, call: oa.ChunkToolCall) -> list[Event]:
        fragment = call.function.arguments if call.function else None
        index = self._calls.get(call.index)
        out: list[Event] = []
        if index is None:
            out += self._close_text() + self._close_call()
            index = self._calls[call.index] = self._take_index()
            name = (call.function.name if call.function else None) or ""
            opened = self._call = _Call(
                index, call.id or item_id(self._response.id, "call", index), name
            )
            out.append(
                self._emit(
                    rs.ItemAdded(
                        output_index=index,
                        item=self._call_item(opened, "in_progress"),
                    )
                )
            )
        c = self._call
        if c is None or c.index != index:
            # A fragment for a call already closed: some servers interleave parallel calls.
            # Its item is done and cannot take more; say so rather than hand out bad JSON.
            return out + self.fail("api_error", "upstream interleaved tool call arguments")
        if fragment:
            c.arguments.append(fragment)
            ident = item_id(self._response.id, "fc", index)
            out.append(
                self._emit(rs.ArgumentsDelta(item_id=ident, output_index=index, delta=fragment))
            )
        return out

    def _take_index(self) -> int:
        self._next += 1
        return self._next - 1

    def _call_item(self, c: _Call, status: rs.Status) -> rs.FunctionCall:
        return rs.FunctionCall(
            id=item_id(self._response.id, "fc", c.index),
            call_id=c.call_id,
            name=c.name,
            arguments="".join(c.arguments),
            status=status,
        )

    def _item_status(self) -> rs.Status:
        return "incomplete" if self._finish in INCOMPLETE else "completed"

    def _close_text(self) -> list[Event]:
        t = self._text
        if t is None:
            return []
        self._text = None
        item = self._text_item(t, self._item_status())
        self._output[t.index] = item
        text = "".join(t.parts)
        where = (item.id, t.index)
        if t.kind == "msg":
            done: Any = rs.TextDone(
                text=text, item_id=where[0], output_index=where[1], content_index=0
            )
            part: rs.OutputText | rs.ReasoningText = rs.OutputText(text=text)
        else:
            done, part = (
                rs.ReasoningDone(
                    text=text, item_id=where[0], output_index=where[1], content_index=0
                ),
                rs.ReasoningText(text=text),
            )
        return [
            self._emit(done),
            self._emit(
                rs.PartDone(part=part, item_id=where[0], output_index=where[1], content_index=0)
            ),
            self._emit(rs.ItemDone(output_index=t.index, item=item)),
        ]

    def _close_call(self) -> list[Event]:
        c = self._call
        if c is None:
            return []
        self._call = None
        if not c.arguments:  # a tool without parameters: clients still parse a JSON document
            c.arguments.append("{}")
        item = self._call_item(c, self._item_status())
        self._output[c.index] = item
        return [
            self._emit(
                rs.ArgumentsDone(
                    item_id=item.id,
                    output_index=c.index,
                    arguments=item.arguments,
                    name=item.name,
                )
            ),
            self._emit(rs.ItemDone(output_index=c.index, item=item)),
        ]

    def _close_items(self) -> list[Event]:
        return self._close_text() + self._close_call()

    def _items(self) -> list[rs.OutputItem]:
        return [self._output[i] for i in sorted(self._output)]

    def _end(self) -> list[Event]:
        if self._finish is None:
            return self.fail("api_error", "upstream stream ended before the response was complete")
        out = self._start() + self._close_items()
        final = finished(self._response, self._finish, self._usage, self._items())
        self._final = final
        self._done = True
        kind = rs.Incomplete if final.status == "incomplete" else rs.Completed
        return [*out, self._emit(kind(response=final))]

    def fail(self, kind: str, message: str) -> list[Event]:
        """End the stream as failed, for the gateway's own reasons too (an upstream reset or
        idle timeout after commit): the client gets `response.failed` + `error`, never a
        silent end. Nothing more once the stream is done."""
        if self._done:
            return []
        out = self._start()
        self._done = True
        code = "rate_limit_exceeded" if kind == "rate_limit_error" else "server_error"
        partial = self._items()
        if self._text is not None:
            partial.append(self._text_item(self._text, "incomplete"))
        if self._call is not None:
            partial.append(self._call_item(self._call, "incomplete"))
        final = msgspec.structs.replace(
            self._response,
            status="failed",
            output=partial,
            error=rs.ErrorDetail(code=code, message=message),
            usage=self._usage,
        )
        self._final = final
        body = rs.StreamErrorBody(message=message, type=kind, code=code)
        return [
            *out,
            self._emit(rs.Failed(response=final)),
            self._emit(rs.Error(message=message, code=code, error=body)),
        ]
