"""What the fake upstream received: `Recorded` requests, and which endpoint each one names.

`_resolve` maps method and path on a wire to an `_Endpoint` (or None: a 404), the way the real
API routes it; Azure's deployment path names the model, Gemini's path names it and the stream.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from multidict import CIMultiDict

from tests.upstreams.behaviours import Wire


@dataclass(frozen=True)
class Recorded:
    index: int
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    json: Any  # decoded body, or None when empty or not JSON
    at: float = field(default=0.0, compare=False)  # time.monotonic() on arrival

    @property
    def stream(self) -> bool:
        return (isinstance(self.json, dict) and self.json.get("stream") is True) or (
            ":streamGenerateContent" in self.path
        )


class _Endpoint(NamedTuple):
    name: Literal[
        "chat", "completions", "embeddings", "models", "model", "messages", "count_tokens",
        "generate", "gemini_models", "responses",
    ]  # fmt: skip
    model: str
    stream: bool
    sse: bool = True


_GEMINI = re.compile(r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)")
_AZURE = re.compile(r"/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)")
_OPENAI_PATHS: dict[str, Literal["chat", "completions", "embeddings", "responses"]] = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",  # the Responses API: tests/upstreams/responses_wire.py
}


def _resolve(wire: Wire, rec: Recorded) -> _Endpoint | None:
    body = rec.json if isinstance(rec.json, dict) else {}
    named = body.get("model")
    model = named if isinstance(named, str) else "unknown"
    stream = body.get("stream") is True
    method, path = rec.method, rec.path
    if wire == "openai":
        if method == "GET" and path == "/v1/models":
            return _Endpoint("models", "", False)
        if method == "GET" and path.startswith("/v1/models/"):
            return _Endpoint("model", path.removeprefix("/v1/models/"), False)
        if method == "POST" and path.startswith("/v1/") and path[4:] in _OPENAI_PATHS:
            return _Endpoint(_OPENAI_PATHS[path[4:]], model, stream)
        if method == "POST" and (m := _AZURE.fullmatch(path)):  # Azure: deployment is the model
            return _Endpoint(_OPENAI_PATHS[m[2]], m[1], stream)
    elif wire == "anthropic":
        if method == "POST" and path == "/v1/messages":
            return _Endpoint("messages", model, stream)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return _Endpoint("count_tokens", model, False)
        if method == "GET" and path == "/v1/models":
            return _Endpoint("models", "", False)
    else:
        if method == "GET" and path == "/v1beta/models":
            return _Endpoint("gemini_models", "", False)
        if method == "POST" and (m := _GEMINI.fullmatch(path)):
            streaming = m[2] == "streamGenerateContent"
            return _Endpoint("generate", m[1], streaming, rec.query.get("alt") == "sse")
    return None
