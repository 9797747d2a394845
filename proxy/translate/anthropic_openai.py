"""Anthropic client → OpenAI-compatible backend: Messages request → chat request, chat
completion → Message, OpenAI error → Anthropic error; the stream lives in
`anthropic_openai_stream`.

Invariant: each `tool_result` becomes exactly one `tool` message, placed right after the
assistant turn that called it and before the rest of that user turn (images a tool returned
follow in a user message, since `tool` messages hold only text); streaming requests always
ask for `stream_options.include_usage` so usage is read, never guessed. Thinking blocks and
the `thinking` and `top_k` parameters are dropped: OpenAI-compatible backends have no
counterpart (and none accepts Anthropic thinking signatures).

`role: "system"` turns inside `messages` (Claude Code sends them for models it does not know;
the Messages API itself does not define them) are accepted: those before the first user or
assistant turn join the top-level `system` in the one leading system message; later ones stay
in place as `system` messages, which the Chat Completions API allows anywhere.
`metadata.user_id` becomes OpenAI `user` as is when it fits OpenAI's 64-character limit,
otherwise as its SHA-256 hex digest (exactly 64 characters: stable per user, never a 400).
"""

import hashlib
from typing import Literal

import msgspec

from proxy.translate.anthropic_openai_stream import Stream, anthropic_usage
from proxy.translate.common import (
    TranslationError,
    anthropic_stop,
    arguments_or_empty,
    decode_error,
    error_type,
    read_error,
)
from schemas import anthropic as an
from schemas import openai as oa

__all__ = ["Stream", "error", "request", "response"]

USER_MAX = 64  # OpenAI: "Invalid 'user': string too long. Expected ... maximum length 64"


class _Role(msgspec.Struct):
    role: object = None  # only the role is read here; the full decode checks the rest


class _SystemTurn(msgspec.Struct):
    role: Literal["system"]
    content: str | list[an.TextBlock]


_messages_request = msgspec.json.Decoder(an.MessagesRequest)
_completion = msgspec.json.Decoder(oa.ChatCompletion)
_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_turns = msgspec.json.Decoder(list[msgspec.Raw])
_role = msgspec.json.Decoder(_Role)
_system_turn = msgspec.json.Decoder(_SystemTurn)
_encode = msgspec.json.Encoder().encode

# (position among the remaining turns, original index, text) of each system turn
Systems = list[tuple[int, int, str]]


def request(body: bytes, model: str, stream: bool) -> bytes:
    try:
        body, systems, index = split_system_turns(body)
        req = _messages_request.decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    leading = [text for pos, _, text in systems if pos == 0]
    later = [(pos, text) for pos, _, text in systems if pos > 0]
    system = "\n\n".join(([system_text(req.system)] if req.system else []) + leading)
    messages: list[oa.Message] = []
    if system:
        messages.append(oa.Message(role="system", content=system))
    for i, m in enumerate(req.messages):
        messages.extend(oa.Message(role="system", content=t) for pos, t in later if pos == i)
        messages.extend(_message(m, f"messages[{index[i] if i < len(index) else i}]"))
    end = len(req.messages)
    messages.extend(oa.Message(role="system", content=t) for pos, t in later if pos >= end)
    tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(req.tools or ())] or None
    choice = req.tool_choice if tools else None
    single = choice is not None and not isinstance(choice, an.ToolChoiceNone)
    single = single and getattr(choice, "disable_parallel_tool_use", None) is True
    out = oa.ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        stream_options=oa.StreamOptions(include_usage=True) if stream else None,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=req.stop_sequences or None,
        user=openai_user(req.metadata.user_id) if req.metadata else None,
        tools=tools,
        tool_choice=_tool_choice(choice),
        parallel_tool_calls=False if single else None,
    )
    return _encode(out)


def split_system_turns(body: bytes) -> tuple[bytes, Systems, list[int]]:
    """`body` without its `role: "system"` turns, those turns, and the original index of each
    remaining turn. Bodies without any come back unchanged (the cheap check first)."""
    if b'"system"' not in body:
        return body, [], []
    top = _top_level.decode(body)
    raw = top.get("messages")
    if raw is None:
        return body, [], []
    try:
        turns = _turns.decode(raw)
        roles = [_role.decode(t).role for t in turns]
    except msgspec.DecodeError:
        return body, [], []  # not a list of objects: the full decode says what is wrong
    if "system" not in roles:
        return body, [], []
    kept: list[msgspec.Raw] = []
    index: list[int] = []
    systems: Systems = []
    for i, (turn, role) in enumerate(zip(turns, roles, strict=True)):
        if role == "system":
            try:
                content = _system_turn.decode(turn).content
            except msgspec.DecodeError as exc:
                text, at, path = str(exc).partition(" - at `$")  # re-rooted at the turn
                raise msgspec.DecodeError(
                    f"{text} - at `$.messages[{i}]{path if at else '`'}"
                ) from None
            systems.append((len(kept), i, system_text(content)))
        else:
            kept.append(turn)
            index.append(i)
    top["messages"] = msgspec.Raw(_encode(kept))
    return _encode(top), systems, index


def openai_user(user_id: str | None) -> str | None:
    """Anthropic `metadata.user_id` within OpenAI's `user` limit: as is when it fits, else
    its SHA-256 hex digest (64 characters, the same for the same id)."""
    if user_id is None or len(user_id) <= USER_MAX:
        return user_id
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


def system_text(system: str | list[an.TextBlock]) -> str:
    """Anthropic `system` as one string: many OpenAI-compatible chat templates allow only one
    system message."""
    return system if isinstance(system, str) else "\n\n".join(b.text for b in system)


def _message(m: an.MessageParam, where: str) -> list[oa.Message]:
    if isinstance(m.content, str):
        return [oa.Message(role=m.role, content=m.content)]
    if m.role == "assistant":
        return _assistant(m.content, where)
    results: list[oa.Message] = []
    parts: list[oa.ContentPart] = []
    returned: list[oa.ContentPart] = []  # non-text content of tool results
    for j, block in enumerate(m.content):
        at = f"{where}.content[{j}]"
        if isinstance(block, an.ToolResultBlock):
            results.append(_tool_result(block, at, returned))
        elif isinstance(block, an.ThinkingBlock | an.RedactedThinkingBlock):
            continue
        elif isinstance(block, an.ToolUseBlock):
            raise TranslationError("tool_use blocks belong in assistant turns", at)
        else:
            parts.extend(_part(block, at))
    if returned or parts:
        results.append(oa.Message(role="user", content=returned + parts))
    return results


def _assistant(blocks: list[an.ContentBlock], where: str) -> list[oa.Message]:
    texts: list[str] = []
    calls: list[oa.ToolCall] = []
    for j, block in enumerate(blocks):
        if isinstance(block, an.TextBlock):
            texts.append(block.text)
        elif isinstance(block, an.ToolUseBlock):
            arguments = _encode(block.input).decode()
            calls.append(oa.ToolCall(id=block.id, function=oa.Function(block.name, arguments)))
        elif not isinstance(block, an.ThinkingBlock | an.RedactedThinkingBlock):
            raise TranslationError(
                "assistant turns may hold only text, tool_use and thinking blocks",
                f"{where}.content[{j}]",
            )
    if not texts and not calls:
        return []
    content = "".join(texts) if texts else None
    return [oa.Message(role="assistant", content=content, tool_calls=calls or None)]


def _tool_result(
    block: an.ToolResultBlock, where: str, returned: list[oa.ContentPart]
) -> oa.Message:
    if block.content is None or isinstance(block.content, str):
        text = block.content or ""
    else:
        texts = []
        for k, item in enumerate(block.content):
            for part in _part(item, f"{where}.content[{k}]"):
                if isinstance(part, oa.TextPart):
                    texts.append(part.text)
                else:
                    returned.append(part)
        text = "\n".join(texts)
    return oa.Message(role="tool", content=text, tool_call_id=block.tool_use_id)


def _part(block: an.ContentBlock, where: str) -> list[oa.ContentPart]:
    if isinstance(block, an.TextBlock):
        return [oa.TextPart(text=block.text)]
    if isinstance(block, an.ImageBlock):
        source = block.source
        if isinstance(source, an.Base64Source):
            url = f"data:{source.media_type};base64,{source.data}"
        elif isinstance(source, an.URLSource):
            url = source.url
        else:
            raise TranslationError("file_id images are not supported by this backend", where)
        return [oa.ImagePart(image_url=oa.ImageURL(url=url))]
    if isinstance(block, an.DocumentBlock):
        return _document(block, where)
    raise TranslationError(f"{block.__struct_config__.tag} blocks are not allowed here", where)


def _document(block: an.DocumentBlock, where: str) -> list[oa.ContentPart]:
    source = block.source
    if isinstance(source, an.TextSource):
        return [oa.TextPart(text=source.data)]
    if isinstance(source, an.ContentSource):
        if isinstance(source.content, str):
            return [oa.TextPart(text=source.content)]
        return [p for k, b in enumerate(source.content) for p in _part(b, f"{where}.content[{k}]")]
    if isinstance(source, an.Base64Source):
        name = f"{block.title or 'document'}.pdf"
        data = f"data:{source.media_type};base64,{source.data}"
        return [oa.FilePart(file=oa.FileData(file_data=data, filename=name))]
    raise TranslationError(
        "documents must be sent inline (base64 or text) for this backend", f"{where}.source"
    )


def _tool(tool: an.Tool, where: str) -> oa.Tool:
    if tool.type not in (None, "custom"):
        raise TranslationError(
            f"server tool {tool.type!r} cannot run on this model's backend", f"{where}.type"
        )
    schema = tool.input_schema or {"type": "object", "properties": {}}
    function = oa.FunctionDef(name=tool.name, description=tool.description, parameters=schema)
    return oa.Tool(function=function)


def _tool_choice(choice: an.ToolChoice | None) -> oa.ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, an.ToolChoiceAuto):
        return "auto"
    if isinstance(choice, an.ToolChoiceAny):
        return "required"
    if isinstance(choice, an.ToolChoiceNone):
        return "none"
    return oa.NamedToolChoice(function=oa.NamedFunction(name=choice.name))


def response(body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
    """Raises msgspec.DecodeError when `body` is not a chat completion."""
    completion = _completion.decode(body)
    blocks: list[an.ContentBlock] = []
    stop = "end_turn"
    if completion.choices:
        choice = completion.choices[0]
        msg = choice.message
        reasoning = msg.reasoning_content or msg.reasoning
        if reasoning:
            blocks.append(an.ThinkingBlock(thinking=reasoning))
        if msg.content:
            blocks.append(an.TextBlock(text=msg.content))
        if msg.refusal:
            blocks.append(an.TextBlock(text=msg.refusal))
        for k, call in enumerate(msg.tool_calls or ()):
            blocks.append(
                an.ToolUseBlock(
                    id=call.id or f"toolu_{completion.id or id}_{k}",
                    name=call.function.name,
                    input=arguments_or_empty(call.function.arguments),
                )
            )
        if choice.finish_reason:
            stop = anthropic_stop(choice.finish_reason)
    usage = completion.usage if completion.usage else oa.Usage()
    out = an.Message(
        id=completion.id or id,
        content=blocks,
        model=model,
        stop_reason=stop,
        usage=anthropic_usage(usage),
    )
    return _encode(out)


def error(status: int, body: bytes) -> bytes:
    up = read_error(status, body)
    envelope = an.ErrorEnvelope(an.ErrorBody(type=error_type(status), message=up.message))
    return _encode(envelope)
