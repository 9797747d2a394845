"""Responses API clients on any backend an OpenAI-front translator serves (Ollama, `type:
http`, ...): `responses_chat` composed with that translator, the OpenAI chat wire as the
pivot. No mapping logic lives here; `responses_anthropic` and `responses_gemini` are this
composition over their fixed inner translators.

Invariant: whatever holds for both halves holds for the whole: the inner stream is always asked
for usage so `response.completed` carries it, the inner stream's end (its `close()`) is what
completes the response, and 400s from the inner half name the Responses field.
"""

from collections.abc import Sequence

from proxy.sse import Event
from proxy.translate import responses_chat
from proxy.translate.common import StreamTranslator, TranslationError, Translator
from schemas import responses as rs


class _Stream:
    def __init__(self, inner: StreamTranslator, outer: responses_chat.Stream) -> None:
        self._inner = inner
        self._outer = outer

    @property
    def usage(self) -> tuple[int, int] | None:
        return self._outer.usage or self._inner.usage

    @property
    def finish(self) -> str | None:
        return self._outer.finish or self._inner.finish

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


class _Factory:
    def __init__(self, inner: Translator) -> None:
        self._inner = inner

    def __call__(
        self,
        model: str,
        *,
        include_usage: bool = True,
        id: str,
        created: int,
        request: rs.Request | None = None,
    ) -> _Stream:
        inner = self._inner.Stream(model, include_usage=True, id=id, created=created)
        outer = responses_chat.Stream(model, id=id, created=created, request=request)
        return _Stream(inner, outer)


class Composed:
    """A Responses translator built from an OpenAI-front `inner` translator."""

    def __init__(self, inner: Translator) -> None:
        self._inner = inner
        self.Stream = _Factory(inner)

    def request(
        self, body: bytes, model: str, stream: bool, history: Sequence[rs.InputItem] = ()
    ) -> bytes:
        pivot = responses_chat.request(body, model, stream, history)
        try:
            return self._inner.request(pivot, model, stream)
        except TranslationError as exc:
            raise responses_chat.front_error(exc) from None

    def response(
        self,
        body: bytes,
        model: str,
        *,
        id: str = "",
        created: int = 0,
        request: rs.Request | None = None,
    ) -> bytes:
        pivot = self._inner.response(body, model, id=id, created=created)
        return responses_chat.response(pivot, model, id=id, created=created, request=request)

    def error(self, status: int, body: bytes) -> bytes:
        return responses_chat.error(status, self._inner.error(status, body))
