"""OpenAI Responses API wire Structs: the request, its input items, the response object, its
output items, usage, and every streaming event the gateway emits.

Invariant: encoding produces what openai-python's `responses` types read. Requests decode
leniently: an input item is one Struct with every item kind's fields (`type` defaults to
`message`, as the API's "easy" input message has none), so the output items of a stored
response decode as input items of the next turn unchanged. Response objects always carry the
keys the SDK reads unconditionally (`output`, `error`, `incomplete_details`, `usage`, `tools`,
`parallel_tool_calls`, `tool_choice`); every stream event carries `type` and `sequence_number`.
"""

from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType, field

# -- request: content parts and input items ---------------------------------------------------


class InputText(Struct, tag_field="type", tag="input_text"):
    text: str


class InputImage(Struct, tag_field="type", tag="input_image", omit_defaults=True):
    image_url: str | None = None  # an http(s) or base64 data: URL
    file_id: str | None = None
    detail: str | None = None


class InputFile(Struct, tag_field="type", tag="input_file", omit_defaults=True):
    file_data: str | None = None  # a data: URL
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(Struct, tag_field="type", tag="output_text"):
    """Assistant text: in output items, and in the input items that replay them."""

    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class Refusal(Struct, tag_field="type", tag="refusal"):
    refusal: str


class ReasoningText(Struct, tag_field="type", tag="reasoning_text"):
    text: str


# reasoning_text: the content of a replayed reasoning item (dropped for chat backends)
ContentPart = InputText | InputImage | InputFile | OutputText | Refusal | ReasoningText


class InputItem(Struct, omit_defaults=True):
    """Any input item; which fields matter depends on `type`."""

    type: str = "message"
    role: str | None = None  # message: user | assistant | system | developer
    content: str | list[ContentPart] | None = None  # message
    id: str | None = None
    status: str | None = None
    call_id: str | None = None  # function_call, function_call_output
    name: str | None = None  # function_call
    arguments: str | None = None  # function_call
    output: str | list[ContentPart] | None = None  # function_call_output


# -- request: tools and options ---------------------------------------------------------------


class FunctionTool(Struct, omit_defaults=True):
    """Any tool: `type` is a plain field, so hosted tools (`web_search`, ...) decode too;
    a `namespace` (as the Codex CLI sends) groups function tools in `tools`."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    tools: "list[FunctionTool] | None" = None


class NamedTool(Struct, omit_defaults=True):
    type: str  # "function" is the one a chat backend can take
    name: str | None = None


ToolChoice = Literal["none", "auto", "required"] | NamedTool


class Reasoning(Struct, omit_defaults=True):
    effort: str | None = None
    summary: str | None = None


class TextFormat(Struct, omit_defaults=True):
    type: str  # text | json_object | json_schema
    name: str | None = None  # json_schema
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class Request(Struct, omit_defaults=True):
    model: str
    input: str | list[InputItem] = ""
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    text: TextConfig | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool | None = None
    user: str | None = None


# -- response: output items and usage ---------------------------------------------------------

Status = Literal["in_progress", "completed", "incomplete", "failed"]


class OutputMessage(Struct, tag_field="type", tag="message"):
    id: str
    status: Status
    content: list[OutputText | Refusal] = []
    role: str = "assistant"


class FunctionCall(Struct, tag_field="type", tag="function_call"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: Status


class ReasoningItem(Struct, tag_field="type", tag="reasoning"):
    """Reasoning a chat backend streamed as `reasoning_content` (or Anthropic thinking, Gemini
    thoughts), as readable text; there is no summary and nothing encrypted to send back."""

    id: str
    status: Status
    summary: list[Any] = []
    content: list[ReasoningText] = []


OutputItem = OutputMessage | FunctionCall | ReasoningItem


class InputTokensDetails(Struct):
    cached_tokens: int = 0
    cache_write_tokens: int = 0  # openai-python requires it; chat usage has no such count


class OutputTokensDetails(Struct):
    reasoning_tokens: int = 0


class Usage(Struct):
    input_tokens: int = 0  # every input token, cache reads included
    output_tokens: int = 0  # every output token, reasoning included
    total_tokens: int = 0
    input_tokens_details: InputTokensDetails = field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = field(default_factory=OutputTokensDetails)


class ErrorDetail(Struct):
    """`response.error`: the API names a fixed set of codes; `server_error` is the catch-all."""

    code: str
    message: str


class IncompleteDetails(Struct):
    reason: Literal["max_output_tokens", "content_filter"]


class Response(Struct, kw_only=True):
    id: str
    object: str = "response"
    created_at: int
    status: Status
    model: str
    output: list[OutputItem] = []
    error: ErrorDetail | None = None
    incomplete_details: IncompleteDetails | None = None
    usage: Usage | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = {}
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: Reasoning | None = None
    store: bool = True
    temperature: float | None = None
    text: TextConfig = field(default_factory=lambda: TextConfig(format=TextFormat(type="text")))
    tool_choice: ToolChoice = "auto"
    tools: list[FunctionTool] = []
    top_p: float | None = None
    truncation: str = "disabled"
    user: str | None = None


class Deleted(Struct):
    """The body of `DELETE /v1/responses/{id}`."""

    id: str
    object: str = "response.deleted"
    deleted: bool = True


# -- streaming events -------------------------------------------------------------------------
# The SSE frame's `event:` line is the event's `type`; data is the JSON of one of these.


class _Event(Struct, kw_only=True, tag_field="type"):
    sequence_number: int = 0  # the stream's emitter numbers events as it sends them


class ResponseEvent(_Event):
    """response.created | response.in_progress | response.completed | response.incomplete |
    response.failed: the whole response object as it stands."""

    response: Response


class Created(ResponseEvent, tag="response.created"):
    pass


class InProgress(ResponseEvent, tag="response.in_progress"):
    pass


class Completed(ResponseEvent, tag="response.completed"):
    pass


class Incomplete(ResponseEvent, tag="response.incomplete"):
    pass


class Failed(ResponseEvent, tag="response.failed"):
    pass


class ItemAdded(_Event, tag="response.output_item.added"):
    output_index: int
    item: OutputItem


class ItemDone(_Event, tag="response.output_item.done"):
    output_index: int
    item: OutputItem


class PartAdded(_Event, tag="response.content_part.added"):
    item_id: str
    output_index: int
    content_index: int
    part: OutputText | ReasoningText


class PartDone(_Event, tag="response.content_part.done"):
    item_id: str
    output_index: int
    content_index: int
    part: OutputText | ReasoningText


class TextDelta(_Event, tag="response.output_text.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = []


class TextDone(_Event, tag="response.output_text.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = []


class ReasoningDelta(_Event, tag="response.reasoning_text.delta"):
    item_id: str
    output_index: int
    content_index: int
    delta: str


class ReasoningDone(_Event, tag="response.reasoning_text.done"):
    item_id: str
    output_index: int
    content_index: int
    text: str


class ArgumentsDelta(_Event, tag="response.function_call_arguments.delta"):
    item_id: str
    output_index: int
    delta: str


class ArgumentsDone(_Event, tag="response.function_call_arguments.done"):
    item_id: str
    output_index: int
    arguments: str
    name: str | UnsetType = UNSET


class StreamErrorBody(Struct):
    """The nested `error` object: openai-python raises APIError on any frame whose data has a
    top-level `error` key, so a broken stream surfaces as an exception in the client."""

    message: str
    type: str
    code: str | None = None
    param: str | None = None


class Error(_Event, tag="error"):
    """`error`: ResponseErrorEvent's flat fields, plus the nested envelope the SDKs act on."""

    message: str
    code: str | None
    error: StreamErrorBody
    param: str | None = None


StreamEvent = (
    Created
    | InProgress
    | Completed
    | Incomplete
    | Failed
    | ItemAdded
    | ItemDone
    | PartAdded
    | PartDone
    | TextDelta
    | TextDone
    | ReasoningDelta
    | ReasoningDone
    | ArgumentsDelta
    | ArgumentsDone
    | Error
)
