"""What the translator modules share: `TranslationError` (client input the target cannot
express, a 400), the interface every translator module has, the finish/stop-reason maps,
which are total (an unknown value maps to `stop` / `end_turn` and is logged), reading an
upstream error body of any shape, and small parsers. Pure.
"""

import logging
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple, Protocol

import msgspec

from proxy import errors, redact
from proxy.sse import Event

_log = logging.getLogger(__name__)


class TranslationError(errors.BadRequest):
    """Client input that cannot be translated for the chosen backend: a 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param)


# -- the interface every translator module has ------------------------------------------------


class StreamTranslator(Protocol):
    def feed(self, event: Event) -> list[Event]: ...

    def close(self) -> list[Event]: ...

    @property
    def usage(self) -> tuple[int, int] | None: ...

    @property
    def finish(self) -> str | None: ...


class StreamFactory(Protocol):
    def __call__(
        self, model: str, *, include_usage: bool, id: str, created: int
    ) -> StreamTranslator: ...


class Translator(Protocol):
    """What `pick` returns: a translator module."""

    @property
    def Stream(self) -> StreamFactory: ...

    def request(self, body: bytes, model: str, stream: bool) -> bytes: ...

    def response(self, body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes: ...

    def error(self, status: int, body: bytes) -> bytes: ...


# -- finish / stop reasons --------------------------------------------------------------------

ANTHROPIC_TO_OPENAI: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
OPENAI_TO_ANTHROPIC: Final[Mapping[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
GEMINI_TO_OPENAI: Final[Mapping[str, str]] = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(
        (
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "OTHER",
            "LANGUAGE",
            "IMAGE_SAFETY",
        ),
        "content_filter",
    ),
}


def _total(table: Mapping[str, str], value: str, default: str) -> str:
    found = table.get(value)
    if found is None:
        _log.warning("unknown finish reason %r, reported as %r", value[:64], default)
        return default
    return found


def openai_finish(stop_reason: str) -> str:
    """Anthropic `stop_reason` → OpenAI `finish_reason`."""
    return _total(ANTHROPIC_TO_OPENAI, stop_reason, "stop")


def anthropic_stop(finish_reason: str) -> str:
    """OpenAI `finish_reason` → Anthropic `stop_reason`."""
    return _total(OPENAI_TO_ANTHROPIC, finish_reason, "end_turn")


def gemini_finish(finish_reason: str) -> str:
    """Gemini `finishReason` → OpenAI `finish_reason` (a tool call's STOP is the caller's job)."""
    return _total(GEMINI_TO_OPENAI, finish_reason, "stop")


# -- error bodies -----------------------------------------------------------------------------

_ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ANTHROPIC_ERROR_TYPES: Final = frozenset(_ERROR_TYPES.values()) | {"api_error"}


def error_type(status: int) -> str:
    """The conventional error `type` for an HTTP status (Anthropic's vocabulary, which the
    gateway also uses in OpenAI-shaped bodies)."""
    found = _ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 or status < 400 else "invalid_request_error"


class ErrorInfo(NamedTuple):
    """What an upstream error body says (not a failure of ours: see `errors.UpstreamFailure`)."""

    message: str
    type: str | None  # the upstream's own type (or Gemini status), when it named one
    code: str | int | None


_MAX_MESSAGE = 2000


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def read_error(status: int, body: bytes) -> ErrorInfo:
    """Message, type and code from an upstream error body of any shape: OpenAI, Anthropic,
    Gemini (also wrapped in a JSON array), `{"error": "text"}`, `{"detail": ...}`, plain text
    or nothing. Key-like strings in the message are masked."""
    try:
        doc: Any = msgspec.json.decode(body)  # any shape at all: the decode boundary
    except msgspec.DecodeError:
        doc = body.decode("utf-8", "replace")  # plain text (an HTML page, a proxy's message)
    if isinstance(doc, list) and doc:
        doc = doc[0]
    message: str | None = None
    kind: str | None = None
    code: str | int | None = None
    if isinstance(doc, dict):
        err = doc.get("error", doc)
        if isinstance(err, dict):
            message = _text(err.get("message")) or _text(err.get("detail"))
            kind = _text(err.get("type")) or _text(err.get("status"))
            raw_code = err.get("code")
            code = raw_code if isinstance(raw_code, (str, int)) else None
        else:
            message = _text(err)
        if message is None and isinstance(doc.get("detail"), str | list):
            message = str(doc["detail"])
    elif isinstance(doc, str):
        message = doc.strip() or None
    if message is None:
        message = f"upstream returned HTTP {status}"
    message = redact.scrub(message[:_MAX_MESSAGE])
    return ErrorInfo(message, kind, code)


# -- shared small pieces ----------------------------------------------------------------------

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[^;,]*)*);base64,(.*)", re.S)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a base64 `data:` URL; None for anything else."""
    found = _DATA_URL.fullmatch(url)
    return (found.group(1), found.group(3)) if found else None


_arguments = msgspec.json.Decoder(dict[str, Any])


def parse_arguments(text: str, param: str) -> dict[str, Any]:
    """Tool-call `arguments` text → the object Anthropic/Gemini want; "" means {}."""
    if not text.strip():
        return {}
    try:
        return _arguments.decode(text)
    except msgspec.DecodeError:
        raise TranslationError(
            "tool call arguments must be a JSON object to send them to this backend", param
        ) from None


def arguments_or_empty(text: str) -> dict[str, Any]:
    """Like `parse_arguments` for model output, which must never fail a response."""
    try:
        return parse_arguments(text, "")
    except TranslationError:
        return {}


_PATH = re.compile(r" - at `\$\.?(.*)`$")


def decode_error(exc: msgspec.DecodeError) -> TranslationError:
    """A client body that does not decode; msgspec's message ends with the path, which
    becomes `param` (`$.messages[0].content` → `messages[0].content`)."""
    found = _PATH.search(str(exc))
    return TranslationError(f"invalid request body: {exc}", found.group(1) if found else None)
