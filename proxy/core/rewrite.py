"""The body each backend gets for a client's request: model rewritten, usage asked for, a
non-streaming backend asked not to stream, or the whole body translated. Pure.

Pass-through never decodes what it forwards: the top level is re-encoded only when a field
changes, with every other value kept as the client's bytes (unknown fields included), and an
unchanged request is forwarded as the very bytes the client sent.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

from proxy import translate
from proxy.core.responses import ResponsesCall
from proxy.errors import Wire
from proxy.providers.base import Endpoint

_encode = msgspec.json.Encoder().encode
_options = msgspec.json.Decoder(dict[str, Any])

# A translated request goes to the backend protocol's equivalent endpoint.
_ENDPOINT_ON: dict[tuple[str, str], Endpoint] = {
    ("messages", "openai"): "chat",
    ("chat", "anthropic"): "messages",
}


class ClientRequest(NamedTuple):
    """What the client asked for, read once by its front door; never changes afterwards."""

    endpoint: Endpoint
    front: Wire
    body: bytes  # what is forwarded when nothing changes
    fields: dict[str, msgspec.Raw]  # its top level, values undecoded
    model: str  # as the client wrote it
    stream: bool
    include_usage: bool  # the client asked for the usage chunk
    request_id: str
    headers: Sequence[tuple[bytes, bytes]]  # the client's, raw (ASGI)
    responses: "ResponsesCall | None" = None  # a Responses API request: see core.responses


def endpoint_on(endpoint: Endpoint, wire: Wire) -> Endpoint:
    """The backend-side endpoint for a client endpoint."""
    return _ENDPOINT_ON.get((endpoint, wire), endpoint)


def body_for(
    req: ClientRequest,
    wire: Wire,
    backend_streams: bool,
    model: str,
    own: translate.Translator | None = None,
) -> bytes:
    """The request body for a backend speaking `wire` (raises `TranslationError`, a 400, for
    client input the backend's protocol cannot express); `own` is the backend's own
    translator, when its mapping is configuration (`type: http`)."""
    stream = req.stream and backend_streams
    tr = None if req.front == wire else translate.choose(req.front, wire, own)
    if tr is not None:
        return tr.request(req.body, model, stream)
    fields = req.fields
    changed: dict[str, msgspec.Raw] = {}
    if model != req.model:
        changed["model"] = msgspec.Raw(_encode(model))
    if req.stream and not backend_streams:
        changed["stream"] = msgspec.Raw(b"false")
    elif stream and wire == "openai" and not req.include_usage and req.endpoint != "embeddings":
        changed["stream_options"] = _with_usage(fields.get("stream_options"))
    if not changed:
        return req.body
    out = {**fields, **changed}
    if "stream" in changed:
        out.pop("stream_options", None)  # not allowed on a request that does not stream
    return _encode(out)


def _with_usage(raw: msgspec.Raw | None) -> msgspec.Raw:
    """`stream_options` with `include_usage: true` added; null or absent means none sent
    (the front door has already refused any other non-object)."""
    options: dict[str, Any] = {}
    if raw is not None and memoryview(raw).tobytes().strip() != b"null":
        options = _options.decode(raw)
    options["include_usage"] = True
    return msgspec.Raw(_encode(options))
