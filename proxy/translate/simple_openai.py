"""`POST /chat` ↔ OpenAI chat completions: the simple front door rides the OpenAI path.

A `/chat` body becomes an OpenAI chat request (prompt → one user message, `system` first,
`provider` → `BACKEND:MODEL` direct addressing, absent model → `settings.default_model`);
the OpenAI answer becomes `{text, model, backend, usage, request_id}`; an OpenAI stream
becomes `data: {"text": delta}` events and one summary event `{"done": true, ...}`.

Pure (sans-IO): bytes and events in, bytes out. Invariants: a streamed `/chat` ends with
exactly one summary event or one `event: error` event, never both, never a clean-looking end
after an upstream error; the text of the deltas joined is the text the upstream sent.
"""

import msgspec
from msgspec import UnsetType

from proxy import errors
from proxy.sse import Event, encode
from schemas import openai as oa
from schemas import simple

_request = msgspec.json.Decoder(simple.ChatRequest)
_completion = msgspec.json.Decoder(oa.ChatCompletion)
_chunk = msgspec.json.Decoder(oa.ChatCompletionChunk)
_encode = msgspec.json.Encoder().encode


class _Peek(msgspec.Struct):
    error: msgspec.Raw | None = None  # an OpenAI error chunk: `data: {"error": {...}}`


_peek = msgspec.json.Decoder(_Peek)


def decode(body: bytes) -> simple.ChatRequest:
    try:
        req = _request.decode(body)
    except msgspec.ValidationError as err:
        raise errors.BadRequest(f"invalid /chat request: {err}") from err
    except msgspec.DecodeError as err:
        raise errors.BadRequest("the /chat body must be a JSON object") from err
    if (req.prompt is None) == (req.messages is None):
        raise errors.BadRequest("send exactly one of prompt (text) or messages (a list)")
    return req


def model_name(req: simple.ChatRequest, default_model: str | None) -> str:
    """The name to route: `provider:model` when a provider is named, else the model."""
    model = req.model or default_model
    if not model:
        raise errors.BadRequest(
            "model is required (or the gateway's settings.default_model)", param="model"
        )
    return f"{req.provider}:{model}" if req.provider else model


def to_openai(req: simple.ChatRequest, model: str) -> bytes:
    """The OpenAI chat completions body for `req`, routed as `model`."""
    messages: list[oa.Message] = []
    if req.system:
        messages.append(oa.Message(role="system", content=req.system))
    if req.messages is not None:
        messages += [oa.Message(role=m.role, content=m.content) for m in req.messages]
    else:
        messages.append(oa.Message(role="user", content=req.prompt or ""))
    body = oa.ChatRequest(
        model=model,
        messages=messages,
        stream=True if req.stream else None,
        stream_options=oa.StreamOptions(include_usage=True) if req.stream else None,
        temperature=req.temperature,
        max_tokens=req.max_tokens,
    )
    return _encode(body)


def _usage(usage: oa.Usage | UnsetType | None) -> simple.ChatUsage | None:
    if not isinstance(usage, oa.Usage):
        return None
    return simple.ChatUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    )


def answer(body: bytes, backend: str, request_id: str) -> bytes:
    """An OpenAI chat completion (200) as the `/chat` answer."""
    try:
        completion = _completion.decode(body)
    except msgspec.DecodeError as err:
        raise errors.BadGateway("the backend's answer was not a chat completion") from err
    choice = completion.choices[0] if completion.choices else None
    text = choice.message.content or "" if choice is not None else ""
    return _encode(
        simple.ChatAnswer(
            text=text,
            model=completion.model,
            backend=backend,
            usage=_usage(completion.usage) or simple.ChatUsage(),
            request_id=request_id,
        )
    )


class Stream:
    """OpenAI chat SSE events in, `/chat` SSE bytes out."""

    __slots__ = ("_backend", "_done", "_finish", "_model", "_request_id", "_usage")

    def __init__(self, backend: str, request_id: str) -> None:
        self._backend = backend
        self._request_id = request_id
        self._model = ""
        self._finish: str | None = None
        self._usage: simple.ChatUsage | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """The summary or error event has been sent: nothing more may follow."""
        return self._done

    def feed(self, event: Event) -> bytes:
        if self._done:
            return b""
        if event.data.strip() == "[DONE]":
            return self.end()
        try:
            if _peek.decode(event.data).error is not None:
                return self._error(event.data)
            chunk = _chunk.decode(event.data)
        except msgspec.DecodeError:
            return self._error(event.data)
        self._model = chunk.model or self._model
        self._usage = _usage(chunk.usage) or self._usage
        out = b""
        for choice in chunk.choices:
            if choice.finish_reason:
                self._finish = choice.finish_reason
            if choice.delta.content:
                out += encode(_encode(simple.ChatDelta(text=choice.delta.content)).decode())
        return out

    def end(self) -> bytes:
        """The summary event (at `[DONE]`, or when the upstream ends after a finish)."""
        if self._done:
            return b""
        self._done = True
        summary = simple.ChatSummary(
            model=self._model,
            backend=self._backend,
            usage=self._usage,
            request_id=self._request_id,
            finish_reason=self._finish,
        )
        return encode(_encode(summary).decode())

    def _error(self, data: str) -> bytes:
        """An upstream `{"error": ...}` chunk (or garbage) ends the stream as an error event."""
        self._done = True
        try:
            envelope = msgspec.json.decode(data, type=oa.ErrorEnvelope)
            body = _encode(envelope)
        except msgspec.DecodeError:
            err = errors.BadGateway("the backend's stream broke off mid-answer")
            body = errors.body(err, "openai")
        return encode(body.decode(), event="error")
