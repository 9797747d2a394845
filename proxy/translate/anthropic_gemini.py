"""Anthropic client → Gemini backend: `anthropic_openai` composed with `openai_gemini`, with the
OpenAI chat wire as the pivot. No mapping logic lives here.

Invariant: whatever holds for both halves holds for the whole: the inner stream is asked for
usage so the outer `message_delta` carries it, and the inner `[DONE]` (sent on `close()`,
since Gemini has none) is what completes the Anthropic stream.
"""

from proxy.sse import Event
from proxy.translate import anthropic_openai, openai_gemini

__all__ = ["Stream", "error", "request", "response"]


def request(body: bytes, model: str, stream: bool) -> bytes:
    return openai_gemini.request(anthropic_openai.request(body, model, stream), model, stream)


def response(body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
    pivot = openai_gemini.response(body, model, id=id, created=created)
    return anthropic_openai.response(pivot, model, id=id, created=created)


def error(status: int, body: bytes) -> bytes:
    return anthropic_openai.error(status, openai_gemini.error(status, body))


class Stream:
    def __init__(self, model: str, *, include_usage: bool, id: str, created: int) -> None:
        self._inner = openai_gemini.Stream(model, include_usage=True, id=id, created=created)
        self._outer = anthropic_openai.Stream(
            model, include_usage=include_usage, id=id, created=created
        )

    @property
    def usage(self) -> tuple[int, int] | None:
        return self._outer.usage or self._inner.usage

    @property
    def finish(self) -> str | None:
        return self._outer.finish

    def feed(self, event: Event) -> list[Event]:
        return [out for pivot in self._inner.feed(event) for out in self._outer.feed(pivot)]

    def close(self) -> list[Event]:
        out = [out for pivot in self._inner.close() for out in self._outer.feed(pivot)]
        return out + self._outer.close()
