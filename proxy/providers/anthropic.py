"""Anthropic Messages API: `/v1/messages`, `x-api-key`, `anthropic-version`."""

from collections.abc import Sequence

from proxy.providers.base import Endpoint, Header, HttpAdapter, Unsupported, UpstreamRequest, Wire

ANTHROPIC_VERSION = "2023-06-01"
# OpenAI-front requests were translated to Messages already: "chat" goes to /v1/messages.
_PATHS: dict[str, str] = {
    "messages": "/v1/messages",
    "chat": "/v1/messages",
    "count_tokens": "/v1/messages/count_tokens",
}


class AnthropicAdapter(HttpAdapter):
    wire: Wire = "anthropic"
    AUTH_HEADER, AUTH_PREFIX = "x-api-key", ""

    def build(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str,
        stream: bool,
        forward: Sequence[Header] = (),
    ) -> UpstreamRequest:
        path = _PATHS.get(endpoint)
        if path is None:
            raise Unsupported(endpoint)
        headers = self.headers(forward, stream)
        if not any(k == "anthropic-version" for k, _ in forward):
            headers.append(("anthropic-version", ANTHROPIC_VERSION))
        return UpstreamRequest("POST", self._base + path, headers, body)
