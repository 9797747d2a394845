"""Anthropic Messages API: `/v1/messages`, `x-api-key`, `anthropic-version`."""

from collections.abc import Sequence

from proxy.config import Backend
from proxy.providers.base import (
    Endpoint,
    Header,
    Unsupported,
    UpstreamRequest,
    Wire,
    common_headers,
)

ANTHROPIC_VERSION = "2023-06-01"
_PATHS: dict[str, str] = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}


class AnthropicAdapter:
    wire: Wire = "anthropic"

    def __init__(self, backend: Backend) -> None:
        self._base = backend.base_url.rstrip("/")
        self._auth: tuple[Header, ...] = (
            (("x-api-key", backend.api_key.reveal()),) if backend.api_key is not None else ()
        )
        self._extra = backend.headers

    def build(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str,
        stream: bool,
        forward: Sequence[Header] = (),
    ) -> UpstreamRequest:
        # OpenAI-front requests were translated to Messages already: they go to /v1/messages.
        path = _PATHS.get(endpoint, "/v1/messages" if endpoint == "chat" else None)
        if path is None:
            raise Unsupported(endpoint)
        headers = common_headers(self._auth, self._extra, forward)
        if not any(k == "anthropic-version" for k, _ in forward):
            headers.append(("anthropic-version", ANTHROPIC_VERSION))
        if stream:
            headers.append(("accept", "text/event-stream"))
        return UpstreamRequest("POST", self._base + path, headers, body)
