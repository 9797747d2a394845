"""The gateway's own errors, and the one place that turns them into wire bytes.

Handlers raise a `ProxyError`; `render` writes it in the route's protocol (Anthropic's
envelope on `/v1/messages`, OpenAI's everywhere else). Nothing else builds error JSON, and
no message here ever carries a key: callers pass text that names things, never secrets.
"""

from typing import ClassVar, Literal

import msgspec

Wire = Literal["openai", "anthropic", "gemini"]


class ProxyError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    anthropic_type: ClassVar[str] = "api_error"
    code: str | None = None  # class default; an instance may carry its own

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers
        if code is not None:
            self.code = code


class BadRequest(ProxyError):
    status, type, anthropic_type = 400, "invalid_request_error", "invalid_request_error"


class Unauthorized(ProxyError):
    status, type, anthropic_type = 401, "authentication_error", "authentication_error"
    code = "invalid_api_key"


class Forbidden(ProxyError):
    status, type, anthropic_type = 403, "permission_error", "permission_error"


class NotFound(ProxyError):
    status, type, anthropic_type = 404, "not_found_error", "not_found_error"


class UnknownModel(NotFound):
    code = "model_not_found"


class MethodNotAllowed(ProxyError):
    status, type, anthropic_type = 405, "invalid_request_error", "invalid_request_error"


class PayloadTooLarge(ProxyError):
    status, type, anthropic_type = 413, "invalid_request_error", "request_too_large"
    code = "request_too_large"


class RateLimited(ProxyError):
    status, type, anthropic_type = 429, "rate_limit_error", "rate_limit_error"


class BadGateway(ProxyError):
    """Every upstream attempt failed (connection, protocol or status)."""

    status, type, anthropic_type = 502, "upstream_error", "api_error"
    code = "upstream_failed"


class NoTarget(ProxyError):
    """Every target of the route is circuit-open or disabled."""

    status, type, anthropic_type = 503, "service_unavailable", "overloaded_error"
    code = "no_available_target"


class GatewayTimeout(ProxyError):
    status, type, anthropic_type = 504, "timeout_error", "timeout_error"
    code = "upstream_timeout"


class Internal(ProxyError):
    status, type, anthropic_type = 500, "api_error", "api_error"


class _OpenAIError(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _OpenAIEnvelope(msgspec.Struct):
    error: _OpenAIError


class _AnthropicError(msgspec.Struct):
    type: str
    message: str


class _AnthropicEnvelope(msgspec.Struct, kw_only=True):
    type: str = "error"
    error: _AnthropicError
    request_id: str | None = None


class _GeminiError(msgspec.Struct):
    code: int
    message: str
    status: str


class _GeminiEnvelope(msgspec.Struct):
    error: _GeminiError


_encode = msgspec.json.Encoder().encode

_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def body(err: ProxyError, wire: Wire, request_id: str | None = None) -> bytes:
    """The error envelope for `wire`, as bytes."""
    if wire == "anthropic":
        return _encode(
            _AnthropicEnvelope(
                error=_AnthropicError(err.anthropic_type, err.message), request_id=request_id
            )
        )
    if wire == "gemini":
        status = _GEMINI_STATUS.get(err.status, "INTERNAL")
        return _encode(_GeminiEnvelope(_GeminiError(err.status, err.message, status)))
    return _encode(_OpenAIEnvelope(_OpenAIError(err.message, err.type, err.param, err.code)))


def render(
    err: ProxyError, wire: Wire, request_id: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for an error response in the route's protocol."""
    headers = [(b"content-type", b"application/json")]
    headers.extend((k.encode(), v.encode()) for k, v in err.headers)
    return err.status, headers, body(err, wire, request_id)


def stream_event(err: ProxyError, wire: Wire) -> bytes:
    """The SSE frame that ends a committed stream with an error (never a clean-looking end)."""
    if wire == "anthropic":
        return b"event: error\ndata: " + body(err, wire) + b"\n\n"
    return b"data: " + body(err, wire) + b"\n\n"
