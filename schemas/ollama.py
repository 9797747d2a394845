"""Ollama native API wire Structs: `/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`.

Invariant: optional request fields are absent rather than null (`omit_defaults`), except
`stream`, which is always sent: Ollama streams when it is missing. Responses decode leniently
(every field has a default), since Ollama versions add and drop fields; one Struct serves a
whole answer and each streamed NDJSON line, which have the same shape.
"""

from typing import Any

from msgspec import Struct

# -- requests ---------------------------------------------------------------------------------


class FunctionCall(Struct, omit_defaults=True):
    name: str
    arguments: dict[str, Any] = {}  # an object on Ollama's wire, not a JSON string
    index: int | None = None


class ToolCall(Struct, omit_defaults=True):
    function: FunctionCall
    id: str | None = None  # newer Ollama versions name their calls


class Message(Struct, omit_defaults=True):
    role: str
    content: str = ""
    images: list[str] | None = None  # base64, no data: prefix
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None  # on role "tool": the function whose result this is
    thinking: str | None = None


class FunctionDef(Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema


class Tool(Struct):
    function: FunctionDef
    type: str = "function"  # always sent


class ChatRequest(Struct, omit_defaults=True):
    model: str
    messages: list[Message]
    stream: bool  # always sent
    tools: list[Tool] | None = None
    format: str | dict[str, Any] | None = None  # "json" or a JSON Schema
    options: dict[str, Any] | None = None
    keep_alive: str | int | None = None


class GenerateRequest(Struct, omit_defaults=True):
    model: str
    prompt: str
    stream: bool  # always sent
    suffix: str | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | int | None = None


class EmbedRequest(Struct, omit_defaults=True):
    model: str
    input: str | list[str]
    dimensions: int | None = None
    truncate: bool | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | int | None = None


# -- responses (a whole answer, or one NDJSON line of a stream) -------------------------------


class ResponseMessage(Struct):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatResponse(Struct):
    model: str = ""
    created_at: str = ""
    message: ResponseMessage | None = None  # None on /api/generate
    response: str | None = None  # /api/generate's text
    thinking: str | None = None  # /api/generate's thinking
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int = 0  # absent when the whole prompt was cached
    eval_count: int = 0
    error: Any = None  # an error line mid-stream; any shape: a decode boundary


class EmbedResponse(Struct):
    embeddings: list[list[float]]
    model: str = ""
    prompt_eval_count: int = 0


class ModelDetails(Struct):
    family: str = ""
    parameter_size: str = ""


class ListedModel(Struct):
    name: str
    model: str = ""
    modified_at: str = ""
    size: int = 0
    digest: str = ""


class TagsResponse(Struct):
    models: list[ListedModel] = []
