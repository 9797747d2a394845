"""Ollama NDJSON stream lines → OpenAI SSE events (`chat.completion.chunk`, or
`text_completion` chunks for `/api/generate`).

Fed one decoded line at a time (`ndjson.Decoder` gives each line as an `Event` whose `data`
is the JSON text). Each line carries new text (`message.content` or `response`), maybe whole
tool calls, and the last one has `done: true`, `done_reason` and the token counts. Invariants
as for every OpenAI front stream: constant `id`/`created`/`model`; `role` in the first delta
only; `finish_reason` once; usage chunk only when asked for; `[DONE]` last. An `{"error":
...}` line, a line that is not JSON, or an end before `done` becomes one error chunk and
ends the stream without `[DONE]`.
"""

import msgspec
from msgspec import UNSET

from proxy.sse import Event
from proxy.translate.common import error_type, read_error
from schemas import ollama as ol
from schemas import openai as oa

_line = msgspec.json.Decoder(ol.ChatResponse)
_encode = msgspec.json.Encoder().encode

_FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def finish_reason(done_reason: str | None) -> str:
    """Ollama `done_reason` → OpenAI `finish_reason` (unknown or absent: `stop`)."""
    return _FINISH.get(done_reason or "stop", "stop")


def tool_call_id(chat_id: str, position: int) -> str:
    """A deterministic id for the `position`-th tool call of an answer without ids."""
    base = chat_id.removeprefix("chatcmpl-").removeprefix("cmpl-") or "ollama"
    return f"call_{base}_{position}"


class Stream:
    def __init__(self, model: str, *, include_usage: bool, id: str, created: int) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = id
        self._created = created
        self._started = False
        self._chat: bool | None = None  # unknown until the first line
        self._tools = 0
        self._finish: str | None = None
        self._usage: tuple[int, int] | None = None
        self._done = False

    @property
    def usage(self) -> tuple[int, int] | None:
        return self._usage

    @property
    def finish(self) -> str | None:
        return self._finish

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return []
        try:
            line = _line.decode(event.data)
        except msgspec.DecodeError:
            return self._fail("api_error", "upstream sent a line this gateway cannot read")
        if line.error is not None:
            up = read_error(500, _encode({"error": line.error}))
            return self._fail(error_type(500), up.message)
        if self._chat is None:
            self._chat = line.response is None
        out = self._content(line)
        if line.done:
            self._usage = (line.prompt_eval_count, line.eval_count)
            finish = finish_reason(line.done_reason)
            if self._tools and finish == "stop":
                finish = "tool_calls"
            out.extend(self._end(finish))
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        return self._fail("api_error", "upstream stream ended before the response was complete")

    def _content(self, line: ol.ChatResponse) -> list[Event]:
        if not self._chat:
            text = line.response or ""
            return [self._text_chunk(text, None)] if text else []
        message = line.message or ol.ResponseMessage()
        out = self._role()
        calls = []
        for call in message.tool_calls or ():
            function = oa.ChunkFunction(
                name=call.function.name, arguments=_encode(call.function.arguments).decode()
            )
            call_id = call.id or tool_call_id(self._id, self._tools)
            calls.append(oa.ChunkToolCall(self._tools, call_id, "function", function))
            self._tools += 1
        if message.content or message.thinking or calls:
            delta = oa.Delta(
                content=message.content or None,
                reasoning_content=message.thinking or None,
                tool_calls=calls or None,
            )
            out.append(self._chunk(delta, None))
        return out

    def _role(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [self._chunk(oa.Delta(role="assistant", content=""), None)]

    def _end(self, finish: str) -> list[Event]:
        self._finish = finish
        self._done = True
        if self._chat:
            out = [*self._role(), self._chunk(oa.Delta(), finish)]
        else:
            out = [self._text_chunk("", finish)]
        if self._include_usage and self._usage is not None:
            prompt, completion = self._usage
            usage = oa.Usage(prompt, completion, prompt + completion)
            last = oa.ChatCompletionChunk(choices=[], usage=usage)
            out.append(self._event(last if self._chat else oa.Completion(usage=usage)))
        out.append(Event("[DONE]"))
        return out

    def _chunk(self, delta: oa.Delta, finish: str | None) -> Event:
        choice = oa.ChunkChoice(delta=delta, finish_reason=finish)
        usage = None if self._include_usage else UNSET
        return self._event(oa.ChatCompletionChunk(choices=[choice], usage=usage))

    def _text_chunk(self, text: str, finish: str | None) -> Event:
        usage = None if self._include_usage else UNSET
        choice = oa.CompletionChoice(text=text, finish_reason=finish)
        return self._event(oa.Completion(choices=[choice], usage=usage))

    def _event(self, chunk: oa.ChatCompletionChunk | oa.Completion) -> Event:
        chunk.id, chunk.created, chunk.model = self._id, self._created, self._model
        return Event(_encode(chunk).decode())

    def _fail(self, kind: str, message: str) -> list[Event]:
        self._done = True
        body = oa.ErrorEnvelope(oa.ErrorBody(message=message, type=kind))
        return [Event(_encode(body).decode())]
