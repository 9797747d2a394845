"""The simple service front door, `POST /chat`: a prompt in, the text out.

For callers of the smaller services this gateway replaces, who never learned a chat message
format: `{"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hello"}` answers
`{"text", "model", "backend", "usage", "request_id"}`; with `"stream": true`, SSE events of
`{"text": delta}` and a last summary event (`{"done": true, ...}`). Invariant: the answer
always carries all five keys; a summary event always carries `done: true`.
"""

from typing import Literal

from msgspec import Struct


class ChatMessage(Struct):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    model: str | None = None  # absent or "": settings.default_model
    prompt: str | None = None  # either prompt or messages
    messages: list[ChatMessage] | None = None
    provider: str | None = None  # a backend name: the model goes there (BACKEND:MODEL)
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False


class ChatUsage(Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ChatAnswer(Struct):
    text: str
    model: str  # the provider-side model id that answered
    backend: str
    usage: ChatUsage
    request_id: str


class ChatDelta(Struct):
    """One streamed event: the next piece of text."""

    text: str


class ChatSummary(Struct):
    """The last streamed event."""

    model: str
    backend: str
    usage: ChatUsage | None
    request_id: str
    finish_reason: str | None = None
    done: bool = True
