"""Responses API client → Gemini backend: `responses_chat` composed with `openai_gemini`, with the
OpenAI chat wire as the pivot. No mapping logic lives here.

Invariant: whatever holds for both halves holds for the whole: the inner stream is always asked
for usage so `response.completed` carries it, the inner stream's end (`[DONE]`, or its
`close()`) is what completes the response, and an inner error chunk fails it. What the chat
pivot cannot carry is dropped as `responses_chat` says; what Gemini cannot take is a 400 as
`openai_gemini` says.
"""

from collections.abc import Sequence

from proxy.sse import Event
from proxy.translate import openai_gemini, responses_chat
from proxy.translate.common import TranslationError
from schemas import responses as rs

__all__ = ["Stream", "error", "request", "response"]


def request(body: bytes, model: str, stream: bool, history: Sequence[rs.InputItem] = ()) -> bytes:
    pivot = responses_chat.request(body, model, stream, history)
    try:
        return openai_gemini.request(pivot, model, stream)
    except TranslationError as exc:
        raise responses_chat.front_error(exc) from None


def response(
    body: bytes, model: str, *, id: str = "", created: int = 0, request: rs.Request | None = None
) -> bytes:
    pivot = openai_gemini.response(body, model, id=id, created=created)
    return responses_chat.response(pivot, model, id=id, created=created, request=request)


def error(status: int, body: bytes) -> bytes:
    return responses_chat.error(status, openai_gemini.error(status, body))


class Stream:
    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = True,
        id: str,
        created: int,
        request: rs.Request | None = None,
    ) -> None:
        self._inner = openai_gemini.Stream(model, include_usage=True, id=id, created=created)
        self._outer = responses_chat.Stream(model, id=id, created=created, request=request)

    @property
    def usage(self) -> tuple[int, int] | None:
        return self._outer.usage or self._inner.usage

    @property
    def finish(self) -> str | None:
        return self._outer.finish

    @property
    def response(self) -> rs.Response | None:
        return self._outer.response

    def feed(self, event: Event) -> list[Event]:
        return [out for pivot in self._inner.feed(event) for out in self._outer.feed(pivot)]

    def fail(self, kind: str, message: str) -> list[Event]:
        return self._outer.fail(kind, message)

    def close(self) -> list[Event]:
        out = [out for pivot in self._inner.close() for out in self._outer.feed(pivot)]
        return out + self._outer.close()
