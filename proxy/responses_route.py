"""What a Responses API request becomes on one backend: the endpoint to build, the body to send
and the translator to read the answer with (None: pass-through).

Pure. Invariants: an OpenAI backend with `responses: true` gets the client's body byte for
byte except `model` (rewritten) — unless it continues a response this gateway stored, when
`previous_response_id` is replaced by the stored turns in `input` (that backend never saw the
id); every other backend gets the body translated to chat through `proxy.translate` with the
stored turns as history. A `previous_response_id` the gateway does not hold is a 400 naming
it on a translated backend, and passes through untouched to a Responses backend (it may be
OpenAI's own id).
"""

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec

from proxy import translate
from proxy.config import Backend
from proxy.providers.base import Endpoint, Wire
from proxy.responses_store import unknown
from proxy.sse import Event
from proxy.translate import Translator, responses_anthropic, responses_chat, responses_gemini
from proxy.translate.responses_compose import Composed
from schemas import responses as rs

_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


class ResponsesStream(Protocol):
    def feed(self, event: Event) -> list[Event]: ...

    def close(self) -> list[Event]: ...

    def fail(self, kind: str, message: str) -> list[Event]: ...

    @property
    def usage(self) -> tuple[int, int] | None: ...

    @property
    def finish(self) -> str | None: ...

    @property
    def response(self) -> rs.Response | None: ...


class ResponsesStreamFactory(Protocol):
    def __call__(
        self,
        model: str,
        *,
        include_usage: bool = True,
        id: str,
        created: int,
        request: rs.Request | None = None,
    ) -> ResponsesStream: ...


class ResponsesTranslator(Protocol):
    """`proxy.translate.Translator` plus what Responses clients need: the stored history in,
    the request echoed in the answer, `fail` and the final `response` on the stream."""

    @property
    def Stream(self) -> ResponsesStreamFactory: ...

    def request(
        self, body: bytes, model: str, stream: bool, history: Sequence[rs.InputItem] = ()
    ) -> bytes: ...

    def response(
        self,
        body: bytes,
        model: str,
        *,
        id: str = "",
        created: int = 0,
        request: rs.Request | None = None,
    ) -> bytes: ...

    def error(self, status: int, body: bytes) -> bytes: ...


_TRANSLATORS: dict[str, ResponsesTranslator] = {
    "openai": responses_chat,
    "anthropic": responses_anthropic,
    "gemini": responses_gemini,
}


class Route(NamedTuple):
    endpoint: Endpoint  # "responses" (pass-through) or "chat" (translated)
    body: bytes
    translator: ResponsesTranslator | None  # None: the answer is already in the Responses shape


def route(
    body: bytes,
    request: rs.Request,
    backend: Backend,
    wire: Wire,
    model: str,
    stream: bool,
    history: Sequence[rs.InputItem] | None,
    own: Translator | None = None,
) -> Route:
    """`history`: the stored turns of `request.previous_response_id`, None when not stored
    (or when the request names none). `stream`: whether to stream from this backend (False
    for a streamed request to a `stream: false` backend: answer with `responses_replay`)."""
    if backend.responses:
        return Route("responses", passthrough(body, request, model, stream, history), None)
    if request.previous_response_id and history is None:
        raise unknown(request.previous_response_id)
    translator = translator_for(backend, wire, own)
    assert translator is not None  # not a Responses backend
    return Route("chat", translator.request(body, model, stream, history or ()), translator)


def translator_for(
    backend: Backend, wire: Wire, own: Translator | None = None
) -> ResponsesTranslator | None:
    """The translator that reads this backend's answers; None for pass-through. `own`: the
    backend's own OpenAI-front translator (`type: http`), composed like any other wire's."""
    if backend.responses:
        return None
    fixed = _TRANSLATORS.get(wire)
    if fixed is not None and own is None:
        return fixed
    inner = translate.choose("openai", wire, own)
    assert inner is not None  # an OpenAI-wire backend has a fixed translator
    return Composed(inner)


def passthrough(
    body: bytes,
    request: rs.Request,
    model: str,
    stream: bool,
    history: Sequence[rs.InputItem] | None,
) -> bytes:
    fields = _top_level.decode(body)
    fields["model"] = msgspec.Raw(_encode(model))
    if request.stream and not stream:  # a `stream: false` backend: the gateway replays
        fields["stream"] = msgspec.Raw(b"false")
        fields.pop("stream_options", None)
    if request.previous_response_id and history is not None:
        del fields["previous_response_id"]
        carried = [_portable(item) for item in history if item.type != "reasoning"]
        fields["input"] = msgspec.Raw(_encode([*carried, *_input(fields)]))
    return _encode(fields)


def _input(fields: dict[str, msgspec.Raw]) -> list[object]:
    """The client's own input items, untouched (a string is one user message)."""
    raw = fields.get("input")
    value: object = msgspec.json.decode(raw) if raw is not None else []
    if isinstance(value, str):
        return [{"role": "user", "content": value}] if value else []
    return value if isinstance(value, list) else [value]


def _portable(item: rs.InputItem) -> rs.InputItem:
    """A stored item as another server takes it: without the ids and statuses this gateway
    made up (OpenAI checks item ids against its own store). Reasoning items are not carried:
    ours hold readable text, OpenAI's hold encrypted state it alone can read."""
    return msgspec.structs.replace(item, id=None, status=None)
