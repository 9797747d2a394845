"""Answers in each wire's shape: JSON bodies and SSE frames for OpenAI chat, completions,
embeddings and models, Anthropic messages, Gemini generateContent, and each error envelope.

Pure: an `_Answer` in, bodies and `_Frame`s out; the server decides pacing and faults. Every
`created` field is `CREATED`, and ids carry the request index, so answers are deterministic.
"""

import base64
import hashlib
import json
import math
import struct
from collections.abc import Sequence
from typing import Any, Literal

from tests.upstreams.answers import _Answer, _dump, _Frame
from tests.upstreams.behaviours import Wire
from tests.upstreams.received import Recorded, _Endpoint

CREATED = 1_700_000_000  # every `created` field: answers are deterministic


def _fragments(arguments: str) -> list[str]:
    size = max(1, math.ceil(len(arguments) / 3))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _usage_openai(a: _Answer) -> dict[str, int]:
    p, c = a.usage
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _chat_finish(a: _Answer) -> str:
    return a.finish_reason or ("tool_calls" if a.tool_calls else "stop")


def _chat_body(a: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": a.text or None, "refusal": None}
    if a.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{a.index}_{i}",
                "type": "function",
                "function": {"name": n, "arguments": s},
            }
            for i, (n, s) in enumerate(a.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake-{a.index}",
        "object": "chat.completion",
        "created": CREATED,
        "model": a.model,
        "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish(a)}
        ],
        "usage": _usage_openai(a),
    }


def _chat_frames(a: _Answer) -> list[_Frame]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        obj: dict[str, Any] = {
            "id": f"chatcmpl-fake-{a.index}",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": a.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if a.include_usage:
            obj["usage"] = None
        return _dump(obj)

    frames = [_Frame(chunk({"role": "assistant", "content": "", "refusal": None}), "meta")]
    frames += [_Frame(chunk({"content": p}), "count") for p in a.pieces]
    for i, (name, arguments) in enumerate(a.tool_calls):
        head = {"index": i, "id": f"call_{a.index}_{i}", "type": "function"}
        head["function"] = {"name": name, "arguments": ""}
        frames.append(_Frame(chunk({"tool_calls": [head]}), "count"))
        for frag in _fragments(arguments):
            delta = {"tool_calls": [{"index": i, "function": {"arguments": frag}}]}
            frames.append(_Frame(chunk(delta), "count"))
    frames.append(_Frame(chunk({}, _chat_finish(a)), "count"))
    if a.include_usage:
        usage = {
            "id": f"chatcmpl-fake-{a.index}",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": a.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": _usage_openai(a),
        }
        frames.append(_Frame(_dump(usage), "meta"))
    frames.append(_Frame("[DONE]", "end"))
    return frames


def _completion(a: _Answer, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": f"cmpl-fake-{a.index}",
        "object": "text_completion",
        "created": CREATED,
        "model": a.model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
    }


def _completion_frames(a: _Answer) -> list[_Frame]:
    def chunk(text: str, finish: str | None = None) -> str:
        obj = _completion(a, text, finish)
        if a.include_usage:
            obj["usage"] = None
        return _dump(obj)

    frames = [_Frame(chunk(p), "count") for p in a.pieces]
    frames.append(_Frame(chunk("", a.finish_reason or "stop"), "count"))
    if a.include_usage:
        usage = {**_completion(a, "", None), "choices": [], "usage": _usage_openai(a)}
        frames.append(_Frame(_dump(usage), "meta"))
    frames.append(_Frame("[DONE]", "end"))
    return frames


def _anthropic_stop(a: _Answer) -> str:
    return a.finish_reason or ("tool_use" if a.tool_calls else "end_turn")


def _anthropic_body(a: _Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": a.text}] if a.pieces else []
    content += [
        {"type": "tool_use", "id": f"toolu_{a.index}_{i}", "name": n, "input": json.loads(s)}
        for i, (n, s) in enumerate(a.tool_calls)
    ]
    return {
        "id": f"msg_fake_{a.index}",
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": a.model,
        "stop_reason": _anthropic_stop(a),
        "stop_sequence": None,
        "usage": {"input_tokens": a.usage[0], "output_tokens": a.usage[1]},
    }


def _anthropic_frames(a: _Answer) -> list[_Frame]:
    def frame(kind: Literal["meta", "count", "end"], obj: dict[str, Any]) -> _Frame:
        return _Frame(_dump(obj), kind, obj["type"])

    message = {**_anthropic_body(a), "content": [], "stop_reason": None}
    message["usage"] = {"input_tokens": a.usage[0], "output_tokens": 1}
    frames = [frame("meta", {"type": "message_start", "message": message})]
    block = 0
    if a.pieces:
        start = {"type": "content_block_start", "index": 0}
        frames.append(frame("meta", {**start, "content_block": {"type": "text", "text": ""}}))
        for p in a.pieces:
            delta = {"type": "text_delta", "text": p}
            frames.append(
                frame("count", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        frames.append(frame("meta", {"type": "content_block_stop", "index": 0}))
        block = 1
    for i, (name, arguments) in enumerate(a.tool_calls, start=block):
        tool = {"type": "tool_use", "id": f"toolu_{a.index}_{i - block}", "name": name, "input": {}}
        frames.append(
            frame("count", {"type": "content_block_start", "index": i, "content_block": tool})
        )
        for frag in _fragments(arguments):
            delta = {"type": "input_json_delta", "partial_json": frag}
            frames.append(
                frame("count", {"type": "content_block_delta", "index": i, "delta": delta})
            )
        frames.append(frame("meta", {"type": "content_block_stop", "index": i}))
    finish = {"stop_reason": _anthropic_stop(a), "stop_sequence": None}
    usage = {"output_tokens": a.usage[1]}  # cumulative, as the real API sends it
    frames.append(frame("count", {"type": "message_delta", "delta": finish, "usage": usage}))
    frames.append(frame("end", {"type": "message_stop"}))
    return frames


def _gemini_record(a: _Answer, parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    record: dict[str, Any] = {"candidates": [candidate]}
    if last:
        p, c = a.usage
        candidate["finishReason"] = a.finish_reason or "STOP"
        record["usageMetadata"] = {
            "promptTokenCount": p,
            "candidatesTokenCount": c,
            "totalTokenCount": p + c,
        }
    record["modelVersion"] = a.model
    record["responseId"] = f"resp-fake-{a.index}"
    return record


def _gemini_parts(a: _Answer, texts: Sequence[str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": t} for t in texts]
    parts += [{"functionCall": {"name": n, "args": json.loads(s)}} for n, s in a.tool_calls]
    return parts or [{"text": ""}]


def _gemini_body(a: _Answer) -> dict[str, Any]:
    return _gemini_record(a, _gemini_parts(a, [a.text] if a.pieces else []), True)


def _gemini_frames(a: _Answer) -> list[_Frame]:
    """One record per text piece or function call; the last carries finishReason and usage."""
    parts = _gemini_parts(a, a.pieces)
    return [
        _Frame(_dump(_gemini_record(a, [p], i == len(parts) - 1)), "count")
        for i, p in enumerate(parts)
    ]


def _embedding(item: object, dims: int) -> list[float]:
    """Deterministic, and exact in float32 (multiples of 1/128), so both encodings agree."""
    digest = b""
    seed = repr(item).encode()
    while len(digest) < dims:
        seed = hashlib.sha256(seed).digest()
        digest += seed
    return [(byte - 128) / 128 for byte in digest[:dims]]


def _embeddings_body(model: str, body: dict[str, Any]) -> dict[str, Any]:
    raw = body.get("input", "")
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        items: list[object] = [raw]  # one token array
    else:
        items = list(raw) if isinstance(raw, list) else [raw]
    asked = body.get("dimensions")
    dims = asked if isinstance(asked, int) and asked > 0 else 8
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(items):
        vector = _embedding(item, dims)
        value: object = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(len(x) if isinstance(x, list) else len(str(x).split()) for x in items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _models_body(wire: Wire, ids: Sequence[str]) -> dict[str, Any]:
    if wire == "anthropic":
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in ids
        ]
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}
    if wire == "gemini":
        methods = ["generateContent", "streamGenerateContent"]
        return {
            "models": [
                {"name": f"models/{m}", "displayName": m, "supportedGenerationMethods": methods}
                for m in ids
            ]
        }
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in ids],
    }


_OPENAI_ERRORS = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GEMINI_ERRORS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(wire: Wire, code: int, message: str, request_id: str = "") -> dict[str, Any]:
    """The error envelope `wire` uses for `code`."""
    if wire == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(code, "invalid_request_error" if code < 500 else "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        return {**body, "request_id": request_id} if request_id else body
    if wire == "gemini":
        return {
            "error": {
                "code": code,
                "message": message,
                "status": _GEMINI_ERRORS.get(code, "UNKNOWN"),
            }
        }
    default = ("invalid_request_error" if code < 500 else "server_error", None)
    kind, err_code = _OPENAI_ERRORS.get(code, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": err_code}}


def _json_body(
    wire: Wire, models: Sequence[str], ep: _Endpoint, rec: Recorded, answer: _Answer
) -> bytes:
    """The non-stream answer for `ep` (Gemini's stream without alt=sse: one JSON array)."""
    body: object
    match ep.name:
        case "chat":
            body = _chat_body(answer)
        case "completions":
            body = {
                **_completion(answer, answer.text, answer.finish_reason or "stop"),
                "usage": _usage_openai(answer),
            }
        case "messages":
            body = _anthropic_body(answer)
        case "generate":  # streamGenerateContent without alt=sse: one JSON array
            frames = _gemini_frames(answer)
            body = [json.loads(f.payload) for f in frames] if ep.stream else _gemini_body(answer)
        case "embeddings":
            body = _embeddings_body(ep.model, rec.json if isinstance(rec.json, dict) else {})
        case "count_tokens":
            body = {"input_tokens": answer.usage[0]}
        case "models" | "gemini_models":
            body = _models_body(wire, models)
        case "model":
            body = _models_body(wire, [ep.model])["data"][0]
    return _dump(body).encode()
