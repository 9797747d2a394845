"""OpenAI wire Structs: chat completions (request, response, chunk), legacy completions,
embeddings, models, and the error envelope.

Invariant: encoding produces what openai-python expects. Optional request fields are absent
rather than null (`omit_defaults`); response objects always carry `object`, choices always carry
`finish_reason` and `logprobs` (null until known), a message always carries `content`, an error
body always carries all four keys, and a chunk carries `usage` only when the stream carries
usage (UNSET fields are never encoded). Decoding is lenient where OpenAI-compatible servers
differ (missing `created`, `usage`, details), strict where the wire is fixed.
"""

from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType, field

# -- errors ---------------------------------------------------------------------------------


class ErrorBody(Struct):
    """All four keys are always encoded; openai-python reads `param`/`code` unconditionally."""

    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorEnvelope(Struct):
    error: ErrorBody


# -- chat completions request -----------------------------------------------------------------


class TextPart(Struct, tag_field="type", tag="text"):
    text: str


class ImageURL(Struct, omit_defaults=True):
    url: str
    detail: str | None = None


class ImagePart(Struct, tag_field="type", tag="image_url"):
    image_url: ImageURL


class InputAudio(Struct):
    data: str
    format: str


class AudioPart(Struct, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class FileData(Struct, omit_defaults=True):
    file_data: str | None = None  # a data: URL
    file_id: str | None = None
    filename: str | None = None


class FilePart(Struct, tag_field="type", tag="file"):
    file: FileData


class RefusalPart(Struct, tag_field="type", tag="refusal"):
    refusal: str


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart


class Function(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: Function
    type: str = "function"


Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(Struct, omit_defaults=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None


class FunctionDef(Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema: free-form JSON
    strict: bool | None = None


class Tool(Struct, tag_field="type", tag="function"):
    function: FunctionDef


class NamedFunction(Struct):
    name: str


class NamedToolChoice(Struct, tag_field="type", tag="function"):
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool | None = None


class JSONSchema(Struct, omit_defaults=True):
    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextFormat(Struct, tag_field="type", tag="text"):
    pass


class JSONObjectFormat(Struct, tag_field="type", tag="json_object"):
    pass


class JSONSchemaFormat(Struct, tag_field="type", tag="json_schema"):
    json_schema: JSONSchema


ResponseFormat = TextFormat | JSONObjectFormat | JSONSchemaFormat


class ChatRequest(Struct, omit_defaults=True):
    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    metadata: dict[str, str] | None = None


# -- usage ------------------------------------------------------------------------------------


class PromptTokensDetails(Struct):
    cached_tokens: int = 0


class CompletionTokensDetails(Struct):
    reasoning_tokens: int = 0


class Usage(Struct):
    prompt_tokens: int = 0  # all input tokens, cache reads included
    completion_tokens: int = 0  # all output tokens, reasoning included
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | UnsetType | None = UNSET
    completion_tokens_details: CompletionTokensDetails | UnsetType | None = UNSET


# -- chat completions response ----------------------------------------------------------------


class ResponseMessage(Struct):
    content: str | None = None
    role: str = "assistant"
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET
    reasoning: str | UnsetType | None = UNSET  # what some compatible servers call it; read only


class Choice(Struct):
    index: int = 0
    message: ResponseMessage = field(default_factory=ResponseMessage)
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatCompletion(Struct):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = []
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET


# -- chat completions chunk -------------------------------------------------------------------


class ChunkFunction(Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(Struct, omit_defaults=True):
    """`index` on every entry; `id`, `type` and `name` only on the first for an index."""

    index: int
    id: str | None = None
    type: str | None = None
    function: ChunkFunction | None = None


class Delta(Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None  # read only (some compatible servers)
    refusal: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(Struct):
    index: int = 0
    delta: Delta = field(default_factory=Delta)
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(Struct):
    """`usage` stays UNSET (absent) unless the client asked for usage: then null on every
    chunk but the last, which has `choices: []` and the totals."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET


# -- legacy completions -----------------------------------------------------------------------


class CompletionRequest(Struct, omit_defaults=True):
    model: str
    prompt: str | list[str | int | list[int]] = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    suffix: str | None = None
    echo: bool | None = None
    logprobs: int | None = None
    seed: int | None = None
    user: str | None = None


class CompletionChoice(Struct):
    text: str = ""
    index: int = 0
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class Completion(Struct):
    """A `text_completion` object; streamed chunks have the same shape."""

    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice] = []
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET


# -- embeddings -------------------------------------------------------------------------------


class EmbeddingRequest(Struct, omit_defaults=True):
    model: str
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


class Embedding(Struct):
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32
    object: str = "embedding"


class EmbeddingUsage(Struct):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(Struct):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage = field(default_factory=EmbeddingUsage)
    object: str = "list"


# -- models -----------------------------------------------------------------------------------


class Model(Struct):
    id: str
    created: int = 0
    owned_by: str = "llm-proxy"
    object: str = "model"


class ModelList(Struct):
    data: list[Model]
    object: str = "list"
