"""What a provider adapter is: it builds upstream requests, and nothing else.

An adapter knows its provider's URLs, auth headers and wire protocol. It never sends,
retries, streams or logs; `forward.py` does that the same way for every backend.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from proxy.errors import UpstreamFailure, Wire

if TYPE_CHECKING:
    from proxy.config import Backend
    from proxy.translate.common import Translator

__all__ = [
    "Adapter",
    "Endpoint",
    "Framing",
    "Header",
    "HttpAdapter",
    "Unsupported",
    "UpstreamRequest",
    "Wire",
]
Header = tuple[str, str]
# How a streamed answer is framed: SSE events, or one JSON document per line (Ollama).
Framing = Literal["sse", "ndjson"]

# Front-door endpoints, by the path the client used (query strings never matter).
# "responses" is built only for OpenAI backends with `responses: true` (pass-through); a
# Responses client reaching any other backend is translated and sent as "chat".
Endpoint = Literal["chat", "completions", "embeddings", "messages", "count_tokens", "responses"]


class UpstreamRequest(NamedTuple):
    method: str
    url: str
    headers: Sequence[Header]
    body: bytes


class Adapter(Protocol):
    wire: Wire  # what the backend speaks
    framing: Framing  # how its streams are framed
    # The backend's own translator, when its mapping is configuration (type: http); None:
    # `translate.pick(front, wire)` finds it. `translate.choose` asks both.
    translator: "Translator | None"

    def build(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str,
        stream: bool,
        forward: Sequence[Header] = (),
    ) -> UpstreamRequest:
        """The upstream request for `body` (already in this backend's protocol).

        `forward` holds client headers that travel upstream (request id, trace context,
        provider-specific ones such as `anthropic-beta`); credentials never do.
        """
        ...


class Unsupported(UpstreamFailure):
    """The backend has no equivalent of this endpoint (e.g. embeddings on Anthropic)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__("unsupported", f"this backend does not serve {endpoint}")
        self.endpoint = endpoint


class HttpAdapter:
    """What every network adapter shares: its base URL, its credential header and the
    backend's configured extra headers. Subclasses add URLs and `wire`."""

    AUTH_HEADER = "authorization"
    AUTH_PREFIX = "Bearer "
    framing: Framing = "sse"
    translator: "Translator | None" = None

    def __init__(self, backend: "Backend") -> None:
        self._base = backend.base_url.rstrip("/")
        key = backend.api_key
        self._auth: tuple[Header, ...] = (
            ((self.AUTH_HEADER, self.AUTH_PREFIX + key.reveal()),) if key is not None else ()
        )
        self._extra = backend.headers

    def headers(self, forward: Sequence[Header], stream: bool) -> list[Header]:
        # identity: the gateway must be able to read usage out of what comes back. Sent as
        # a header rather than through skip_auto_headers, which costs aiohttp a scan per call.
        headers: list[Header] = [
            ("content-type", "application/json"),
            ("accept-encoding", "identity"),
        ]
        headers.extend(forward)
        headers.extend(self._extra)
        headers.extend(self._auth)  # last: configured credentials win over anything else
        if stream:
            headers.append(("accept", "text/event-stream"))
        return headers
