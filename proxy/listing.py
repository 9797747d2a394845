"""Model discovery, the pure half: the listing request for a backend, the model names in its
answer, and the routes those names become.

Ollama lists at `GET /api/tags` (`{"models": [{"name": ...}]}`), OpenAI-compatible servers
(vLLM, LM Studio, llama.cpp server, HF router) at `GET {base_url}/models` (`{"data": [{"id":
...}]}`). Each listed name routes as `PREFIX/NAME` to the backend that listed it, with the
name as the provider-side model id. Invariant: the same listing always gives the same
routes, in listing order, each name once.
"""

from collections.abc import Sequence
from typing import Any

import msgspec

from proxy.config import Backend, Model, Target
from proxy.providers.base import UpstreamRequest

_any = msgspec.json.Decoder()
MAX_MODELS = 4096  # a listing longer than this is cut: routing tables stay bounded


def listing_request(backend: Backend) -> UpstreamRequest:
    """The GET that lists `backend`'s models, with its credentials and configured headers."""
    base = backend.base_url.rstrip("/")
    url = base + ("/api/tags" if backend.type == "ollama" else "/models")
    headers: list[tuple[str, str]] = [("accept", "application/json")]
    headers.extend(backend.headers)
    if backend.api_key is not None:
        headers.append(("authorization", "Bearer " + backend.api_key.reveal()))
    return UpstreamRequest("GET", url, headers, b"")


def parse_listing(backend: Backend, body: bytes) -> tuple[str, ...]:
    """The model names in a listing answer; ValueError when it is not a listing."""
    try:
        doc: Any = _any.decode(body)
    except msgspec.DecodeError:
        raise ValueError("model listing is not JSON") from None
    key, field = ("models", "name") if backend.type == "ollama" else ("data", "id")
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"model listing has no {key!r} list")
    names: dict[str, None] = {}
    for item in items:
        name = item.get(field) if isinstance(item, dict) else None
        if isinstance(name, str) and name and "*" not in name:
            names[name] = None
    return tuple(names)[:MAX_MODELS]


def discovered_routes(backend: Backend, listing: Sequence[str]) -> tuple[Model, ...]:
    """One model per listed name: alias `PREFIX/NAME`, one target on `backend`."""
    prefix = backend.prefix or backend.name
    seen: dict[str, Model] = {}
    for name in listing:
        alias = f"{prefix}/{name}"
        if alias not in seen:
            seen[alias] = Model(alias=alias, targets=(Target(backend=backend.name, model=name),))
    return tuple(seen.values())
