"""Anthropic Messages wire Structs: request, response, every stream event, the error envelope.

Invariant: content blocks, sources, tool choices, deltas and stream events are tagged unions on
`type`, so the tag is always encoded and decoding dispatches on it. A block type this module
does not know fails the whole decode; readers that must survive it (responses, stream events)
filter by `BLOCK_TYPES` and re-convert, see `proxy.translate`. Fields the wire always carries
(`stop_reason`, `usage` counts, `thinking.signature`, `tool_use.input`) are always encoded.
"""

from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType, field

# -- content blocks ---------------------------------------------------------------------------


class CacheControl(Struct, omit_defaults=True):
    type: str = "ephemeral"
    ttl: str | None = None


class Base64Source(Struct, tag_field="type", tag="base64"):
    media_type: str
    data: str


class URLSource(Struct, tag_field="type", tag="url"):
    url: str


class FileSource(Struct, tag_field="type", tag="file"):
    file_id: str


class TextSource(Struct, tag_field="type", tag="text"):
    data: str
    media_type: str = "text/plain"


class TextBlock(Struct, tag_field="type", tag="text", omit_defaults=True):
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None  # free-form citation objects


class ImageBlock(Struct, tag_field="type", tag="image", omit_defaults=True):
    source: Base64Source | URLSource | FileSource
    cache_control: CacheControl | None = None


class ContentSource(Struct, tag_field="type", tag="content"):
    content: str | list[TextBlock | ImageBlock]


class DocumentBlock(Struct, tag_field="type", tag="document", omit_defaults=True):
    source: Base64Source | URLSource | FileSource | TextSource | ContentSource
    title: str | None = None
    context: str | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(Struct, tag_field="type", tag="tool_use", omit_defaults=True):
    id: str
    name: str
    input: dict[str, Any]  # no default: always encoded, `{}` at content_block_start
    cache_control: CacheControl | None = None


class ToolResultBlock(Struct, tag_field="type", tag="tool_result", omit_defaults=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(Struct, tag_field="type", tag="thinking"):
    thinking: str = ""
    signature: str = ""  # always encoded: the SDK's ThinkingBlock requires it


class RedactedThinkingBlock(Struct, tag_field="type", tag="redacted_thinking"):
    data: str


ContentBlock = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)

BLOCK_TYPES: frozenset[str] = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)


# -- request ----------------------------------------------------------------------------------


class MessageParam(Struct):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(Struct, omit_defaults=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None  # JSON Schema; absent on server tools
    type: str | None = None  # None/"custom": a client tool; else a server tool version
    cache_control: CacheControl | None = None


class ToolChoiceAuto(Struct, tag_field="type", tag="auto", omit_defaults=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, tag_field="type", tag="any", omit_defaults=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, tag_field="type", tag="tool", omit_defaults=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, tag_field="type", tag="none"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Thinking(Struct, omit_defaults=True):
    type: str  # "enabled" | "disabled" | "adaptive"
    budget_tokens: int | None = None


class Metadata(Struct, omit_defaults=True):
    user_id: str | None = None


class MessagesRequest(Struct, omit_defaults=True):
    model: str
    max_tokens: int
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: Metadata | None = None
    stream: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    service_tier: str | None = None


# -- response ---------------------------------------------------------------------------------


class Usage(Struct):
    input_tokens: int = 0  # uncached input only; total = this + cache creation + cache read
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]


class Message(Struct):
    id: str = ""
    type: str = "message"
    role: str = "assistant"
    content: list[ContentBlock] = []
    model: str = ""
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)


# -- errors -----------------------------------------------------------------------------------


class ErrorBody(Struct):
    type: str
    message: str


class ErrorEnvelope(Struct, tag_field="type", tag="error", omit_defaults=True):
    """The error body of a response, and the `error` stream event."""

    error: ErrorBody
    request_id: str | UnsetType | None = UNSET  # the gateway always sends it, null if unknown


# -- stream events ----------------------------------------------------------------------------


class MessageStart(Struct, tag_field="type", tag="message_start"):
    message: Message


class ContentBlockStart(Struct, tag_field="type", tag="content_block_start"):
    index: int
    content_block: ContentBlock


class TextDelta(Struct, tag_field="type", tag="text_delta"):
    text: str


class InputJSONDelta(Struct, tag_field="type", tag="input_json_delta"):
    partial_json: str


class ThinkingDelta(Struct, tag_field="type", tag="thinking_delta"):
    thinking: str


class SignatureDelta(Struct, tag_field="type", tag="signature_delta"):
    signature: str


class CitationsDelta(Struct, tag_field="type", tag="citations_delta"):
    citation: dict[str, Any]


BlockDelta = TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta | CitationsDelta


class ContentBlockDelta(Struct, tag_field="type", tag="content_block_delta"):
    index: int
    delta: BlockDelta


class ContentBlockStop(Struct, tag_field="type", tag="content_block_stop"):
    index: int


class MessageDeltaBody(Struct):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class DeltaUsage(Struct, omit_defaults=True):
    """Cumulative: the SDK replaces its running counts with these."""

    output_tokens: int
    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class MessageDelta(Struct, tag_field="type", tag="message_delta"):
    delta: MessageDeltaBody
    usage: DeltaUsage


class MessageStop(Struct, tag_field="type", tag="message_stop"):
    pass


class Ping(Struct, tag_field="type", tag="ping"):
    pass


StreamEvent = (
    MessageStart
    | ContentBlockStart
    | ContentBlockDelta
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | ErrorEnvelope
)
