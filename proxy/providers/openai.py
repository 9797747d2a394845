"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, OpenRouter, ...)."""

from collections.abc import Sequence

from proxy.providers.base import Endpoint, Header, HttpAdapter, Unsupported, UpstreamRequest, Wire

PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}


class OpenAIAdapter(HttpAdapter):
    wire: Wire = "openai"

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
        return UpstreamRequest("POST", self._base + path, self.headers(forward, stream), body)
