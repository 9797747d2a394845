"""Gemini API: `generateContent` / `streamGenerateContent?alt=sse`, key in `x-goog-api-key`.

The key never goes in the query string (`?key=`), so no URL we log or show can leak it.
"""

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


class GeminiAdapter:
    wire: Wire = "gemini"

    def __init__(self, backend: Backend) -> None:
        self._base = backend.base_url.rstrip("/")
        self._auth: tuple[Header, ...] = (
            (("x-goog-api-key", backend.api_key.reveal()),) if backend.api_key is not None else ()
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
        if endpoint not in ("chat", "messages"):
            raise Unsupported(endpoint)
        verb = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        url = f"{self._base}/v1beta/models/{quote(model, safe='')}{verb}"
        headers = common_headers(self._auth, self._extra, forward)
        return UpstreamRequest("POST", url, headers, body)
