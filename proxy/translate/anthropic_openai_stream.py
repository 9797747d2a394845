"""OpenAI `chat.completion.chunk` SSE → Anthropic Messages SSE, one upstream event at a time.

Invariants (WIRE.md §8): every event's `event:` name equals its `data.type`; the order is
`message_start` (`stop_reason` null) → per block `content_block_start` → deltas →
`content_block_stop`, with block indices 0, 1, 2 … → `message_delta` (stop reason and
cumulative usage) → `message_stop`. Reasoning, text and each tool call index become separate
blocks: a block is stopped before the next one starts. `message_delta` waits for `[DONE]`
(or a clean end after a finish) because the usage chunk comes after the finish. An upstream
`{"error": ...}` becomes `event: error` and ends the stream; so does an end before a finish.
"""

from typing import Any, Literal

import msgspec

from proxy.sse import Event
from proxy.translate.common import ANTHROPIC_ERROR_TYPES, anthropic_stop, read_error
from schemas import anthropic as an
from schemas import openai as oa


class _Chunk(oa.ChatCompletionChunk):
    error: Any = None  # `data: {"error": ...}` mid-stream; any shape: a decode boundary


_chunk = msgspec.json.Decoder(_Chunk)
_encode = msgspec.json.Encoder().encode

_Open = tuple[Literal["text", "thinking", "tool"], int]


def anthropic_usage(usage: oa.Usage) -> an.Usage:
    """OpenAI usage → Anthropic: input_tokens are the uncached ones."""
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details else 0
    return an.Usage(
        input_tokens=max(usage.prompt_tokens - cached, 0),
        output_tokens=usage.completion_tokens,
        cache_creation_input_tokens=0,  # OpenAI does not report cache writes
        cache_read_input_tokens=cached,
    )


class Stream:
    def __init__(self, model: str, *, include_usage: bool, id: str, created: int) -> None:
        # include_usage/created have no Anthropic counterpart: its stream always has usage
        self._model = model
        self._id = id
        self._started = False
        self._next = 0  # next block index
        self._open: _Open | None = None
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._finish_reason: str | None = None
        self._usage: oa.Usage | None = None
        self._done = False

    @property
    def usage(self) -> tuple[int, int] | None:
        u = self._usage
        return None if u is None else (u.prompt_tokens, u.completion_tokens)

    @property
    def finish(self) -> str | None:
        return None if self._finish_reason is None else anthropic_stop(self._finish_reason)

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return []
        if event.data.startswith("[DONE]"):
            return self._end()
        try:
            chunk = _chunk.decode(event.data)
        except msgspec.DecodeError:
            return self._fail("api_error", "upstream sent a chunk this gateway cannot read")
        if chunk.error is not None:
            up = read_error(500, _encode({"error": chunk.error}))
            kind = up.type if up.type in ANTHROPIC_ERROR_TYPES else "api_error"
            return self._fail(kind, up.message)
        out = self._start(chunk.usage or None)
        if chunk.usage:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index == 0:  # Anthropic has one message; n>1 is never requested
                out.extend(self._choice(choice))
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        if self._finish_reason is None:
            return self._fail("api_error", "upstream stream ended before the response was complete")
        return self._end()

    def _choice(self, choice: oa.ChunkChoice) -> list[Event]:
        out: list[Event] = []
        d = choice.delta
        reasoning = d.reasoning_content or d.reasoning
        if reasoning:
            out += self._block("thinking")
            out.append(self._delta(an.ThinkingDelta(thinking=reasoning)))
        for text in (d.content, d.refusal):
            if text:
                out += self._block("text")
                out.append(self._delta(an.TextDelta(text=text)))
        for call in d.tool_calls or ():
            out += self._tool_call(call)
        if choice.finish_reason:
            self._finish_reason = choice.finish_reason
        return out

    def _tool_call(self, call: oa.ChunkToolCall) -> list[Event]:
        out: list[Event] = []
        index = self._tools.get(call.index)
        fn = call.function
        if index is None:  # first entry for this call: id and name, ignored if repeated later
            out += self._close()
            index = self._tools[call.index] = self._next
            self._next += 1
            self._open = ("tool", index)
            block = an.ToolUseBlock(
                id=call.id or f"toolu_{self._id}_{call.index}",
                name=(fn.name or "") if fn else "",
                input={},
            )
            out.append(_event(an.ContentBlockStart(index=index, content_block=block)))
        if fn and fn.arguments:
            # A fragment for an earlier, already stopped call (interleaved upstream) still goes
            # to that call's block: the SDK accumulates by index, and nothing is lost.
            delta = an.InputJSONDelta(partial_json=fn.arguments)
            out.append(_event(an.ContentBlockDelta(index=index, delta=delta)))
        return out

    def _start(self, usage: oa.Usage | None = None) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message = an.Message(
            id=self._id,
            model=self._model,
            usage=anthropic_usage(usage or oa.Usage()),
        )
        return [_event(an.MessageStart(message=message))]

    def _block(self, kind: Literal["text", "thinking"]) -> list[Event]:
        if self._open is not None and self._open[0] == kind:
            return []
        out = self._close()
        index = self._next
        self._next += 1
        self._open = (kind, index)
        block = an.TextBlock(text="") if kind == "text" else an.ThinkingBlock()
        out.append(_event(an.ContentBlockStart(index=index, content_block=block)))
        return out

    def _delta(self, delta: an.TextDelta | an.ThinkingDelta) -> Event:
        assert self._open is not None
        return _event(an.ContentBlockDelta(index=self._open[1], delta=delta))

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index = self._open[1]
        self._open = None
        return [_event(an.ContentBlockStop(index=index))]

    def _end(self) -> list[Event]:
        out = self._start() + self._close()
        if self._usage is not None:
            u = anthropic_usage(self._usage)
            usage = an.DeltaUsage(
                output_tokens=u.output_tokens,
                input_tokens=u.input_tokens,
                cache_creation_input_tokens=u.cache_creation_input_tokens,
                cache_read_input_tokens=u.cache_read_input_tokens,
            )
        else:
            usage = an.DeltaUsage(output_tokens=0)
        stop = self.finish or "end_turn"
        out.append(
            _event(an.MessageDelta(delta=an.MessageDeltaBody(stop_reason=stop), usage=usage))
        )
        out.append(_event(an.MessageStop()))
        self._done = True
        return out

    def _fail(self, kind: str, message: str) -> list[Event]:
        self._done = True
        return [_event(an.ErrorEnvelope(an.ErrorBody(type=kind, message=message)))]


def _event(ev: an.StreamEvent) -> Event:
    return Event(_encode(ev).decode(), str(ev.__struct_config__.tag))
