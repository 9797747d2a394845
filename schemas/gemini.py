"""Gemini `generateContent` wire Structs: request, response (also each streamed record), errors.

Invariant: camelCase on the wire (`rename="camel"`), snake_case in Python; absent fields are
omitted, never sent as null, because Gemini rejects unknown or null-typed fields in places.
The error body always carries `code`, `message` and `status`.
"""

from typing import Any

from msgspec import UNSET, Struct, UnsetType


class Blob(Struct, rename="camel"):
    mime_type: str
    data: str  # base64


class FileData(Struct, rename="camel", omit_defaults=True):
    file_uri: str
    mime_type: str | None = None


class FunctionCall(Struct, rename="camel", omit_defaults=True):
    name: str
    args: dict[str, Any] = {}  # free-form JSON arguments
    id: str | None = None


class FunctionResponse(Struct, rename="camel", omit_defaults=True):
    name: str
    response: dict[str, Any]  # free-form JSON; {"output": ...} or {"error": ...} by convention
    id: str | None = None


class Part(Struct, rename="camel", omit_defaults=True):
    text: str | None = None
    thought: bool | None = None  # True: `text` is a thought summary
    thought_signature: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None


class Content(Struct, rename="camel", omit_defaults=True):
    parts: list[Part] = []
    role: str | None = None  # "user" | "model"; absent in systemInstruction


class FunctionDeclaration(Struct, rename="camel", omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # OpenAPI-subset schema


class Tool(Struct, rename="camel", omit_defaults=True):
    function_declarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(Struct, rename="camel", omit_defaults=True):
    mode: str | None = None  # AUTO | ANY | NONE | VALIDATED
    allowed_function_names: list[str] | None = None


class ToolConfig(Struct, rename="camel", omit_defaults=True):
    function_calling_config: FunctionCallingConfig | None = None


class ThinkingConfig(Struct, rename="camel", omit_defaults=True):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None


class GenerationConfig(Struct, rename="camel", omit_defaults=True):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    candidate_count: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    thinking_config: ThinkingConfig | None = None


class SafetySetting(Struct, rename="camel"):
    category: str
    threshold: str


class GenerateContentRequest(Struct, rename="camel", omit_defaults=True):
    contents: list[Content]
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[SafetySetting] | None = None


class Candidate(Struct, rename="camel", omit_defaults=True):
    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0


class UsageMetadata(Struct, rename="camel", omit_defaults=True):
    prompt_token_count: int = 0  # includes cached content
    candidates_token_count: int = 0  # excludes thoughts
    total_token_count: int = 0
    thoughts_token_count: int = 0
    cached_content_token_count: int = 0


class PromptFeedback(Struct, rename="camel", omit_defaults=True):
    block_reason: str | None = None


class GenerateContentResponse(Struct, rename="camel", omit_defaults=True):
    candidates: list[Candidate] = []
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    prompt_feedback: PromptFeedback | None = None


class ErrorBody(Struct, rename="camel"):
    code: int
    message: str
    status: str
    details: list[dict[str, Any]] | UnsetType = UNSET


class ErrorEnvelope(Struct):
    error: ErrorBody
