"""Azure OpenAI: deployment URLs, `api-version`, and the `api-key` header."""

from collections.abc import Sequence
from urllib.parse import quote

from proxy.config import Backend
from proxy.providers.base import (
    Endpoint,
    Header,
    Unsupported,
    UpstreamRequest,
    Wire,
    common_headers,
)

_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


class AzureAdapter:
    wire: Wire = "openai"

    def __init__(self, backend: Backend) -> None:
        self._base = backend.base_url.rstrip("/")
        self._query = "?api-version=" + quote(backend.api_version or "2024-10-21", safe="")
        self._auth: tuple[Header, ...] = (
            (("api-key", backend.api_key.reveal()),) if backend.api_key is not None else ()
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
        path = _PATHS.get(endpoint)
        if path is None:
            raise Unsupported(endpoint)
        url = f"{self._base}/openai/deployments/{quote(model, safe='')}{path}{self._query}"
        headers = common_headers(self._auth, self._extra, forward)
        if stream:
            headers.append(("accept", "text/event-stream"))
        return UpstreamRequest("POST", url, headers, body)
