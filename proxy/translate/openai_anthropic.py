"""OpenAI client → Anthropic backend: chat request → Messages request, Message → chat
completion, Anthropic error → OpenAI error; the stream lives in `openai_anthropic_stream`.

Invariant: content the target cannot express is a TranslationError, never silently changed
(only sampling knobs with no Anthropic counterpart, such as seed, penalties and logprobs, are
dropped): system messages become `system`, tool results become `tool_result` blocks in one
user turn, `max_tokens` is always set (Anthropic requires it), and the reported
`prompt_tokens` count every input token (uncached + cache creation + cache read).
"""

import re
from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET

from proxy.translate.common import (
    TranslationError,
    decode_error,
    error_type,
    openai_finish,
    parse_arguments,
    parse_data_url,
    read_error,
)
from proxy.translate.openai_anthropic_stream import Stream, openai_usage
from schemas import anthropic as an
from schemas import openai as oa

__all__ = ["DEFAULT_MAX_TOKENS", "Stream", "error", "request", "response"]

DEFAULT_MAX_TOKENS: Final = 4096
THINKING_BUDGETS: Final = {"low": 1024, "medium": 2048, "high": 4096}

_chat_request = msgspec.json.Decoder(oa.ChatRequest)
_message = msgspec.json.Decoder(an.Message)
_encode = msgspec.json.Encoder().encode
_TOOL_ID = re.compile(r"[^A-Za-z0-9_-]")  # Anthropic's tool_use id pattern is ^[A-Za-z0-9_-]+$


def request(body: bytes, model: str, stream: bool) -> bytes:
    try:
        req = _chat_request.decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    if req.n not in (None, 1):
        raise TranslationError("n > 1 is not supported by this model's backend; send n=1", "n")
    if isinstance(req.response_format, oa.JSONSchemaFormat):
        raise TranslationError(
            "response_format json_schema is not supported by this model's backend; "
            "describe the format in the prompt or use a tool",
            "response_format",
        )
    system, messages = _messages(req.messages)
    max_tokens = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
    thinking = None
    budget = THINKING_BUDGETS.get(req.reasoning_effort or "")
    if budget is not None:
        thinking = an.Thinking(type="enabled", budget_tokens=budget)
        if max_tokens <= budget:  # Anthropic requires max_tokens > budget_tokens
            max_tokens += budget
    tools = [_tool(t) for t in req.tools] if req.tools else None
    out = an.MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        messages=messages,
        system=system,
        stop_sequences=[req.stop] if isinstance(req.stop, str) else req.stop or None,
        temperature=req.temperature,
        top_p=req.top_p,
        # Anthropic rejects user ids that look like e-mail addresses
        metadata=an.Metadata(user_id=req.user) if req.user and "@" not in req.user else None,
        stream=stream,
        tools=tools,
        # Anthropic rejects tool_choice without tools
        tool_choice=_tool_choice(req.tool_choice, req.parallel_tool_calls) if tools else None,
        thinking=thinking,
    )
    return _encode(out)


def _messages(
    messages: list[oa.Message],
) -> tuple[str | list[an.TextBlock] | None, list[an.MessageParam]]:
    system: list[str] = []
    turns: list[an.MessageParam] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        content: str | list[an.ContentBlock]
        role: Literal["user", "assistant"]
        if m.role in ("system", "developer"):
            system.extend(t for t in _texts(m.content, where) if t)
            continue
        if m.role == "user":
            role, content = "user", _user_content(m.content, where)
        elif m.role == "assistant":
            role, content = "assistant", _assistant_content(m, where)
            if not content and m.content is None:
                continue  # nothing the backend could be sent for this turn
        elif m.role == "tool":
            role, content = "user", [_tool_result(m, where)]
        else:
            raise TranslationError(
                "role 'function' is not supported by this model's backend; use tools",
                f"{where}.role",
            )
        if turns and turns[-1].role == role:  # tool results and what follows share one turn
            turns[-1].content = _blocks(turns[-1].content) + _blocks(content)
        else:
            turns.append(an.MessageParam(role=role, content=content))
    if not system:
        return None, turns
    if len(system) == 1:
        return system[0], turns
    return [an.TextBlock(text=t) for t in system], turns


def _blocks(content: str | list[an.ContentBlock]) -> list[an.ContentBlock]:
    if isinstance(content, str):
        return [an.TextBlock(text=content)] if content else []
    return content


def _texts(content: str | list[oa.ContentPart] | None, where: str) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, oa.TextPart):
            raise TranslationError("only text parts are allowed here", f"{where}.content[{j}]")
        texts.append(part.text)
    return texts


def _user_content(
    content: str | list[oa.ContentPart] | None, where: str
) -> str | list[an.ContentBlock]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    blocks: list[an.ContentBlock] = []
    for j, part in enumerate(content):
        block = _part(part, f"{where}.content[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _part(
    part: oa.ContentPart, where: str
) -> an.TextBlock | an.ImageBlock | an.DocumentBlock | None:
    if isinstance(part, oa.TextPart):
        return an.TextBlock(text=part.text) if part.text else None  # empty text blocks are a 400
    if isinstance(part, oa.ImagePart):
        return an.ImageBlock(source=_image_source(part.image_url.url, f"{where}.image_url.url"))
    if isinstance(part, oa.FilePart) and part.file.file_data:
        data = parse_data_url(part.file.file_data)
        if data is not None and data[0] == "application/pdf":
            return an.DocumentBlock(
                source=an.Base64Source(media_type=data[0], data=data[1]), title=part.file.filename
            )
        raise TranslationError(
            "only PDF files sent as base64 data: URLs are supported by this model's backend",
            f"{where}.file.file_data",
        )
    kind = {oa.AudioPart: "input_audio", oa.FilePart: "file ids", oa.RefusalPart: "refusal"}
    raise TranslationError(
        f"{kind.get(type(part), 'this')} content is not supported by this model's backend", where
    )


def _image_source(url: str, where: str) -> an.Base64Source | an.URLSource:
    data = parse_data_url(url)
    if data is not None:
        return an.Base64Source(media_type=data[0], data=data[1])
    if url.startswith(("https://", "http://")):
        return an.URLSource(url=url)
    raise TranslationError("image_url must be an http(s) URL or a base64 data: URL", where)


def _assistant_content(m: oa.Message, where: str) -> str | list[an.ContentBlock]:
    if isinstance(m.content, str) and not m.tool_calls:
        return m.content
    blocks: list[an.ContentBlock] = []
    if isinstance(m.content, str):
        blocks.extend(_blocks(m.content))
    elif m.content is not None:
        for j, part in enumerate(m.content):
            text = part.refusal if isinstance(part, oa.RefusalPart) else None
            if isinstance(part, oa.TextPart):
                text = part.text
            if text is None:
                raise TranslationError(
                    "assistant messages may hold only text", f"{where}.content[{j}]"
                )
            blocks.extend(_blocks(text))
    for k, call in enumerate(m.tool_calls or ()):
        arguments = f"{where}.tool_calls[{k}].function.arguments"
        blocks.append(
            an.ToolUseBlock(
                id=tool_id(call.id),
                name=call.function.name,
                input=parse_arguments(call.function.arguments, arguments),
            )
        )
    return blocks


def tool_id(call_id: str) -> str:
    """An OpenAI tool-call id as a valid Anthropic tool_use id (same input, same output)."""
    return _TOOL_ID.sub("_", call_id) or "call"


def _tool_result(m: oa.Message, where: str) -> an.ToolResultBlock:
    if not m.tool_call_id:
        raise TranslationError("tool messages need a tool_call_id", f"{where}.tool_call_id")
    content: str | list[an.TextBlock | an.ImageBlock | an.DocumentBlock]
    if m.content is None or isinstance(m.content, str):
        content = m.content or ""
    else:
        content = []
        for j, part in enumerate(m.content):
            block = _part(part, f"{where}.content[{j}]")
            if block is not None:
                content.append(block)
    return an.ToolResultBlock(tool_use_id=tool_id(m.tool_call_id), content=content)


def _tool(tool: oa.Tool) -> an.Tool:
    f = tool.function
    schema = f.parameters if f.parameters is not None else {"type": "object", "properties": {}}
    return an.Tool(name=f.name, description=f.description, input_schema=schema)


def _tool_choice(choice: oa.ToolChoice | None, parallel: bool | None) -> an.ToolChoice | None:
    single = True if parallel is False else None  # disable_parallel_tool_use
    if choice is None:
        return an.ToolChoiceAuto(disable_parallel_tool_use=True) if single else None
    if choice == "none":
        return an.ToolChoiceNone()
    if choice == "auto":
        return an.ToolChoiceAuto(disable_parallel_tool_use=single)
    if choice == "required":
        return an.ToolChoiceAny(disable_parallel_tool_use=single)
    return an.ToolChoiceTool(name=choice.function.name, disable_parallel_tool_use=single)


def response(body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
    """Raises msgspec.DecodeError when `body` is not an Anthropic Message."""
    msg = _decode_message(body)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[oa.ToolCall] = []
    for block in msg.content:
        if isinstance(block, an.TextBlock):
            texts.append(block.text)
        elif isinstance(block, an.ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, an.ToolUseBlock):
            arguments = _encode(block.input).decode()
            calls.append(oa.ToolCall(id=block.id, function=oa.Function(block.name, arguments)))
    message = oa.ResponseMessage(
        content="".join(texts) if texts or not calls else None,
        refusal=None,
        tool_calls=calls or UNSET,
        reasoning_content="".join(reasoning) if reasoning else UNSET,
    )
    finish = openai_finish(msg.stop_reason) if msg.stop_reason else "stop"
    out = oa.ChatCompletion(
        id=msg.id or id,
        created=created,
        model=model,
        choices=[oa.Choice(message=message, finish_reason=finish)],
        usage=openai_usage(msg.usage),
    )
    return _encode(out)


def _decode_message(body: bytes) -> an.Message:
    try:
        return _message.decode(body)
    except msgspec.ValidationError:
        # A block type newer than this code: drop it, keep the rest.
        doc: Any = msgspec.json.decode(body)
        if isinstance(doc, dict) and isinstance(doc.get("content"), list):
            doc["content"] = [
                b for b in doc["content"] if isinstance(b, dict) and b.get("type") in an.BLOCK_TYPES
            ]
        return msgspec.convert(doc, an.Message)


def error(status: int, body: bytes) -> bytes:
    up = read_error(status, body)
    kind = up.type if up.type and up.type != "error" else error_type(status)
    return _encode(oa.ErrorEnvelope(oa.ErrorBody(message=up.message, type=kind)))
