"""Azure OpenAI: deployment URLs, `api-version`, and the `api-key` header."""

from collections.abc import Sequence
from urllib.parse import quote

from proxy.config import Backend
from proxy.providers.base import Endpoint, Header, HttpAdapter, Unsupported, UpstreamRequest, Wire
from proxy.providers.openai import PATHS


class AzureAdapter(HttpAdapter):
    wire: Wire = "openai"
    AUTH_HEADER, AUTH_PREFIX = "api-key", ""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._query = "?api-version=" + quote(backend.api_version or "2024-10-21", safe="")

    def build(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str,
        stream: bool,
        forward: Sequence[Header] = (),
    ) -> UpstreamRequest:
        path = PATHS.get(endpoint)
        if path is None or endpoint == "responses":  # Azure's Responses API is not per deployment
            raise Unsupported(endpoint)
        url = f"{self._base}/openai/deployments/{quote(model, safe='')}{path}{self._query}"
        return UpstreamRequest("POST", url, self.headers(forward, stream), body)
