"""Responses API client → Chat Completions backend: Responses request (plus the stored earlier
turns of a `previous_response_id` chain) → chat request, chat completion → response object,
chat error → Responses error; the stream lives in `responses_chat_stream`.

Invariant: content a chat backend cannot express is a TranslationError naming the field, never
silently changed. What is dropped, on purpose: `reasoning` input items (a chat backend has no
place for them), `metadata` (OpenAI's chat endpoint refuses it without `store`; it is echoed in
the response), `store` and `previous_response_id` (the gateway's own business), `truncation`,
`include`, `text.verbosity`, `reasoning.summary`. `instructions` become the first system
message; `developer` messages become `system` ones (every compatible server knows that role);
consecutive `function_call` items become one assistant message's `tool_calls`.
"""

from collections.abc import Callable, Sequence

import msgspec

from proxy.translate.common import TranslationError, decode_error, error_type, read_error
from proxy.translate.responses_chat_stream import Stream
from proxy.translate.responses_output import finished, item_id, responses_usage, shell
from schemas import openai as oa
from schemas import responses as rs

__all__ = [
    "Stream",
    "answer",
    "conversation",
    "decode",
    "error",
    "front_error",
    "items",
    "request",
    "response",
    "stored_items",
]

_request = msgspec.json.Decoder(rs.Request)
_completion = msgspec.json.Decoder(oa.ChatCompletion)
_items = msgspec.json.Decoder(list[rs.InputItem])
_encode = msgspec.json.Encoder().encode


# Chat fields → the Responses fields they were made from, for the `param` of a 400 raised
# by a translator further down (Anthropic, Gemini).
_FIELDS = (
    ("messages", "input"),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
)


def front_error(exc: TranslationError) -> TranslationError:
    """A chat translator's 400, its `param` named as the Responses client sent it (a message
    index cannot be mapped back to an input item index: it becomes `input`)."""
    param = exc.param
    for chat, front in _FIELDS:
        if param is not None and (param == chat or param.startswith((chat + ".", chat + "["))):
            param = front if chat == "messages" else front + param[len(chat) :]
            break
    if param is not None and param.startswith("tools[") and ".function." in param:
        param = param.replace(".function.", ".", 1)
    message = str(exc).replace("response_format", "text.format")
    return TranslationError(message, param)


def decode(body: bytes) -> rs.Request:
    """The client's request; a body that is not one is a TranslationError (400)."""
    try:
        return _request.decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None


def items(req: rs.Request) -> list[rs.InputItem]:
    """The request's input as items (a string input is one user message)."""
    if isinstance(req.input, str):
        return [rs.InputItem(role="user", content=req.input)] if req.input else []
    return req.input


def stored_items(stored: bytes) -> list[rs.InputItem]:
    """The items of a stored conversation (see `conversation`)."""
    return _items.decode(stored)


def request(body: bytes, model: str, stream: bool, history: Sequence[rs.InputItem] = ()) -> bytes:
    req = decode(body)
    messages: list[oa.Message] = []
    if req.instructions:
        messages.append(oa.Message(role="system", content=req.instructions))
    _messages(messages, history, lambda i: "previous_response_id")
    _messages(messages, items(req), lambda i: f"input[{i}]")
    if not messages:
        raise TranslationError("input is empty; send a message or a string", "input")
    out = oa.ChatRequest(
        model=model,
        messages=messages,
        stream=True if stream else None,
        stream_options=oa.StreamOptions(include_usage=True) if stream else None,
        max_completion_tokens=req.max_output_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        user=req.user,
        tools=_tools(req.tools) if req.tools else None,
        tool_choice=_tool_choice(req.tool_choice) if req.tools else None,
        parallel_tool_calls=req.parallel_tool_calls if req.tools else None,
        response_format=_format(req.text.format) if req.text and req.text.format else None,
        reasoning_effort=req.reasoning.effort if req.reasoning else None,
    )
    return _encode(out)


def _messages(
    out: list[oa.Message], items: Sequence[rs.InputItem], where: Callable[[int], str]
) -> None:
    for i, item in enumerate(items):
        if item.type == "message":
            out.append(_message(item, where(i)))
        elif item.type == "function_call":
            if not item.call_id or not item.name:
                raise TranslationError("function_call items need call_id and name", where(i))
            call = oa.ToolCall(item.call_id, oa.Function(item.name, item.arguments or "{}"))
            last = out[-1] if out else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or ()), call]
            else:
                out.append(oa.Message(role="assistant", tool_calls=[call]))
        elif item.type == "function_call_output":
            if not item.call_id:
                raise TranslationError("function_call_output items need call_id", where(i))
            content = _texts(item.output, where(i)) if item.output is not None else ""
            out.append(oa.Message(role="tool", tool_call_id=item.call_id, content=content))
        elif item.type != "reasoning":  # reasoning items: nothing a chat backend can take
            raise TranslationError(
                f"input items of type {item.type!r} are not supported by this model's backend",
                where(i),
            )


def _message(item: rs.InputItem, where: str) -> oa.Message:
    role = item.role or "user"
    content = item.content if item.content is not None else ""
    if role in ("system", "developer"):
        return oa.Message(role="system", content=_texts(content, where))
    if role == "assistant":
        return _assistant(content, where)
    if role != "user":
        raise TranslationError(f"unknown message role {role!r}", where)
    if isinstance(content, str):
        return oa.Message(role="user", content=content)
    return oa.Message(
        role="user", content=[_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    )


def _assistant(content: str | list[rs.ContentPart], where: str) -> oa.Message:
    if isinstance(content, str):
        return oa.Message(role="assistant", content=content)
    texts: list[str] = []
    refusals: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, rs.Refusal):
            refusals.append(part.refusal)
        elif isinstance(part, rs.InputText | rs.OutputText):
            texts.append(part.text)
        else:
            raise TranslationError("assistant messages may hold only text", f"{where}.content[{j}]")
    return oa.Message(
        role="assistant",
        content="".join(texts) if texts or not refusals else None,
        refusal="".join(refusals) if refusals else None,
    )


def _texts(content: str | list[rs.ContentPart], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, rs.InputText | rs.OutputText):
            raise TranslationError("only text parts are allowed here", f"{where}.content[{j}]")
        texts.append(part.text)
    return "".join(texts)


def _part(part: rs.ContentPart, where: str) -> oa.ContentPart:
    if isinstance(part, rs.InputText | rs.OutputText):
        return oa.TextPart(text=part.text)
    if isinstance(part, rs.InputImage):
        if part.image_url is None:
            raise TranslationError(
                "images by file_id are not supported by this model's backend; send image_url",
                where,
            )
        return oa.ImagePart(oa.ImageURL(url=part.image_url, detail=part.detail))
    if isinstance(part, rs.InputFile):
        if part.file_data is None and part.file_id is None:
            raise TranslationError(
                "files by file_url are not supported by this model's backend; send file_data",
                where,
            )
        return oa.FilePart(
            oa.FileData(file_data=part.file_data, file_id=part.file_id, filename=part.filename)
        )
    kind = "refusal" if isinstance(part, rs.Refusal) else "reasoning_text"
    raise TranslationError(f"{kind} parts do not belong in this message", where)


# Tools OpenAI runs on its own servers: a chat backend cannot run them, and clients that
# list them by default (the Codex CLI lists web_search) must still work, so they are left out.
HOSTED_TOOLS = frozenset(
    {
        "web_search", "web_search_preview", "file_search", "code_interpreter", "computer_use",
        "computer_use_preview", "image_generation", "local_shell", "mcp", "custom",
    }
)  # fmt: skip


def _tools(tools: list[rs.FunctionTool]) -> list[oa.Tool] | None:
    """Function tools as chat tools; a `namespace`'s function tools flattened in its place;
    hosted tools left out (the backend cannot run them). Any other kind is a 400."""
    out: list[oa.Tool] = []
    for i, tool in enumerate(tools):
        if tool.type in HOSTED_TOOLS:
            continue
        if tool.type == "namespace":
            for j, inner in enumerate(tool.tools or ()):
                if inner.type not in HOSTED_TOOLS:
                    out.append(_tool(inner, f"tools[{i}].tools[{j}]"))
            continue
        out.append(_tool(tool, f"tools[{i}]"))
    return out or None


def _tool(tool: rs.FunctionTool, where: str) -> oa.Tool:
    if tool.type != "function":
        raise TranslationError(
            f"tools of type {tool.type!r} are not supported by this model's backend; "
            "only function tools (and namespaces of them) are",
            f"{where}.type",
        )
    if not tool.name:
        raise TranslationError("function tools need a name", f"{where}.name")
    return oa.Tool(
        oa.FunctionDef(
            name=tool.name,
            description=tool.description,
            parameters=tool.parameters,
            strict=tool.strict,
        )
    )


def _tool_choice(choice: rs.ToolChoice | None) -> oa.ToolChoice | None:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.type != "function" or not choice.name:
        raise TranslationError(
            f"tool_choice of type {choice.type!r} is not supported by this model's backend",
            "tool_choice",
        )
    return oa.NamedToolChoice(oa.NamedFunction(choice.name))


def _format(fmt: rs.TextFormat) -> oa.ResponseFormat | None:
    if fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return oa.JSONObjectFormat()
    if fmt.type == "json_schema":
        schema = oa.JSONSchema(
            name=fmt.name or "response",
            schema=fmt.schema,
            description=fmt.description,
            strict=fmt.strict,
        )
        return oa.JSONSchemaFormat(schema)
    raise TranslationError(f"text.format type {fmt.type!r} is not known", "text.format.type")


# -- the answer -------------------------------------------------------------------------------


def response(
    body: bytes, model: str, *, id: str = "", created: int = 0, request: rs.Request | None = None
) -> bytes:
    """Raises msgspec.DecodeError when `body` is not a chat completion."""
    return _encode(answer(body, model, id=id, created=created, request=request))


def answer(
    body: bytes, model: str, *, id: str, created: int, request: rs.Request | None = None
) -> rs.Response:
    chat = _completion.decode(body)
    base = shell(request, id=id, created=created, model=model)
    choice = chat.choices[0] if chat.choices else oa.Choice(finish_reason="stop")
    finish = choice.finish_reason or "stop"
    status: rs.Status = "incomplete" if finish in ("length", "content_filter") else "completed"
    msg = choice.message
    calls = msg.tool_calls or []
    output: list[rs.OutputItem] = []
    reasoning = msg.reasoning_content or msg.reasoning
    if isinstance(reasoning, str) and reasoning:
        text = [rs.ReasoningText(text=reasoning)]
        output.append(rs.ReasoningItem(id=item_id(id, "rs", 0), status=status, content=text))
    parts: list[rs.OutputText | rs.Refusal] = []
    if msg.content or not (calls or msg.refusal):
        parts.append(rs.OutputText(text=msg.content or ""))
    if msg.refusal:
        parts.append(rs.Refusal(refusal=msg.refusal))
    if parts:
        msg_id = item_id(id, "msg", len(output))
        output.append(rs.OutputMessage(id=msg_id, status=status, content=parts))
    for call in calls:
        index = len(output)
        output.append(
            rs.FunctionCall(
                id=item_id(id, "fc", index),
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments or "{}",
                status=status,
            )
        )
    usage = responses_usage(chat.usage) if isinstance(chat.usage, oa.Usage) else None
    return finished(base, finish, usage, output)


def error(status: int, body: bytes) -> bytes:
    """The Responses API's errors have the chat shape: keep the upstream's type and code."""
    up = read_error(status, body)
    code = up.code if isinstance(up.code, str) else None
    kind = up.type or error_type(status)
    return _encode(oa.ErrorEnvelope(oa.ErrorBody(message=up.message, type=kind, code=code)))


def conversation(req: rs.Request, history: Sequence[rs.InputItem], done: rs.Response) -> bytes:
    """What the store keeps for a `previous_response_id` continuation: the earlier turns, this
    request's input and this response's output, as one JSON array of input items (output
    items read back as input items). `instructions` are not kept: the API does not carry them
    over to the next turn."""
    return _encode([*history, *items(req), *done.output])
