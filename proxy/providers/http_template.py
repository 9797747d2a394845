"""`type: http`: a model server with its own JSON shape, described by a template in
routes.yaml (see `proxy.template`). The body arrives already rendered by the backend's own
translator (`translator`, a `translate.openai_http.HttpTranslator`), so this adapter, like
every other, only knows the method, the URL and the headers.

Invariant: only chat-shaped front doors reach it (`chat`, and `messages` through the
Anthropic composition); completions and embeddings are `Unsupported`.
"""

from collections.abc import Sequence

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
from proxy.template import HttpTemplate
from proxy.translate.common import Translator
from proxy.translate.openai_http import HttpTranslator

_ACCEPT: dict[Framing, str] = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}


class HttpTemplateAdapter(HttpAdapter):
    wire: Wire = "http"

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._t = backend.template or HttpTemplate()
        self.framing: Framing = self._t.stream_format or "sse"
        self.translator: Translator | None = HttpTranslator(self._t)

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
        path = (self._t.stream_path or self._t.path) if stream else self._t.path
        headers = self.headers(forward, False)
        if stream:
            headers.append(("accept", _ACCEPT[self.framing]))
        return UpstreamRequest(self._t.method, self._base + path, headers, body)
