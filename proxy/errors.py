"""The gateway's own errors, and the one place that turns them into wire bytes.

Handlers raise a `ProxyError`; `render` writes it in the route's protocol (Anthropic's
envelope on `/v1/messages`, OpenAI's everywhere else). Nothing else builds error JSON, and
no message here ever carries a key: callers pass text that names things, never secrets.
"""

from typing import ClassVar, Literal

import msgspec

from schemas import anthropic as anthropic_schema
from schemas import gemini as gemini_schema
from schemas import openai as openai_schema

# The one definition: what a peer speaks. Clients speak the first three; "ollama" (native API)
# and "http" (a configured template) are spoken only by backends.
Wire = Literal["openai", "anthropic", "gemini", "ollama", "http"]


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


class RequestTimeout(ProxyError):
    status, type, anthropic_type = 408, "invalid_request_error", "timeout_error"
    code = "client_body_timeout"


class UnsupportedMediaType(ProxyError):
    status, type, anthropic_type = 415, "invalid_request_error", "invalid_request_error"
    code = "unsupported_media_type"


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


class ShuttingDown(ProxyError):
    """This gateway process is stopping; another instance (or a retry) will answer."""

    status, type, anthropic_type = 503, "service_unavailable", "overloaded_error"
    code = "shutting_down"


class GatewayTimeout(ProxyError):
    status, type, anthropic_type = 504, "timeout_error", "timeout_error"
    code = "upstream_timeout"


class Internal(ProxyError):
    status, type, anthropic_type = 500, "api_error", "api_error"


class ClientClosed(ProxyError):
    """The client went away before the gateway answered: nothing is sent."""

    status, type, anthropic_type = 499, "client_closed", "api_error"


# --- upstream failures: one type, whatever went wrong -------------------------------------

FailureKind = Literal[
    "connect",  # could not connect
    "timeout",  # connect / first_byte / idle / total ran out
    "reset",  # the connection broke
    "protocol",  # the upstream sent something that is not its protocol
    "status",  # a failover status (408, 429, 5xx, 401/403/404 ...)
    "stream_error",  # an error event inside the upstream's stream
    "truncated",  # the stream ended before it was complete
    "unsupported",  # the backend has no equivalent of this endpoint
]


class UpstreamFailure(Exception):
    """Why one upstream attempt failed. The attempt loop fails over on it (before a stream
    commits); the last one is what the client is told.

    `status`, `headers`, `body` and `wire` are the upstream's own answer for `kind="status"`
    (passed on in the client's protocol when failover is spent). `reported`: the client
    already received the upstream's own error frame for it (a committed stream).
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        wire: Wire = "openai",
        reported: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.wire: Wire = wire
        self.reported = reported

    def error(self, prefix: str = "") -> ProxyError:
        """The gateway's own error for this failure (504 for timeouts, else 502)."""
        cls = GatewayTimeout if self.kind == "timeout" else BadGateway
        return cls(prefix + self.message)


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
            anthropic_schema.ErrorEnvelope(
                error=anthropic_schema.ErrorBody(err.anthropic_type, err.message),
                request_id=request_id,
            )
        )
    if wire == "gemini":
        status = _GEMINI_STATUS.get(err.status, "INTERNAL")
        return _encode(
            gemini_schema.ErrorEnvelope(gemini_schema.ErrorBody(err.status, err.message, status))
        )
    return _encode(
        openai_schema.ErrorEnvelope(
            openai_schema.ErrorBody(err.message, err.type, err.param, err.code)
        )
    )


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
