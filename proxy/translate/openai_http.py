"""OpenAI client → `type: http` backend: a chat request rendered into the backend's request
template, its JSON answer (or stream lines/events) read by the configured paths into a chat
completion (or chunks), its error into an OpenAI error.

Unlike the other translators this one is an object, one per backend: the mapping is the
backend's `HttpTemplate`. Pure: no IO, ids and timestamps come in as arguments.
Invariant: what the template can't express is a 400 (`TranslationError`), never silently
dropped: tools, and content other than text. Without a `finish` path the end of the body is
the end of the answer; with one, a stream that ends before it names a finish is truncated.
"""

from typing import Any

import msgspec
from msgspec import UNSET

from proxy.sse import Event
from proxy.template import HttpTemplate, Path, lookup, render
from proxy.translate.common import (
    StreamFactory,
    StreamTranslator,
    TranslationError,
    decode_error,
    error_type,
    read_error,
)
from schemas import openai as oa

_chat_request = msgspec.json.Decoder(oa.ChatRequest)
_any = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def values(req: oa.ChatRequest, model: str, stream: bool) -> dict[str, Any]:
    """The placeholder values for one chat request."""
    if req.tools:
        raise TranslationError("this model's backend does not take tools", "tools")
    messages: list[dict[str, str]] = []
    system: list[str] = []
    prompt = ""
    for i, m in enumerate(req.messages):
        text = _text(m.content, f"messages[{i}]")
        role = "system" if m.role == "developer" else m.role
        messages.append({"role": role, "content": text})
        if role == "system":
            system.append(text)
        elif role == "user":
            prompt = text
    stop = [req.stop] if isinstance(req.stop, str) else req.stop or None
    parameters = {
        "max_tokens": req.max_completion_tokens or req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "stop": stop,
        "seed": req.seed,
    }
    given = {k: v for k, v in parameters.items() if v is not None}
    return {
        **parameters,
        "prompt": prompt,
        "messages": messages,
        "system": "\n".join(system) or None,
        "model": model,
        "stream": stream,
        "parameters": given,
    }


def _text(content: str | list[oa.ContentPart] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, oa.TextPart):
            raise TranslationError(
                "this model's backend takes text only", f"{where}.content[{j}].type"
            )
        texts.append(part.text)
    return "".join(texts)


def finish_reason(value: Any) -> str:
    """A server's own stop reason → OpenAI's: anything about length or max tokens is
    `length`, the rest `stop`."""
    text = str(value).lower() if value is not None else ""
    return "length" if "length" in text or "max" in text else "stop"


def _usage(doc: Any, t: HttpTemplate) -> tuple[int, int] | None:
    prompt = lookup(doc, t.prompt_tokens) if t.prompt_tokens else None
    completion = lookup(doc, t.completion_tokens) if t.completion_tokens else None
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    return (
        prompt if isinstance(prompt, int) else 0,
        completion if isinstance(completion, int) else 0,
    )


class HttpTranslator:
    """The `Translator` for one `type: http` backend and OpenAI chat clients."""

    def __init__(self, template: HttpTemplate) -> None:
        self._t = template
        self._body = _any.decode(template.body)

    def request(self, body: bytes, model: str, stream: bool) -> bytes:
        try:
            req = _chat_request.decode(body)
        except msgspec.DecodeError as exc:
            raise decode_error(exc) from None
        return _encode(render(self._body, values(req, model, stream)))

    def response(self, body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
        """Raises msgspec.DecodeError when `body` is not JSON or has no text at the path."""
        doc = _any.decode(body)
        text = lookup(doc, self._t.text)
        if not isinstance(text, str):
            raise msgspec.DecodeError(f"upstream answer has no text at {_show(self._t.text)}")
        finish = finish_reason(lookup(doc, self._t.finish) if self._t.finish else None)
        usage = _usage(doc, self._t)
        out = oa.ChatCompletion(
            id=id,
            created=created,
            model=model,
            choices=[oa.Choice(message=oa.ResponseMessage(content=text), finish_reason=finish)],
            usage=oa.Usage(usage[0], usage[1], sum(usage)) if usage else UNSET,
        )
        return _encode(out)

    def error(self, status: int, body: bytes) -> bytes:
        return error(status, body)

    @property
    def Stream(self) -> StreamFactory:
        def make(model: str, *, include_usage: bool, id: str, created: int) -> StreamTranslator:
            return HttpStream(self._t, model, include_usage=include_usage, id=id, created=created)

        return make


def error(status: int, body: bytes) -> bytes:
    """Any upstream error body (its shape is not configured) → an OpenAI error."""
    up = read_error(status, body)
    return _encode(oa.ErrorEnvelope(oa.ErrorBody(message=up.message, type=error_type(status))))


def _show(path: Path) -> str:
    return ".".join(map(str, path))


class HttpStream:
    """Stream lines (NDJSON) or SSE events of a `type: http` backend → OpenAI chunks."""

    def __init__(
        self, template: HttpTemplate, model: str, *, include_usage: bool, id: str, created: int
    ) -> None:
        self._t = template
        self._text_path = template.stream_text or template.text
        self._model = model
        self._include_usage = include_usage
        self._id = id
        self._created = created
        self._started = False
        self._finish: str | None = None
        self._usage: tuple[int, int] | None = None
        self._done = False

    @property
    def usage(self) -> tuple[int, int] | None:
        return self._usage

    @property
    def finish(self) -> str | None:
        if self._finish is None and self._t.finish is None and self._started:
            return "stop"  # no finish path: whatever ends the body ends the answer
        return self._finish

    def feed(self, event: Event) -> list[Event]:
        if self._done:
            return []
        if event.data.strip() == "[DONE]":
            return self.close()
        try:
            doc = _any.decode(event.data)
        except msgspec.DecodeError:
            return self._fail("upstream sent stream data this gateway cannot read")
        text = lookup(doc, self._text_path)
        if isinstance(doc, dict) and "error" in doc and text is None:
            return self._fail(read_error(500, event.data.encode()).message)
        out = self._role()
        if isinstance(text, str) and text:
            out.append(self._chunk(oa.Delta(content=text), None))
        self._usage = _usage(doc, self._t) or self._usage
        found = lookup(doc, self._t.finish) if self._t.finish else None
        if found is not None:
            self._finish = finish_reason(found)
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        finish = self.finish
        if finish is None:
            return self._fail("upstream stream ended before the response was complete")
        self._finish = finish
        self._done = True
        out = [*self._role(), self._chunk(oa.Delta(), finish)]
        if self._include_usage:
            prompt, completion = self._usage or (0, 0)
            usage = oa.Usage(prompt, completion, prompt + completion)
            out.append(self._event(oa.ChatCompletionChunk(choices=[], usage=usage)))
        out.append(Event("[DONE]"))
        return out

    def _role(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [self._chunk(oa.Delta(role="assistant", content=""), None)]

    def _chunk(self, delta: oa.Delta, finish: str | None) -> Event:
        choice = oa.ChunkChoice(delta=delta, finish_reason=finish)
        usage = None if self._include_usage else UNSET
        return self._event(oa.ChatCompletionChunk(choices=[choice], usage=usage))

    def _event(self, chunk: oa.ChatCompletionChunk) -> Event:
        chunk.id, chunk.created, chunk.model = self._id, self._created, self._model
        return Event(_encode(chunk).decode())

    def _fail(self, message: str) -> list[Event]:
        self._done = True
        body = oa.ErrorEnvelope(oa.ErrorBody(message=message, type="api_error"))
        return [Event(_encode(body).decode())]
