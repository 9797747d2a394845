"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, OpenRouter, ...)."""

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

_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


class OpenAIAdapter:
    wire: Wire = "openai"

    def __init__(self, backend: Backend) -> None:
        self._base = backend.base_url.rstrip("/")
        auth: list[Header] = []
        if backend.api_key is not None:
            auth.append(("authorization", "Bearer " + backend.api_key.reveal()))
        self._auth = tuple(auth)
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
        headers = common_headers(self._auth, self._extra, forward)
        if stream:
            headers.append(("accept", "text/event-stream"))
        return UpstreamRequest("POST", self._base + path, headers, body)
