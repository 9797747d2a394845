"""Ollama's native API: `/api/chat`, `/api/generate`, `/api/embed` on the server root, NDJSON
streams, and the backend's `options` and `keep_alive` added to every request.

The body arrives already translated (`translate.openai_ollama`); this adapter only adds what
the backend config says. Invariant: the client's own sampling options win over the backend's
`options` defaults, key by key; `keep_alive` is added only where the body has none.
"""

from collections.abc import Sequence
from typing import Any

import msgspec

from proxy.config import Backend
from proxy.providers.base import (
    Endpoint,
    Framing,
    Header,
    HttpAdapter,
    Unsupported,
    UpstreamRequest,
    Wire,
)

# Anthropic-front requests were translated to an Ollama chat already: "messages" → /api/chat.
PATHS: dict[str, str] = {
    "chat": "/api/chat",
    "messages": "/api/chat",
    "completions": "/api/generate",
    "embeddings": "/api/embed",
}
TAGS = "/api/tags"

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_options = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode


class OllamaAdapter(HttpAdapter):
    wire: Wire = "ollama"
    framing: Framing = "ndjson"

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._defaults = dict(backend.options)
        self._keep_alive = _keep_alive(backend.keep_alive)

    def build(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str,
        stream: bool,
        forward: Sequence[Header] = (),
    ) -> UpstreamRequest:
        path = PATHS.get(endpoint)
        if path is None:
            raise Unsupported(endpoint)
        headers = self.headers(forward, False)
        if stream:
            headers.append(("accept", "application/x-ndjson"))
        return UpstreamRequest("POST", self._base + path, headers, self.with_defaults(body))

    def with_defaults(self, body: bytes) -> bytes:
        """`body` with the backend's options under the request's own, and its keep_alive."""
        if not self._defaults and self._keep_alive is None:
            return body
        fields = _fields.decode(body)
        if self._defaults:
            given = _options.decode(fields["options"]) if "options" in fields else {}
            fields["options"] = msgspec.Raw(_encode({**self._defaults, **given}))
        if self._keep_alive is not None and "keep_alive" not in fields:
            fields["keep_alive"] = msgspec.Raw(_encode(self._keep_alive))
        return _encode(fields)


def _keep_alive(value: str | None) -> str | int | None:
    """Ollama reads a bare number as seconds and a string as a Go duration."""
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value
