"""Chat Completions SSE → Responses API stream events, one upstream event at a time.

Invariants: every event carries `sequence_number`, counting from 0 without gaps; the stream
opens with `response.created` then `response.in_progress` and ends with exactly one terminal
event: `response.completed` (or `response.incomplete` for a `length` / `content_filter`
finish) only after the upstream sent a `finish_reason`, carrying the usage the upstream
reported; anything else — an upstream `{"error": ...}` chunk, an unreadable event, an end
before the finish — gives `response.failed` followed by an `error` event (whose top-level
`error` key makes openai-python raise), never a completed response. Every output item is
`added` before its deltas and `done` before the terminal event; a message item holds one
`output_text` part; function-call items carry the upstream call id and the concatenated
argument fragments. Item ids derive from the response id, so a transcript is deterministic.
"""

from typing import Any

import msgspec
from msgspec import Struct

from proxy.sse import Event
from proxy.translate import read_error
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

_INCOMPLETE: dict[str, Any] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def responses_usage(usage: oa.Usage) -> rs.Usage:
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    details = usage.completion_tokens_details
    return rs.Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        input_tokens_details=rs.InputTokensDetails(cached_tokens=cached),
        output_tokens_details=rs.OutputTokensDetails(
            reasoning_tokens=details.reasoning_tokens if details else 0
        ),
    )


def shell(request: rs.Request | None, *, id: str, created: int, model: str) -> rs.Response:
    """The response object before any output: what the request asked for, echoed back."""
    if request is None:
        return rs.Response(id=id, created_at=created, status="in_progress", model=model)
    text = request.text if request.text and request.text.format else None
    return rs.Response(
        id=id,
        created_at=created,
        status="in_progress",
        model=model,
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        metadata=request.metadata or {},
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        reasoning=request.reasoning,
        store=request.store is not False,
        temperature=request.temperature,
        text=text or rs.TextConfig(format=rs.TextFormat(type="text")),
        tool_choice=request.tool_choice or "auto",
        tools=request.tools or [],
        top_p=request.top_p,
        user=request.user,
    )


def item_id(response_id: str, kind: str, output_index: int) -> str:
    """`msg_…` / `fc_…` ids for the items of one response, unique within it."""
    base = response_id.removeprefix("resp_") or "0"
    return f"{kind}_{base}_{output_index}"


def finished(
    response: rs.Response, finish: str, usage: rs.Usage | None, output: list[rs.OutputItem]
) -> rs.Response:
    """The terminal response object for a chat `finish_reason`."""
    reason = _INCOMPLETE.get(finish)
    return msgspec.structs.replace(
        response,
        status="incomplete" if reason else "completed",
        incomplete_details=rs.IncompleteDetails(reason=reason) if reason else None,
        output=output,
        usage=usage,
    )


class _Text:
    __slots__ = ("index", "parts")

    def __init__(self, index: int) -> None:
        self.index = index
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
            return self._fail(up.type or "api_error", up.message)
        except msgspec.DecodeError:
            return self._fail("api_error", "upstream sent an event that is not JSON")
        if chunk.error is not None:
            message = chunk.error.message or "upstream stream failed"
            return self._fail(chunk.error.type or "api_error", message)
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
            return self._fail("api_error", "upstream stream ended before the response was complete")
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
            self._emit(rs.Created(sequence_number=0, response=self._response)),
            self._emit(rs.InProgress(sequence_number=0, response=self._response)),
        ]

    def _delta(self, delta: oa.Delta) -> list[Event]:
        out: list[Event] = []
        if delta.content:
            out += self._text_delta(delta.content)
        for call in delta.tool_calls or ():
            out += self._call_delta(call)
        return out  # reasoning and refusal deltas have no place in a translated stream yet

    def _text_delta(self, text: str) -> list[Event]:
        out: list[Event] = []
        if self._text is None:
            out += self._close_call()
            index = self._take_index()
            self._text = _Text(index)
            ident = item_id(self._response.id, "msg", index)
            out.append(
                self._emit(
                    rs.ItemAdded(
                        sequence_number=0,
                        output_index=index,
                        item=rs.OutputMessage(id=ident, status="in_progress"),
                    )
                )
            )
            out.append(
                self._emit(
                    rs.PartAdded(
                        sequence_number=0,
                        item_id=ident,
                        output_index=index,
                        content_index=0,
                        part=rs.OutputText(text=""),
                    )
                )
            )
        t = self._text
        t.parts.append(text)
        ident = item_id(self._response.id, "msg", t.index)
        out.append(
            self._emit(
                rs.TextDelta(
                    sequence_number=0,
                    item_id=ident,
                    output_index=t.index,
                    content_index=0,
                    delta=text,
                )
            )
        )
        return out

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
                        sequence_number=0,
                        output_index=index,
                        item=self._call_item(opened, "in_progress"),
                    )
                )
            )
        c = self._call
        if c is None or c.index != index:
            # A fragment for a call already closed: some servers interleave parallel calls.
            # Its item is done and cannot take more; say so rather than hand out bad JSON.
            return out + self._fail("api_error", "upstream interleaved tool call arguments")
        if fragment:
            c.arguments.append(fragment)
            ident = item_id(self._response.id, "fc", index)
            out.append(
                self._emit(
                    rs.ArgumentsDelta(
                        sequence_number=0, item_id=ident, output_index=index, delta=fragment
                    )
                )
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
        return "incomplete" if self._finish in _INCOMPLETE else "completed"

    def _close_text(self) -> list[Event]:
        t = self._text
        if t is None:
            return []
        self._text = None
        ident = item_id(self._response.id, "msg", t.index)
        part = rs.OutputText(text="".join(t.parts))
        item = rs.OutputMessage(id=ident, status=self._item_status(), content=[part])
        self._output[t.index] = item
        i = t.index
        return [
            self._emit(
                rs.TextDone(
                    sequence_number=0,
                    item_id=ident,
                    output_index=i,
                    content_index=0,
                    text=part.text,
                )
            ),
            self._emit(
                rs.PartDone(
                    sequence_number=0, item_id=ident, output_index=i, content_index=0, part=part
                )
            ),
            self._emit(rs.ItemDone(sequence_number=0, output_index=t.index, item=item)),
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
                    sequence_number=0,
                    item_id=item.id,
                    output_index=c.index,
                    arguments=item.arguments,
                    name=item.name,
                )
            ),
            self._emit(rs.ItemDone(sequence_number=0, output_index=c.index, item=item)),
        ]

    def _close_items(self) -> list[Event]:
        return self._close_text() + self._close_call()

    def _items(self) -> list[rs.OutputItem]:
        return [self._output[i] for i in sorted(self._output)]

    def _end(self) -> list[Event]:
        if self._finish is None:
            return self._fail("api_error", "upstream stream ended before the response was complete")
        out = self._start() + self._close_items()
        final = finished(self._response, self._finish, self._usage, self._items())
        self._final = final
        self._done = True
        kind = rs.Incomplete if final.status == "incomplete" else rs.Completed
        return [*out, self._emit(kind(sequence_number=0, response=final))]

    def _fail(self, kind: str, message: str) -> list[Event]:
        out = self._start()
        self._done = True
        code = "rate_limit_exceeded" if kind == "rate_limit_error" else "server_error"
        partial = self._items()
        if self._text is not None:
            ident = item_id(self._response.id, "msg", self._text.index)
            text = rs.OutputText(text="".join(self._text.parts))
            partial.append(rs.OutputMessage(id=ident, status="incomplete", content=[text]))
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
            self._emit(rs.Failed(sequence_number=0, response=final)),
            self._emit(rs.Error(sequence_number=0, message=message, code=code, error=body)),
        ]
