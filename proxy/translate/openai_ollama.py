"""OpenAI client → Ollama native backend: chat / completions / embeddings request → `/api/chat`
/ `/api/generate` / `/api/embed` body, Ollama answer → OpenAI answer, Ollama error → OpenAI
error; the NDJSON stream lives in `openai_ollama_stream`.

The three endpoints share one translator, told apart by the body: a request with `messages`
is a chat, one with `input` an embedding, otherwise a completion; an answer with `message`
is a chat, with `embeddings` an embedding, with `response` a completion.
Invariant: `stream` is always sent (Ollama streams when it is missing); sampling parameters
go into `options` (`max_tokens` → `num_predict`); tool-call arguments travel as objects on
Ollama's side and as JSON text on OpenAI's; tool results name their function (`tool_name`,
looked up by `tool_call_id`); tool-call ids Ollama does not give are derived from the
completion id and the call's position. Per-backend `options` and `keep_alive` are the
adapter's to add, not this module's.
"""

import base64
import struct
from typing import Any

import msgspec

from proxy.translate.common import (
    TranslationError,
    decode_error,
    error_type,
    parse_arguments,
    parse_data_url,
    read_error,
)
from proxy.translate.openai_ollama_stream import Stream, finish_reason, tool_call_id
from schemas import ollama as ol
from schemas import openai as oa

__all__ = ["Stream", "error", "request", "response"]

_shape = msgspec.json.Decoder(dict[str, msgspec.Raw])
_chat_request = msgspec.json.Decoder(oa.ChatRequest)
_completion_request = msgspec.json.Decoder(oa.CompletionRequest)
_embedding_request = msgspec.json.Decoder(oa.EmbeddingRequest)
_answer = msgspec.json.Decoder(ol.ChatResponse)
_embed_answer = msgspec.json.Decoder(ol.EmbedResponse)
_encode = msgspec.json.Encoder().encode


def request(body: bytes, model: str, stream: bool) -> bytes:
    try:
        fields = _shape.decode(body)
        if "messages" in fields:
            return _encode(_chat(_chat_request.decode(body), model, stream))
        if "input" in fields:
            return _encode(_embed(_embedding_request.decode(body), model))
        return _encode(_generate(_completion_request.decode(body), model, stream))
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None


def options(
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
) -> dict[str, Any] | None:
    """OpenAI sampling parameters → Ollama `options`; None when none was given."""
    out: dict[str, Any] = {
        "temperature": temperature,
        "top_p": top_p,
        "num_predict": max_tokens,
        "stop": [stop] if isinstance(stop, str) else stop or None,
        "seed": seed,
        "presence_penalty": presence_penalty,
        "frequency_penalty": frequency_penalty,
    }
    found = {k: v for k, v in out.items() if v is not None}
    return found or None


def _chat(req: oa.ChatRequest, model: str, stream: bool) -> ol.ChatRequest:
    if req.n not in (None, 1):
        raise TranslationError("this model's backend gives one choice per request", "n")
    messages: list[ol.Message] = []
    names: dict[str, str] = {}  # tool_call id → function name, for tool results
    for i, m in enumerate(req.messages):
        messages.append(_message(m, f"messages[{i}]", names))
    tools = None
    if req.tools and req.tool_choice != "none":  # Ollama has no tool_choice: "none" drops them
        tools = [
            ol.Tool(ol.FunctionDef(t.function.name, t.function.description, t.function.parameters))
            for t in req.tools
        ]
    return ol.ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        tools=tools,
        format=_format(req.response_format),
        options=options(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_completion_tokens or req.max_tokens,
            stop=req.stop,
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
        ),
    )


def _format(fmt: oa.ResponseFormat | None) -> str | dict[str, Any] | None:
    if isinstance(fmt, oa.JSONSchemaFormat) and fmt.json_schema.schema:
        return fmt.json_schema.schema
    if isinstance(fmt, oa.JSONObjectFormat | oa.JSONSchemaFormat):
        return "json"
    return None


def _message(m: oa.Message, where: str, names: dict[str, str]) -> ol.Message:
    role = "system" if m.role == "developer" else m.role
    if role == "function":
        raise TranslationError(
            "role 'function' is not supported by this model's backend; use tools", f"{where}.role"
        )
    text, images = _content(m.content, where)
    if m.refusal and not text:
        text = m.refusal
    out = ol.Message(role=role, content=text, images=images or None)
    if m.role == "assistant" and m.tool_calls:
        calls = []
        for k, call in enumerate(m.tool_calls):
            names[call.id] = call.function.name
            arguments = parse_arguments(
                call.function.arguments, f"{where}.tool_calls[{k}].function.arguments"
            )
            calls.append(ol.ToolCall(ol.FunctionCall(call.function.name, arguments)))
        out.tool_calls = calls
    if m.role == "tool":
        out.tool_name = names.get(m.tool_call_id or "") or m.name
    return out


def _content(content: str | list[oa.ContentPart] | None, where: str) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(part, oa.TextPart):
            texts.append(part.text)
        elif isinstance(part, oa.RefusalPart):
            texts.append(part.refusal)
        elif isinstance(part, oa.ImagePart):
            data = parse_data_url(part.image_url.url)
            if data is None:
                raise TranslationError(
                    "this model's backend takes images only as base64 data: URLs", at
                )
            images.append(data[1])
        else:
            raise TranslationError(
                "this model's backend takes only text and image parts", f"{at}.type"
            )
    return "".join(texts), images


def _generate(req: oa.CompletionRequest, model: str, stream: bool) -> ol.GenerateRequest:
    if not isinstance(req.prompt, str):
        if len(req.prompt) == 1 and isinstance(req.prompt[0], str):
            prompt = req.prompt[0]
        else:
            raise TranslationError(
                "this model's backend takes one text prompt per completion request", "prompt"
            )
    else:
        prompt = req.prompt
    if req.n not in (None, 1):
        raise TranslationError("this model's backend gives one completion per request", "n")
    return ol.GenerateRequest(
        model=model,
        prompt=prompt,
        stream=stream,
        suffix=req.suffix,
        options=options(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            stop=req.stop,
            seed=req.seed,
        ),
    )


def _embed(req: oa.EmbeddingRequest, model: str) -> ol.EmbedRequest:
    inputs: str | list[str]
    if isinstance(req.input, str):
        inputs = req.input
    elif all(isinstance(x, str) for x in req.input):
        inputs = [x for x in req.input if isinstance(x, str)]
    else:
        raise TranslationError("this model's backend embeds text, not token arrays", "input")
    return ol.EmbedRequest(model=model, input=inputs, dimensions=req.dimensions)


def response(body: bytes, model: str, *, id: str = "", created: int = 0) -> bytes:
    """Raises msgspec.DecodeError when `body` is not an Ollama answer."""
    if "embeddings" in _shape.decode(body):
        return _embeddings(_embed_answer.decode(body), model)
    answer = _answer.decode(body)
    usage = _usage(answer)
    finish = finish_reason(answer.done_reason)
    if answer.message is None:  # /api/generate
        text = answer.response or ""
        completion = oa.Completion(
            id=id,
            created=created,
            model=model,
            choices=[oa.CompletionChoice(text=text, finish_reason=finish)],
            usage=usage,
        )
        return _encode(completion)
    calls = [
        oa.ToolCall(
            id=call.id or tool_call_id(id, k),
            function=oa.Function(call.function.name, _encode(call.function.arguments).decode()),
        )
        for k, call in enumerate(answer.message.tool_calls or ())
    ]
    if calls and finish == "stop":
        finish = "tool_calls"
    message = oa.ResponseMessage(
        content=answer.message.content if answer.message.content or not calls else None,
        tool_calls=calls or msgspec.UNSET,
        reasoning_content=answer.message.thinking or msgspec.UNSET,
    )
    chat = oa.ChatCompletion(
        id=id,
        created=created,
        model=model,
        choices=[oa.Choice(message=message, finish_reason=finish)],
        usage=usage,
    )
    return _encode(chat)


def _usage(answer: ol.ChatResponse) -> oa.Usage:
    prompt, completion = answer.prompt_eval_count, answer.eval_count
    return oa.Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _embeddings(answer: ol.EmbedResponse, model: str) -> bytes:
    data = [oa.Embedding(index=i, embedding=v) for i, v in enumerate(answer.embeddings)]
    tokens = answer.prompt_eval_count
    out = oa.EmbeddingResponse(data=data, model=model, usage=oa.EmbeddingUsage(tokens, tokens))
    return _encode(out)


def base64_embeddings(body: bytes) -> bytes:
    """An OpenAI embeddings answer with each vector as base64 of little-endian float32, for
    clients that asked for `encoding_format: base64` (Ollama only gives floats)."""
    answer = msgspec.json.decode(body, type=oa.EmbeddingResponse)
    for item in answer.data:
        if isinstance(item.embedding, list):
            packed = struct.pack(f"<{len(item.embedding)}f", *item.embedding)
            item.embedding = base64.b64encode(packed).decode()
    return _encode(answer)


def error(status: int, body: bytes) -> bytes:
    up = read_error(status, body)  # Ollama says {"error": "text"}
    envelope = oa.ErrorEnvelope(oa.ErrorBody(message=up.message, type=error_type(status)))
    return _encode(envelope)
