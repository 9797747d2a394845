"""Gemini API: `generateContent` / `streamGenerateContent?alt=sse`, key in `x-goog-api-key`.

The key never goes in the query string (`?key=`), so no URL we log or show can leak it.
"""

from collections.abc import Sequence
from urllib.parse import quote

from proxy.providers.base import Endpoint, Header, HttpAdapter, Unsupported, UpstreamRequest, Wire


class GeminiAdapter(HttpAdapter):
    wire: Wire = "gemini"
    AUTH_HEADER, AUTH_PREFIX = "x-goog-api-key", ""

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
        # SSE is asked for by `alt=sse`, not by an Accept header.
        return UpstreamRequest("POST", url, self.headers(forward, False), body)
