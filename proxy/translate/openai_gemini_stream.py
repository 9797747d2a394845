"""Gemini `streamGenerateContent?alt=sse` records → OpenAI `chat.completion.chunk` SSE.

Each Gemini record is a whole response (candidates with new parts, cumulative usage); the
stream has no `[DONE]`, so `close()` ends it: finish chunks still owed, the usage chunk when
asked for, then `[DONE]`. Invariants as for every OpenAI front stream (WIRE.md §8): constant
`id`/`created`/`model`; per choice `role` in the first delta only and `finish_reason` once; a
function call arrives whole, so it is one tool-call entry carrying a synthesized id, `type`,
name and the whole arguments string; an upstream `{"error": ...}` record becomes one error
chunk and ends the stream, as does an end before any finish reason.
"""

from typing import Any

import msgspec
from msgspec import UNSET

from proxy.sse import Event
from proxy.translate.common import error_type, gemini_finish, read_error
from schemas import gemini as gm
from schemas import openai as oa


class _Record(gm.GenerateContentResponse, rename="camel"):
    error: Any = None  # an error record mid-stream; any shape: a decode boundary


_record = msgspec.json.Decoder(_Record)
_encode = msgspec.json.Encoder().encode


def tool_call_id(chat_id: str, candidate: int, position: int) -> str:
    """A deterministic id for the `position`-th function call of a candidate."""
    base = chat_id.removeprefix("chatcmpl-") or "gemini"
    return f"call_{base}_{position}" if candidate == 0 else f"call_{base}_{candidate}_{position}"


def openai_usage(m: gm.UsageMetadata) -> oa.Usage:
    """Gemini usage → OpenAI: completion tokens include thoughts, as OpenAI's include reasoning."""
    completion = m.candidates_token_count + m.thoughts_token_count
    return oa.Usage(
        prompt_tokens=m.prompt_token_count,
        completion_tokens=completion,
        total_tokens=m.total_token_count or m.prompt_token_count + completion,
        prompt_tokens_details=oa.PromptTokensDetails(cached_tokens=m.cached_content_token_count),
        completion_tokens_details=oa.CompletionTokensDetails(
            reasoning_tokens=m.thoughts_token_count
        ),
    )


class _Choice:
    __slots__ = ("finish", "started", "tools")

    def __init__(self) -> None:
        self.started = False
        self.tools = 0
        self.finish: str | None = None


class Stream:
    def __init__(self, model: str, *, include_usage: bool, id: str, created: int) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = id
        self._created = created
        self._choices: dict[int, _Choice] = {}
        self._usage: gm.UsageMetadata | None = None
        self._done = False

    @property
    def usage(self) -> tuple[int, int] | None:
        if self._usage is None:
            return None
        u = openai_usage(self._usage)
        return u.prompt_tokens, u.completion_tokens

    @property
    def finish(self) -> str | None:
        first = self._choices.get(0)
        return first.finish if first else None

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return []
        try:
            record = _record.decode(event.data)
        except msgspec.DecodeError:
            return self._fail("api_error", "upstream sent a record this gateway cannot read")
        if record.error is not None:
            up = read_error(500, _encode({"error": record.error}))
            return self._fail(error_type(up.code if isinstance(up.code, int) else 500), up.message)
        if record.usage_metadata is not None:
            self._usage = record.usage_metadata  # cumulative in every record
        out: list[Event] = []
        for candidate in record.candidates:
            out.extend(self._candidate(candidate))
        feedback = record.prompt_feedback
        if not record.candidates and feedback is not None and feedback.block_reason:
            out.extend(self._finish(0, self._state(0), "content_filter"))
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        if not any(c.finish for c in self._choices.values()):
            return self._fail("api_error", "upstream stream ended before the response was complete")
        out: list[Event] = []
        for index, state in sorted(self._choices.items()):
            if state.finish is None:
                out.extend(self._finish(index, state, "stop"))
        if self._include_usage:
            usage = openai_usage(self._usage or gm.UsageMetadata())
            out.append(self._event(oa.ChatCompletionChunk(choices=[], usage=usage)))
        out.append(Event("[DONE]"))
        self._done = True
        return out

    def _state(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        return state

    def _candidate(self, candidate: gm.Candidate) -> list[Event]:
        index = candidate.index
        state = self._state(index)
        if state.finish is not None:
            return []
        out = self._role(index, state)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[oa.ChunkToolCall] = []
        for part in candidate.content.parts if candidate.content else ():
            if part.text:
                (thoughts if part.thought else texts).append(part.text)
            if part.function_call is not None:
                fc = part.function_call
                function = oa.ChunkFunction(name=fc.name, arguments=_encode(fc.args).decode())
                call_id = fc.id or tool_call_id(self._id, index, state.tools)
                calls.append(oa.ChunkToolCall(state.tools, call_id, "function", function))
                state.tools += 1
        if thoughts or texts or calls:
            delta = oa.Delta(
                reasoning_content="".join(thoughts) or None,
                content="".join(texts) or None,
                tool_calls=calls or None,
            )
            out.append(self._chunk(index, delta))
        if candidate.finish_reason:
            out.extend(self._finish(index, state, gemini_finish(candidate.finish_reason)))
        return out

    def _role(self, index: int, state: _Choice) -> list[Event]:
        if state.started:
            return []
        state.started = True
        return [self._chunk(index, oa.Delta(role="assistant", content=""))]

    def _finish(self, index: int, state: _Choice, finish: str) -> list[Event]:
        if state.tools and finish == "stop":  # Gemini reports STOP after a function call
            finish = "tool_calls"
        state.finish = finish
        return [*self._role(index, state), self._chunk(index, oa.Delta(), finish)]

    def _chunk(self, index: int, delta: oa.Delta, finish: str | None = None) -> Event:
        choice = oa.ChunkChoice(delta=delta, index=index, finish_reason=finish)
        usage = None if self._include_usage else UNSET
        return self._event(oa.ChatCompletionChunk(choices=[choice], usage=usage))

    def _event(self, chunk: oa.ChatCompletionChunk) -> Event:
        chunk.id, chunk.created, chunk.model = self._id, self._created, self._model
        return Event(_encode(chunk).decode())

    def _fail(self, kind: str, message: str) -> list[Event]:
        self._done = True
        body = oa.ErrorEnvelope(oa.ErrorBody(message=message, type=kind))
        return [Event(_encode(body).decode())]
