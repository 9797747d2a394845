"""What a provider adapter is: it builds upstream requests, and nothing else.

An adapter knows its provider's URLs, auth headers and wire protocol. It never sends,
retries, streams or logs; `forward.py` does that the same way for every backend.
"""

from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

Wire = Literal["openai", "anthropic", "gemini"]
Header = tuple[str, str]

# Front-door endpoints, by the path the client used (query strings never matter).
Endpoint = Literal["chat", "completions", "embeddings", "messages", "count_tokens"]


class UpstreamRequest(NamedTuple):
    method: str
    url: str
    headers: Sequence[Header]
    body: bytes


class Adapter(Protocol):
    wire: Wire  # what the backend speaks

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


class Unsupported(Exception):
    """The backend has no equivalent of this endpoint (e.g. embeddings on Anthropic)."""


def common_headers(
    auth: Sequence[Header], extra: Sequence[Header], forward: Sequence[Header]
) -> list[Header]:
    # identity: the gateway must be able to read usage out of what comes back. Sent as a
    # header rather than through skip_auto_headers, which costs aiohttp a scan per request.
    headers: list[Header] = [("content-type", "application/json"), ("accept-encoding", "identity")]
    headers.extend(forward)
    headers.extend(extra)
    headers.extend(auth)  # last: configured credentials win over anything else
    return headers
