"""Reading a front-door request body: the top level only, and only what routing needs. Pure.

`parse` decodes the body to `dict[str, Raw]`, reads `model`, `stream` and
`stream_options.include_usage`, checks the fields each endpoint cannot do without, and leaves
every other value as the client's bytes. Any body gives a result or a `BadRequest`, never
anything else (hypothesis checks it).

`forwardable` guards the one place where "forward the client's bytes" could be unsafe: a body
with a duplicated top-level key the gateway decides on (`{"model": "costly", "model": "ok"}`)
is authorised on the last value, which msgspec keeps; an upstream that reads the first would
serve the other. Such a body is re-encoded from the decoded fields, so what was authorised is
what is sent.
"""

import re
from typing import Any, NamedTuple

import msgspec

from proxy import errors
from proxy.providers.base import Endpoint

_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_str = msgspec.json.Decoder(str)
_bool = msgspec.json.Decoder(bool)
_options = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode

MAX_MODEL = 256  # characters in a model name: it travels in headers, spans and logs
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Fields each endpoint cannot do without, and the first byte their JSON value must have.
_REQUIRED: dict[str, tuple[tuple[str, bytes, str], ...]] = {
    "chat": (("messages", b"[", "an array of messages"),),
    "completions": (("prompt", b"", "a string or an array"),),
    "embeddings": (("input", b"", "a string or an array"),),
    "messages": (("messages", b"[", "an array of messages"), ("max_tokens", b"", "an integer")),
    "count_tokens": (("messages", b"[", "an array of messages"),),
}
_NULL = b"null"
_WHITESPACE = b" \t\r\n"


class Parsed(NamedTuple):
    fields: dict[str, msgspec.Raw]
    model: str
    stream: bool
    include_usage: bool  # the client asked for the usage chunk of a stream


def _first_byte(value: msgspec.Raw) -> bytes:
    # Raw is a view on the body: slicing a memoryview copies nothing (bytes(value) copied
    # the whole messages array, twice per request).
    view = memoryview(value)
    for i in range(min(len(view), 64)):
        b = view[i : i + 1].tobytes()
        if b not in _WHITESPACE:
            return b
    return b""


def _is_null(value: msgspec.Raw | None) -> bool:
    return value is None or (len(value) == 4 and memoryview(value).tobytes() == _NULL)


def parse(body: bytes, endpoint: Endpoint) -> Parsed:
    """Top-level fields, model, stream, and whether the client asked for usage in the stream."""
    if not body.strip():
        raise errors.BadRequest("request body is empty: send a JSON object with 'model'")
    try:
        fields = _top_level.decode(body)
    except msgspec.ValidationError as exc:
        raise errors.BadRequest(f"request body must be a JSON object: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise errors.BadRequest("request body is nested too deeply to be a request") from exc
    raw_model = fields.get("model")
    if raw_model is None:
        raise errors.BadRequest("missing required field 'model'", param="model")
    try:
        model = _str.decode(raw_model)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise errors.BadRequest("'model' must be a string naming a model", param="model") from exc
    check_model_name(model)
    for name, first, what in _REQUIRED[endpoint]:
        value = fields.get(name)
        if _is_null(value):
            raise errors.BadRequest(f"missing required field '{name}' ({what})", param=name)
        if first and value is not None and _first_byte(value) != first:
            raise errors.BadRequest(f"'{name}' must be {what}", param=name)
    stream = False
    raw_stream = fields.get("stream")
    if raw_stream is not None and not _is_null(raw_stream):
        try:
            stream = _bool.decode(raw_stream)
        except msgspec.DecodeError as exc:
            raise errors.BadRequest("'stream' must be true or false", param="stream") from exc
    include_usage = False
    raw_options = fields.get("stream_options")
    if stream and raw_options is not None and not _is_null(raw_options):
        try:
            options = _options.decode(raw_options)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise errors.BadRequest(
                "'stream_options' must be an object", param="stream_options"
            ) from exc
        include_usage = options.get("include_usage") is True
    if endpoint == "embeddings" and stream:
        raise errors.BadRequest("embeddings cannot be streamed", param="stream")
    return Parsed(fields, model, stream, include_usage)


def with_default_model(body: bytes, default: str | None) -> bytes:
    """`body` with `model` set to `default` (settings.default_model) when it names none:
    absent, null or "". Otherwise the client's bytes, untouched; a body that is not a JSON
    object is left for `parse` to refuse."""
    if default is None:
        return body
    try:
        fields = _top_level.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return body
    raw = fields.get("model")
    if not _is_null(raw) and raw is not None and memoryview(raw).tobytes() != b'""':
        return body
    fields["model"] = msgspec.Raw(_encode(default))
    return _encode(fields)


def check_model_name(model: str) -> None:
    """A model name goes into headers, circuits, spans and logs: no control characters."""
    if len(model) > MAX_MODEL:
        raise errors.BadRequest(
            f"'model' is {len(model)} characters long; model names are at most {MAX_MODEL}",
            param="model",
        )
    if _CONTROL.search(model):
        raise errors.BadRequest(
            "'model' contains control characters; send the model's name as plain text",
            param="model",
        )


def forwardable(body: bytes, fields: dict[str, msgspec.Raw]) -> bytes:
    """The body to forward: the client's bytes, unless a field the gateway decides on may be
    duplicated (or hidden behind a `\\u` escape in a key), then the top level re-encoded with
    the values the gateway read. Three C-speed scans; nested values are never touched."""
    if b"\\u" in body or body.count(b'"model"') > 1 or body.count(b'"stream') > 2:
        return _encode(fields)
    return body
