"""Anthropic Messages SSE → OpenAI `chat.completion.chunk` SSE, one upstream event at a time.

Invariants (WIRE.md §8): every chunk has the same `id`, `created` and `model`; `role` is in the
first delta only; a tool call's `id`, `type` and `name` are in its first entry only, later
entries carry `index` and an `arguments` fragment; `finish_reason` is sent once; with
`include_usage` every chunk has `usage: null` and exactly one `choices: []` usage chunk comes
before `[DONE]`, without it no chunk has `usage`. An upstream `error` event becomes one
`data: {"error": ...}` chunk and ends the stream (no `[DONE]`); so does an upstream that ends
before `message_delta`. Anthropic block kinds this code does not know are skipped.
"""

from typing import Literal

import msgspec
from msgspec import UNSET, Struct

from proxy.sse import Event
from proxy.translate.common import openai_finish
from schemas import anthropic as an
from schemas import openai as oa

_event = msgspec.json.Decoder(an.StreamEvent)
_encode = msgspec.json.Encoder().encode


class _Peek(Struct):
    """What is left to read of an event the typed decoder refused (a newer block or event)."""

    type: str = ""
    index: int | None = None


_peek = msgspec.json.Decoder(_Peek)

_Kind = Literal["text", "thinking", "skip"] | int  # int: the OpenAI tool-call index


def openai_usage(usage: an.Usage) -> oa.Usage:
    """Anthropic usage → OpenAI: prompt_tokens is every input token, cached ones included."""
    cached = usage.cache_read_input_tokens or 0
    prompt = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + cached
    return oa.Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=oa.PromptTokensDetails(cached_tokens=cached),
    )


class Stream:
    def __init__(self, model: str, *, include_usage: bool, id: str, created: int) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = id
        self._created = created
        self._blocks: dict[int, _Kind] = {}
        self._tools = 0  # OpenAI tool-call indices handed out
        self._usage = an.Usage()
        self._usage_known = False
        self._started = False
        self._args_sent: set[int] = set()  # tool indexes that have sent argument text
        self._finish: str | None = None
        self._done = False

    @property
    def usage(self) -> tuple[int, int] | None:
        if not self._usage_known:
            return None
        u = openai_usage(self._usage)
        return u.prompt_tokens, u.completion_tokens

    @property
    def finish(self) -> str | None:
        return self._finish

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return []
        try:
            ev = _event.decode(event.data)
        except msgspec.ValidationError:
            return self._unknown(event.data)
        except msgspec.DecodeError:
            return self._fail("api_error", "upstream sent an event that is not JSON")
        if isinstance(ev, an.MessageStart):
            self._usage = ev.message.usage
            self._usage_known = True
            return self._start()
        if isinstance(ev, an.ContentBlockStart):
            return self._block_start(ev.index, ev.content_block)
        if isinstance(ev, an.ContentBlockDelta):
            return self._delta(ev.index, ev.delta)
        if isinstance(ev, an.MessageDelta):
            return self._message_delta(ev)
        if isinstance(ev, an.MessageStop):
            return self._end()
        if isinstance(ev, an.ErrorEnvelope):
            return self._fail(ev.error.type, ev.error.message)
        if isinstance(ev, an.ContentBlockStop):
            return self._block_stop(ev.index)
        return []  # ping

    def close(self) -> list[Event]:
        if self._done:
            return []
        if self._finish is None:
            return self._fail("api_error", "upstream stream ended before the response was complete")
        return self._end()

    def _unknown(self, data: str) -> list[Event]:
        try:
            peek = _peek.decode(data)
        except msgspec.DecodeError:
            return self._fail("api_error", "upstream sent an event this gateway cannot read")
        if peek.type == "content_block_start" and peek.index is not None:
            self._blocks[peek.index] = "skip"
        return []

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [self._chunk(oa.Delta(role="assistant", content=""))]

    def _block_start(self, index: int, block: an.ContentBlock) -> list[Event]:
        out = self._start()
        if isinstance(block, an.TextBlock):
            self._blocks[index] = "text"
            if block.text:
                out.append(self._chunk(oa.Delta(content=block.text)))
        elif isinstance(block, an.ThinkingBlock):
            self._blocks[index] = "thinking"
            if block.thinking:
                out.append(self._chunk(oa.Delta(reasoning_content=block.thinking)))
        elif isinstance(block, an.ToolUseBlock):
            self._blocks[index] = tool = self._tools
            self._tools += 1
            arguments = _encode(block.input).decode() if block.input else ""
            if arguments:
                self._args_sent.add(tool)
            call = oa.ChunkToolCall(
                index=tool,
                id=block.id,
                type="function",
                function=oa.ChunkFunction(name=block.name, arguments=arguments),
            )
            out.append(self._chunk(oa.Delta(tool_calls=[call])))
        else:
            self._blocks[index] = "skip"
        return out

    def _delta(self, index: int, delta: an.BlockDelta) -> list[Event]:
        kind = self._blocks.get(index, "skip")
        if isinstance(delta, an.TextDelta) and kind == "text" and delta.text:
            return [self._chunk(oa.Delta(content=delta.text))]
        if isinstance(delta, an.ThinkingDelta) and kind == "thinking" and delta.thinking:
            return [self._chunk(oa.Delta(reasoning_content=delta.thinking))]
        if isinstance(delta, an.InputJSONDelta) and isinstance(kind, int) and delta.partial_json:
            self._args_sent.add(kind)
            fragment = oa.ChunkFunction(arguments=delta.partial_json)
            return [self._chunk(oa.Delta(tool_calls=[oa.ChunkToolCall(kind, function=fragment)]))]
        return []  # signature and citation deltas have no OpenAI counterpart

    def _block_stop(self, index: int) -> list[Event]:
        # A tool that takes no arguments streams `partial_json: ""`: clients must still get
        # a JSON document, as the non-streaming path gives them ("{}").
        kind = self._blocks.get(index, "skip")
        if isinstance(kind, int) and kind not in self._args_sent:
            self._args_sent.add(kind)
            fragment = oa.ChunkFunction(arguments="{}")
            return [self._chunk(oa.Delta(tool_calls=[oa.ChunkToolCall(kind, function=fragment)]))]
        return []

    def _message_delta(self, ev: an.MessageDelta) -> list[Event]:
        u = ev.usage
        self._usage.output_tokens = u.output_tokens
        if u.input_tokens is not None:  # cumulative: replaces, like the SDK does
            self._usage.input_tokens = u.input_tokens
        if u.cache_creation_input_tokens is not None:
            self._usage.cache_creation_input_tokens = u.cache_creation_input_tokens
        if u.cache_read_input_tokens is not None:
            self._usage.cache_read_input_tokens = u.cache_read_input_tokens
        self._usage_known = True
        if self._finish is not None:
            return []
        self._finish = openai_finish(ev.delta.stop_reason or "end_turn")
        return [*self._start(), self._chunk(oa.Delta(), self._finish)]

    def _end(self) -> list[Event]:
        out = self._start()
        if self._finish is None:  # message_stop without message_delta: still finish once
            self._finish = "stop"
            out.append(self._chunk(oa.Delta(), self._finish))
        if self._include_usage:
            last = oa.ChatCompletionChunk(
                id=self._id,
                created=self._created,
                model=self._model,
                choices=[],
                usage=openai_usage(self._usage),
            )
            out.append(Event(_encode(last).decode()))
        out.append(Event("[DONE]"))
        self._done = True
        return out

    def _chunk(self, delta: oa.Delta, finish: str | None = None) -> Event:
        chunk = oa.ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=[oa.ChunkChoice(delta=delta, finish_reason=finish)],
            usage=None if self._include_usage else UNSET,
        )
        return Event(_encode(chunk).decode())

    def _fail(self, kind: str, message: str) -> list[Event]:
        self._done = True
        body = oa.ErrorEnvelope(oa.ErrorBody(message=message, type=kind))
        return [Event(_encode(body).decode())]
