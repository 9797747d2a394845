"""Anthropic clients on a backend that OpenAI-front translators already serve: the
`anthropic_openai` translator composed with an OpenAI-front one, the OpenAI chat wire as the
pivot. No mapping logic lives here.

Invariant (as in `anthropic_gemini`): whatever holds for both halves holds for the whole; the
inner stream is always asked for usage so the outer `message_delta` carries it, and the inner
`[DONE]` is what completes the Anthropic stream.
"""

from proxy.sse import Event
from proxy.translate import anthropic_openai
from proxy.translate.common import StreamFactory, StreamTranslator, Translator


class _Stream:
    def __init__(self, inner: StreamTranslator, outer: StreamTranslator) -> None:
        self._inner = inner
        self._outer = outer

    @property
    def usage(self) -> tuple[int, int] | None:
        return self._outer.usage or self._inner.usage

    @property
    def finish(self) -> str | None:
        # The inner stream may know its finish before it has sent it (a `type: http` server
        # whose end is the end of the body): `close()` then carries it through the outer.
        return self._outer.finish or self._inner.finish

    def feed(self, event: Event) -> list[Event]:
        return [out for pivot in self._inner.feed(event) for out in self._outer.feed(pivot)]

    def close(self) -> list[Event]:
        out = [out for pivot in self._inner.close() for out in self._outer.feed(pivot)]
        return out + self._outer.close()


class Composed:
    """A `Translator` for Anthropic clients built from an OpenAI-front `inner` translator."""

    def __init__(self, inner: Translator) -> None:
        self._inner = inner

    def request(self, body: bytes, model: str, stream: bool) -> bytes:
        return self._inner.request(anthropic_openai.request(body, model, stream), model, stream)

    def response(self, body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
        pivot = self._inner.response(body, model, id=id, created=created)
        return anthropic_openai.response(pivot, model, id=id, created=created)

    def error(self, status: int, body: bytes) -> bytes:
        return anthropic_openai.error(status, self._inner.error(status, body))

    @property
    def Stream(self) -> StreamFactory:
        def make(model: str, *, include_usage: bool, id: str, created: int) -> StreamTranslator:
            inner = self._inner.Stream(model, include_usage=True, id=id, created=created)
            outer = anthropic_openai.Stream(
                model, include_usage=include_usage, id=id, created=created
            )
            return _Stream(inner, outer)

        return make
