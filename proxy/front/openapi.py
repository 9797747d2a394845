"""`GET /openapi.json` and `GET /docs`: every front door described from the msgspec schemas.

The document is OpenAPI 3.1 (whose schemas are JSON Schema 2020-12, what
`msgspec.json.schema_components` writes), built once per set of key headers and cached.
`/docs` is a self-contained page (no CDN, no network) that reads `/openapi.json`. Invariant:
the request and response schemas are the Structs the gateway decodes and encodes with, so
the description can't drift from the wire; nothing in the document comes from the config
except the names of the key headers.
"""

import asyncio
import functools
from pathlib import Path
from typing import Any

import msgspec
from litestar import get
from litestar.datastructures import State

from schemas import anthropic, openai, simple

_REF = "#/components/schemas/{name}"
JSON = "application/json"
SSE = "text/event-stream"

# (method, path, summary, request type, response type, streams, wire of its errors)
_DOORS: tuple[tuple[str, str, str, Any, Any, Any, str], ...] = (
    (
        "post",
        "/v1/chat/completions",
        "OpenAI chat completions (stream: true for SSE)",
        openai.ChatRequest,
        openai.ChatCompletion,
        openai.ChatCompletionChunk,
        "openai",
    ),
    (
        "post",
        "/v1/completions",
        "OpenAI legacy completions",
        openai.CompletionRequest,
        openai.Completion,
        openai.Completion,
        "openai",
    ),
    (
        "post",
        "/v1/embeddings",
        "OpenAI embeddings",
        openai.EmbeddingRequest,
        openai.EmbeddingResponse,
        None,
        "openai",
    ),
    (
        "post",
        "/v1/messages",
        "Anthropic Messages (stream: true for SSE)",
        anthropic.MessagesRequest,
        anthropic.Message,
        anthropic.StreamEvent,
        "anthropic",
    ),
    (
        "post",
        "/chat",
        "Simple chat: a prompt in, the text out (stream: true for SSE)",
        simple.ChatRequest,
        simple.ChatAnswer,
        (simple.ChatDelta, simple.ChatSummary),
        "openai",
    ),
    ("get", "/v1/models", "OpenAI model list", None, openai.ModelList, None, "openai"),
)


def _catalogue_schema() -> dict[str, Any]:
    target = {
        "type": "object",
        "properties": {
            "backend": {"type": "string"},
            "type": {"type": "string"},
            "model": {"type": "string"},
            "priority": {"type": "integer"},
            "weight": {"type": "integer"},
            "stream": {"type": "boolean"},
            "enabled": {"type": "boolean"},
            "circuit": {"enum": ["closed", "open", "half_open"]},
            "price": {"type": "object", "additionalProperties": {"type": "number"}},
        },
        "required": ["backend", "type", "model", "priority", "weight", "stream", "circuit"],
    }
    entry = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "glob": {"type": "boolean"},
            "strategy": {"type": "string"},
            "available": {"type": "boolean"},
            "stream": {"type": "boolean"},
            "targets": {"type": "array", "items": target},
        },
        "required": ["id", "glob", "available", "stream", "targets"],
    }
    return {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "generation": {"type": "integer"},
            "data": {"type": "array", "items": entry},
        },
        "required": ["object", "data"],
    }


def _plain(summary: str, media: str = JSON, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {media: {"schema": schema or {}}}
    return {"summary": summary, "responses": {"200": {"description": "OK", "content": content}}}


@functools.lru_cache(maxsize=8)
def document(key_headers: tuple[str, ...] = ("authorization", "x-api-key")) -> bytes:
    """The OpenAPI 3.1 document, as JSON bytes."""
    types: list[Any] = [openai.ErrorEnvelope, anthropic.ErrorEnvelope]
    for _, _, _, request, response, stream, _ in _DOORS:
        types += [t for t in (request, response) if t is not None]
        types += list(stream) if isinstance(stream, tuple) else [stream] if stream else []
    found, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = list(found)
    errors = {"openai": refs.pop(0), "anthropic": refs.pop(0)}
    paths: dict[str, Any] = {}
    for method, path, summary, request, _, stream, wire in _DOORS:
        op: dict[str, Any] = {"summary": summary, "operationId": _operation(method, path)}
        if request is not None:
            op["requestBody"] = {"required": True, "content": {JSON: {"schema": refs.pop(0)}}}
        content = {JSON: {"schema": refs.pop(0)}}
        if stream is not None:
            events = [refs.pop(0) for _ in stream] if isinstance(stream, tuple) else [refs.pop(0)]
            event = events[0] if len(events) == 1 else {"anyOf": events}
            # One event's `data:` JSON; OpenAPI 3.1 has no field for SSE items (3.2 adds one).
            content[SSE] = {"schema": {"type": "string"}, "x-sse-data": event}
        op["responses"] = {
            "200": {"description": "OK", "content": content},
            "default": {"description": "error", "content": {JSON: {"schema": errors[wire]}}},
        }
        paths.setdefault(path, {})[method] = op
    catalogue = _plain(
        "Model catalogue: aliases, targets, circuit state", JSON, _catalogue_schema()
    )
    for path in ("/v1/llm/models", "/models"):
        paths[path] = {"get": {**catalogue, "operationId": _operation("get", path)}}
    model_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths["/v1/models/{id}"] = {
        "get": {
            **_plain("OpenAI model retrieve", JSON, {"$ref": _REF.format(name="Model")}),
            "parameters": [model_id],
        }
    }
    for path, summary, media in (
        ("/health", "Liveness", JSON),
        ("/ready", "Readiness: a config is loaded and some target is usable", JSON),
        ("/metrics", "Prometheus metrics", "text/plain"),
        ("/admin/config", "The loaded config, secrets masked (admin)", JSON),
        ("/admin/backends", "Backends and circuit state (admin)", JSON),
        ("/admin/usage", "The usage ledger: ?key=&model=&from=&to=&group=&format= (admin)", JSON),
        ("/ui", "The playground page", "text/html"),
        ("/docs", "This API's documentation page", "text/html"),
        ("/openapi.json", "This document", JSON),
    ):
        paths[path] = {"get": _plain(summary, media)}
    paths["/admin/reload"] = {"post": _plain("Reload routes.yaml now (admin)")}
    schemes = {
        name: (
            {"type": "http", "scheme": "bearer"}
            if name == "authorization"
            else {"type": "apiKey", "in": "header", "name": name}
        )
        for name in key_headers
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "llm-proxy",
            "version": "1",
            "description": "A config-driven LLM gateway: OpenAI- and Anthropic-compatible front "
            "doors, a simple /chat, many backends. Send a client key in any one of the "
            "security schemes' headers when the gateway has keys.",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": schemes},
        "security": [{name: []} for name in schemes] + [{}],
    }
    return msgspec.json.encode(doc)


def _operation(method: str, path: str) -> str:
    words = [w for w in path.replace("{", "").replace("}", "").split("/") if w]
    return method + "".join(w.replace("_", " ").title().replace(" ", "") for w in words)


@get("/openapi.json", media_type=JSON, sync_to_thread=False)
def openapi_json(state: State) -> bytes:
    return document(state.runtime.snapshot.settings.key_headers)


_DOCS = Path(__file__).parent.parent / "ui" / "docs.html"


@get("/docs", media_type="text/html")
async def docs() -> bytes:
    return await asyncio.to_thread(_DOCS.read_bytes)
