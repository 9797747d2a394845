"""OpenAI client → Gemini backend: chat request → `generateContent` body, Gemini response →
chat completion, Gemini error → OpenAI error; the stream lives in `openai_gemini_stream`.

Invariant: the body never names the model (Gemini takes it from the URL); `assistant` becomes
`model`, system messages become `systemInstruction`, tool results become `functionResponse`
parts named after the call they answer (looked up by `tool_call_id`), consecutive turns of one
role are merged. Tool-call ids Gemini does not give are synthesized from the response id and
the call's position, so the same input always yields the same ids.
"""

from typing import Final

import msgspec

from proxy.translate.common import (
    TranslationError,
    decode_error,
    error_type,
    gemini_finish,
    parse_arguments,
    parse_data_url,
    read_error,
)
from proxy.translate.gemini_schema import clean, parameters
from proxy.translate.openai_gemini_stream import Stream, openai_usage, tool_call_id
from schemas import gemini as gm
from schemas import openai as oa

__all__ = ["Stream", "error", "request", "response"]

THINKING_BUDGETS: Final = {"low": 1024, "medium": 8192, "high": 24576}
# Gemini 3 rejects a replayed function call without the thought signature it was issued with;
# history from elsewhere has none, and Google documents this value for exactly that case.
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"

_chat_request = msgspec.json.Decoder(oa.ChatRequest)
_response = msgspec.json.Decoder(gm.GenerateContentResponse)
_encode = msgspec.json.Encoder().encode


def request(body: bytes, model: str, stream: bool) -> bytes:
    try:
        req = _chat_request.decode(body)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None
    system, contents = _contents(req.messages)
    tools = None
    if req.tools:
        declarations = [
            gm.FunctionDeclaration(
                name=t.function.name,
                description=t.function.description,
                parameters=parameters(t.function.parameters),
            )
            for t in req.tools
        ]
        tools = [gm.Tool(function_declarations=declarations)]
    out = gm.GenerateContentRequest(
        contents=contents,
        system_instruction=gm.Content(parts=system) if system else None,
        tools=tools,
        tool_config=_tool_config(req.tool_choice) if tools else None,
        generation_config=_generation_config(req),
    )
    return _encode(out)


def _contents(messages: list[oa.Message]) -> tuple[list[gm.Part], list[gm.Content]]:
    system: list[gm.Part] = []
    contents: list[gm.Content] = []
    names: dict[str, str] = {}  # tool_call id → function name, for functionResponse
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if m.role in ("system", "developer"):
            system.extend(_parts(m.content, where, text_only=True))
            continue
        if m.role == "user":
            role, parts = "user", _parts(m.content, where)
        elif m.role == "assistant":
            role, parts = "model", _model_parts(m, where, names)
        elif m.role == "tool":
            role, parts = "user", [_function_response(m, where, names)]
        else:
            raise TranslationError(
                "role 'function' is not supported by this model's backend; use tools",
                f"{where}.role",
            )
        if not parts:
            continue
        if contents and contents[-1].role == role:
            contents[-1].parts.extend(parts)
        else:
            contents.append(gm.Content(role=role, parts=parts))
    return system, contents


def _parts(
    content: str | list[oa.ContentPart] | None, where: str, *, text_only: bool = False
) -> list[gm.Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [gm.Part(text=content)] if content else []
    parts: list[gm.Part] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(part, oa.TextPart):
            if part.text:
                parts.append(gm.Part(text=part.text))
        elif text_only:
            raise TranslationError("only text parts are allowed here", at)
        elif isinstance(part, oa.ImagePart):
            parts.append(_inline(part.image_url.url, f"{at}.image_url.url"))
        elif isinstance(part, oa.AudioPart):
            blob = gm.Blob(mime_type=f"audio/{part.input_audio.format}", data=part.input_audio.data)
            parts.append(gm.Part(inline_data=blob))
        elif isinstance(part, oa.FilePart) and part.file.file_data:
            parts.append(_inline(part.file.file_data, f"{at}.file.file_data"))
        else:
            raise TranslationError("this content part is not supported by this model's backend", at)
    return parts


def _inline(url: str, where: str) -> gm.Part:
    data = parse_data_url(url)
    if data is None:
        raise TranslationError(
            "this backend takes images and files only as base64 data: URLs", where
        )
    return gm.Part(inline_data=gm.Blob(mime_type=data[0], data=data[1]))


def _model_parts(m: oa.Message, where: str, names: dict[str, str]) -> list[gm.Part]:
    parts: list[gm.Part] = []
    if isinstance(m.content, str):
        parts.extend(_parts(m.content, where))
    elif m.content is not None:
        for j, part in enumerate(m.content):
            if isinstance(part, oa.RefusalPart):
                parts.append(gm.Part(text=part.refusal))
            else:
                parts.extend(_parts([part], f"{where}.content[{j}]", text_only=True))
    for k, call in enumerate(m.tool_calls or ()):
        names[call.id] = call.function.name
        arguments = f"{where}.tool_calls[{k}].function.arguments"
        fc = gm.FunctionCall(
            name=call.function.name, args=parse_arguments(call.function.arguments, arguments)
        )
        parts.append(gm.Part(function_call=fc, thought_signature=None if k else SKIP_SIGNATURE))
    return parts


def _function_response(m: oa.Message, where: str, names: dict[str, str]) -> gm.Part:
    name = names.get(m.tool_call_id or "")
    if name is None:
        raise TranslationError(
            "tool message answers no earlier assistant tool call", f"{where}.tool_call_id"
        )
    if m.content is None or isinstance(m.content, str):
        text = m.content or ""
    else:
        text = "".join(p.text for p in m.content if isinstance(p, oa.TextPart))
    # {"output": ...} is the key Gemini documents for a function's result
    response = gm.FunctionResponse(name=name, response={"output": text})
    return gm.Part(function_response=response)


def _tool_config(choice: oa.ToolChoice | None) -> gm.ToolConfig | None:
    if choice is None:
        return None
    if isinstance(choice, oa.NamedToolChoice):
        config = gm.FunctionCallingConfig(mode="ANY", allowed_function_names=[choice.function.name])
    else:
        config = gm.FunctionCallingConfig(
            mode={"none": "NONE", "auto": "AUTO", "required": "ANY"}[choice]
        )
    return gm.ToolConfig(function_calling_config=config)


def _generation_config(req: oa.ChatRequest) -> gm.GenerationConfig | None:
    mime = schema = None
    if isinstance(req.response_format, oa.JSONObjectFormat | oa.JSONSchemaFormat):
        mime = "application/json"
    if (
        isinstance(req.response_format, oa.JSONSchemaFormat)
        and req.response_format.json_schema.schema
    ):
        schema = clean(req.response_format.json_schema.schema)
    budget = THINKING_BUDGETS.get(req.reasoning_effort or "")
    config = gm.GenerationConfig(
        temperature=req.temperature,
        top_p=req.top_p,
        max_output_tokens=req.max_completion_tokens or req.max_tokens,
        stop_sequences=[req.stop] if isinstance(req.stop, str) else req.stop or None,
        candidate_count=req.n,
        seed=req.seed,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        response_mime_type=mime,
        response_schema=schema,
        thinking_config=(
            gm.ThinkingConfig(include_thoughts=True, thinking_budget=budget) if budget else None
        ),
    )
    return None if config == gm.GenerationConfig() else config


def response(body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
    """Raises msgspec.DecodeError when `body` is not a Gemini response. `id` names the
    completion (and seeds tool-call ids); Gemini's responseId is the fallback."""
    r = _response.decode(body)
    chat_id = id or (f"chatcmpl-{r.response_id}" if r.response_id else "")
    choices = [_choice(c, chat_id) for c in r.candidates]
    if not choices:  # the prompt itself was blocked
        blocked = r.prompt_feedback is not None and r.prompt_feedback.block_reason
        reason = "content_filter" if blocked else "stop"
        choices = [oa.Choice(message=oa.ResponseMessage(content=""), finish_reason=reason)]
    out = oa.ChatCompletion(
        id=chat_id,
        created=created,
        model=model,
        choices=choices,
        usage=openai_usage(r.usage_metadata or gm.UsageMetadata()),
    )
    return _encode(out)


def _choice(candidate: gm.Candidate, chat_id: str) -> oa.Choice:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[oa.ToolCall] = []
    for part in candidate.content.parts if candidate.content else ():
        if part.text is not None:
            (thoughts if part.thought else texts).append(part.text)
        if part.function_call is not None:
            fc = part.function_call
            call_id = fc.id or tool_call_id(chat_id, candidate.index, len(calls))
            calls.append(
                oa.ToolCall(id=call_id, function=oa.Function(fc.name, _encode(fc.args).decode()))
            )
    finish = gemini_finish(candidate.finish_reason or "STOP")
    if calls and finish == "stop":  # Gemini reports STOP after a function call
        finish = "tool_calls"
    message = oa.ResponseMessage(
        content="".join(texts) if texts or not calls else None,
        refusal=None,
        tool_calls=calls or msgspec.UNSET,
        reasoning_content="".join(thoughts) if thoughts else msgspec.UNSET,
    )
    return oa.Choice(message=message, index=candidate.index, finish_reason=finish)


def error(status: int, body: bytes) -> bytes:
    up = read_error(status, body)
    # Gemini's `status` (RESOURCE_EXHAUSTED, ...) is the closest thing to an OpenAI `code`
    code = up.type if up.type and up.type.isupper() else None
    envelope = oa.ErrorEnvelope(
        oa.ErrorBody(message=up.message, type=error_type(status), code=code)
    )
    return _encode(envelope)
