"""Fake LLM upstreams for integration tests: real aiohttp servers, scripted per test.

A `FakeUpstream` is an aiohttp.web server on 127.0.0.1 that runs in its own thread with its
own event loop, so sync tests (the sync `openai` SDK) and async tests (on any loop) use it
alike. It speaks one wire (OpenAI, Anthropic or Gemini), records every request it receives,
in order, and answers each with the next scripted `Behaviour`, or a normal, deterministic
answer (`FakeUpstream.default`) once the script is used up.

Stream faults are placed by counting *content frames*: frames that carry text, a tool call or
a finish (what commits a gateway's stream). The wire's preamble is sent first and not
counted: OpenAI's role-only chunk, Anthropic's `message_start` and an empty text block's
`content_block_start`; Gemini has none. `after_chunks=N` fires the fault just before the
(N+1)-th content frame, or before the terminator (`[DONE]`, `message_stop`) when the stream
has no more; `N=0` is "after the preamble, before anything a gateway may commit on".

`closed_early` lists requests whose client (the gateway) went away before the response was
finished: noticed through handler cancellation on connection loss, or a failed write. Our
own resets and `stop()` are never counted.
"""

import asyncio
import base64
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

from aiohttp import web
from multidict import CIMultiDict

Wire = Literal["openai", "anthropic", "gemini"]
Kind = Literal[
    "ok",
    "status",
    "stall_before_headers",
    "never_answer",
    "reset_before_headers",
    "stall_mid_stream",
    "reset_mid_stream",
    "cut_before_done",
    "garbage",
    "truncated_json",
    "wrong_content_type",
]

CREATED = 1_700_000_000  # every `created` field: answers are deterministic
HOLD_LIMIT = 300.0  # never_answer's bound, so a forgotten hold still ends
_STREAM_FAULTS = ("stall_mid_stream", "reset_mid_stream", "cut_before_done")


# --- behaviours ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How the upstream answers one request. Build with the functions below; adjust with
    `dataclasses.replace`, e.g. `replace(reset_mid_stream(2), text="a b c d")`."""

    kind: Kind = "ok"
    # the answer (every kind that answers normally, faults included)
    text: str | None = None  # None: derived from the request
    chunks: tuple[str, ...] | None = None  # content pieces; None: `text` split at words
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, arguments JSON)
    usage: tuple[int, int] | None = None  # (prompt, completion); None: derived
    finish_reason: str | None = None  # wire-native override ("length", "max_tokens", ...)
    first_delay: float = 0.0  # before the first content frame (non-stream: before headers)
    interval: float = 0.0  # between content frames
    # status answers and extra headers (added to every kind's response)
    status: int = 200
    body: bytes | str | Mapping[str, Any] | None = None  # None: the wire's error shape
    headers: tuple[tuple[str, str], ...] = ()
    # faults
    seconds: float = 0.0  # stall length
    after_chunks: int | None = None  # None: just before the terminator
    rst: bool = False  # reset with SO_LINGER 0 (a real RST) instead of a plain close
    sse: bool | None = None  # garbage(): SSE framing; None: as the request asked


def _pairs(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((headers or {}).items())


def ok(
    text: str | None = None,
    chunks: Sequence[str] | None = None,
    interval: float = 0.0,
    first_delay: float = 0.0,
    tool_calls: Sequence[tuple[str, str]] | None = None,
    usage: tuple[int, int] | None = None,
    *,
    finish_reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Behaviour:
    """A normal answer. `chunks` wins over `text`; `tool_calls` follow any text."""
    return Behaviour(
        text=text,
        chunks=tuple(chunks) if chunks is not None else None,
        interval=interval,
        first_delay=first_delay,
        tool_calls=tuple(tool_calls or ()),
        usage=usage,
        finish_reason=finish_reason,
        headers=_pairs(headers),
    )


def status(
    code: int,
    body: bytes | str | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Behaviour:
    """`code` with `body` (a Mapping is sent as JSON), by default the wire's error shape."""
    return Behaviour(kind="status", status=code, body=body, headers=_pairs(headers))


def rate_limited(
    retry_after: str | int | None = "2", ms: float | None = None, *, code: int = 429
) -> Behaviour:
    """429 (or `code`, e.g. 529) with `retry-after` and, when given, `retry-after-ms`."""
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if ms is not None:
        headers["retry-after-ms"] = str(ms)
    return status(code, headers=headers)


def stall_before_headers(seconds: float) -> Behaviour:
    """Sleep before sending anything, then answer normally."""
    return Behaviour(kind="stall_before_headers", seconds=seconds)


def never_answer() -> Behaviour:
    """Hold the request, no headers, until the client goes away or the server stops."""
    return Behaviour(kind="never_answer")


def reset_before_headers() -> Behaviour:
    """Close the connection without answering."""
    return Behaviour(kind="reset_before_headers")


def stall_mid_stream(after_chunks: int, seconds: float) -> Behaviour:
    """Pause `seconds` after `after_chunks` content frames, then finish the stream.
    Non-stream: half the body, the pause, the rest."""
    return Behaviour(kind="stall_mid_stream", after_chunks=after_chunks, seconds=seconds)


def reset_mid_stream(after_chunks: int, *, rst: bool = False) -> Behaviour:
    """Abort the TCP transport after `after_chunks` content frames (non-stream: half the
    body). A plain abort closes with FIN, so the client reads every byte sent and then a
    body that never finished; `rst=True` sends a real RST, which may discard unread bytes."""
    return Behaviour(kind="reset_mid_stream", after_chunks=after_chunks, rst=rst)


def cut_before_done(after_chunks: int | None = None) -> Behaviour:
    """End the body cleanly, without `[DONE]` / `message_stop`; `after_chunks` cuts earlier.
    Gemini has no terminator: only an earlier cut shows. Non-stream: half the JSON."""
    return Behaviour(kind="cut_before_done", after_chunks=after_chunks)


def garbage(*, sse: bool | None = None) -> Behaviour:
    """200 with bytes that are not JSON: under a JSON content type, or (stream requests, or
    `sse=True`) as the `data` of an SSE frame under `text/event-stream`."""
    return Behaviour(kind="garbage", sse=sse)


def truncated_json() -> Behaviour:
    """200 whose JSON stops halfway; streams send the preamble, then half a content frame."""
    return Behaviour(kind="truncated_json")


def wrong_content_type() -> Behaviour:
    """200 `text/html`, whatever was asked (a captive portal, a misrouted proxy)."""
    return Behaviour(kind="wrong_content_type")


def preamble_then_fail(
    kind: Literal["reset", "stall"] = "reset", seconds: float = 30.0
) -> Behaviour:
    """Only the preamble (role chunk / message_start), then reset, or stall `seconds`."""
    if kind == "reset":
        return reset_mid_stream(0)
    return stall_mid_stream(0, seconds)


def slow_stream(
    first_delay: float = 0.0, interval: float = 0.0, chunks: int | Sequence[str] = 5
) -> Behaviour:
    """A normal answer paced out: `chunks` pieces (a count gives "w0 w1 ...")."""
    pieces = [f" w{i}" if i else "w0" for i in range(chunks)] if isinstance(chunks, int) else chunks
    return ok(chunks=pieces, first_delay=first_delay, interval=interval)


# --- what was received -----------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    index: int
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    json: Any  # decoded body, or None when empty or not JSON
    at: float = field(default=0.0, compare=False)  # time.monotonic() on arrival

    @property
    def stream(self) -> bool:
        return (isinstance(self.json, dict) and self.json.get("stream") is True) or (
            ":streamGenerateContent" in self.path
        )


class _Endpoint(NamedTuple):
    name: Literal[
        "chat", "completions", "embeddings", "models", "model", "messages", "count_tokens",
        "generate", "gemini_models",
    ]  # fmt: skip
    model: str
    stream: bool
    sse: bool = True


_GEMINI = re.compile(r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)")
_AZURE = re.compile(r"/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)")
_OPENAI_PATHS: dict[str, Literal["chat", "completions", "embeddings"]] = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
}


def _resolve(wire: Wire, rec: Recorded) -> _Endpoint | None:
    body = rec.json if isinstance(rec.json, dict) else {}
    named = body.get("model")
    model = named if isinstance(named, str) else "unknown"
    stream = body.get("stream") is True
    method, path = rec.method, rec.path
    if wire == "openai":
        if method == "GET" and path == "/v1/models":
            return _Endpoint("models", "", False)
        if method == "GET" and path.startswith("/v1/models/"):
            return _Endpoint("model", path.removeprefix("/v1/models/"), False)
        if method == "POST" and path.startswith("/v1/") and path[4:] in _OPENAI_PATHS:
            return _Endpoint(_OPENAI_PATHS[path[4:]], model, stream)
        if method == "POST" and (m := _AZURE.fullmatch(path)):  # Azure: deployment is the model
            return _Endpoint(_OPENAI_PATHS[m[2]], m[1], stream)
    elif wire == "anthropic":
        if method == "POST" and path == "/v1/messages":
            return _Endpoint("messages", model, stream)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return _Endpoint("count_tokens", model, False)
        if method == "GET" and path == "/v1/models":
            return _Endpoint("models", "", False)
    else:
        if method == "GET" and path == "/v1beta/models":
            return _Endpoint("gemini_models", "", False)
        if method == "POST" and (m := _GEMINI.fullmatch(path)):
            streaming = m[2] == "streamGenerateContent"
            return _Endpoint("generate", m[1], streaming, rec.query.get("alt") == "sse")
    return None


# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    index: int
    model: str
    pieces: tuple[str, ...]
    tool_calls: tuple[tuple[str, str], ...]
    usage: tuple[int, int]
    finish_reason: str | None
    include_usage: bool

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class _Frame(NamedTuple):
    payload: str  # the `data:` value
    kind: Literal["meta", "count", "end"]  # count: carries content; end: the terminator
    event: str = ""  # Anthropic's `event:` name


def _dump(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _prompt(ep: _Endpoint, body: dict[str, Any]) -> str:
    """The last user turn's text, however the wire spells it."""
    if ep.name == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            return prompt[0]
        return prompt if isinstance(prompt, str) else ""
    turns = body.get("contents" if ep.name == "generate" else "messages")
    for turn in reversed(turns if isinstance(turns, list) else []):
        if isinstance(turn, dict) and turn.get("role", "user") == "user":
            return _text_of(turn.get("parts") if ep.name == "generate" else turn.get("content"))
    return ""


def _answer(ep: _Endpoint, rec: Recorded, b: Behaviour) -> _Answer:
    body = rec.json if isinstance(rec.json, dict) else {}
    prompt = _prompt(ep, body)
    if b.chunks is not None:
        pieces = b.chunks
    else:
        text = b.text
        if text is None and b.tool_calls:
            text = ""  # a tool-call answer has no text unless asked
        elif text is None:
            said = " ".join(prompt.split()[:8])
            text = f"Hello from {ep.model}." + (f" You said: {said}" if said else "")
        pieces = tuple(re.findall(r"\s*\S+|\s+", text))
    usage = b.usage or (max(1, len(prompt.split())), max(1, len(pieces) + len(b.tool_calls)))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return _Answer(rec.index, ep.model, pieces, b.tool_calls, usage, b.finish_reason, include_usage)


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


# --- the server ------------------------------------------------------------------------------


@dataclass
class _Exchange:
    """One request's response state, for telling who ended it."""

    index: int
    resp: web.StreamResponse | None = None
    finished: bool = False  # the last byte was written
    aborted: bool = False  # we reset it ourselves


class FakeUpstream:
    """A scriptable upstream speaking `wire`, in its own thread and event loop."""

    def __init__(self, *, wire: Wire = "openai", models: Sequence[str] = ("fake-model",)) -> None:
        self.wire: Wire = wire
        self.models = list(models)
        self.default: Behaviour = ok()  # the answer once the script is used up
        self.requests: list[Recorded] = []
        self.closed_early: list[int] = []
        self.closed_at: dict[int, float] = {}  # index -> time.monotonic() when noticed
        self.port = 0
        self._script: deque[Behaviour] = deque()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # lifecycle

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a gateway backend of this wire takes."""
        return f"{self.root}/v1" if self.wire == "openai" else self.root

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=_run_loop, args=(loop,), name=f"fake-{self.wire}-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(sock), loop).result(timeout=10)
        except BaseException:
            self.stop()
            sock.close()
            raise
        return self

    async def _open(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that goes away cancels its handler, so holds and
        # stalls notice at once and closed_early is exact
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()

    def stop(self) -> None:
        """Stop serving; held requests are dropped. Idempotent."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        self._stopping = True
        try:
            if self._runner is not None and loop.is_running():
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeUpstream(wire={self.wire!r}, url={self.url!r}, requests={len(self.requests)})"

    # scripting and waiting

    def script(self, *behaviours: Behaviour) -> None:
        """Queue answers: each request takes the next; afterwards `default` answers."""
        with self._cond:
            self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._cond:
            return len(self._script)

    def wait_for_requests(self, n: int, timeout: float = 5) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"{self!r}: wanted {n} requests within {timeout}s")

    def wait_closed_early(self, index: int, timeout: float = 5) -> float:
        """Block until request `index` is seen closed early; returns the seconds waited."""
        start = time.monotonic()
        with self._cond:
            if not self._cond.wait_for(lambda: index in self.closed_at, timeout):
                raise TimeoutError(f"{self!r}: request {index} not closed within {timeout}s")
        return time.monotonic() - start

    # serving

    def _next(self) -> Behaviour:
        with self._cond:
            return self._script.popleft() if self._script else self.default

    def _record(self, request: web.Request, body: bytes) -> Recorded:
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = None
        with self._cond:
            rec = Recorded(
                index=len(self.requests),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDict(request.headers),
                body=body,
                json=decoded,
                at=time.monotonic(),
            )
            self.requests.append(rec)
            self._cond.notify_all()
        return rec

    def _closed(self, ex: _Exchange) -> None:
        if ex.finished or ex.aborted or self._stopping:
            return
        with self._cond:
            if ex.index not in self.closed_at:
                self.closed_at[ex.index] = time.monotonic()
                self.closed_early.append(ex.index)
                self._cond.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ex = _Exchange(-1)
        try:
            rec = self._record(request, await request.read())
            ex.index = rec.index
            return await self._respond(request, rec, ex)
        except asyncio.CancelledError:
            self._closed(ex)
            raise
        except ConnectionResetError:  # a write after the client went away
            self._closed(ex)
            return ex.resp or web.Response(status=499)
        finally:
            self._tasks.discard(task)

    def _headers(self, index: int, b: Behaviour) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        if self.wire == "openai":
            headers["x-request-id"] = f"req_fake_{index}"
        elif self.wire == "anthropic":
            headers["request-id"] = f"req_fake_{index}"
        headers.extend(b.headers)
        return headers

    def _error(self, code: int, index: int, b: Behaviour, message: str) -> web.Response:
        body = b.body
        if body is None:
            body = error_body(self.wire, code, message, f"req_fake_{index}")
        raw = _dump(body).encode() if isinstance(body, Mapping) else body
        data = raw.encode() if isinstance(raw, str) else raw
        try:
            json.loads(data)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
        return _response(code, data, self._headers(index, b), content_type)

    async def _respond(
        self, request: web.Request, rec: Recorded, ex: _Exchange
    ) -> web.StreamResponse:
        ep = _resolve(self.wire, rec)
        if ep is None:
            return self._error(404, rec.index, Behaviour(), f"no route for {rec.method} {rec.path}")
        b = self._next()
        headers = self._headers(rec.index, b)
        match b.kind:
            case "status":
                return self._error(b.status, rec.index, b, f"fake {self.wire} upstream: {b.status}")
            case "never_answer":
                await asyncio.sleep(HOLD_LIMIT)
                return self._error(504, rec.index, b, "never_answer hold expired")
            case "reset_before_headers":
                _abort(request, ex, rst=b.rst)
                return web.Response(status=499)
            case "stall_before_headers":
                await asyncio.sleep(b.seconds)
            case "wrong_content_type":
                html = b"<html><body>Welcome to the captive portal</body></html>"
                return _response(200, html, headers, "text/html")
            case "garbage":
                if b.sse if b.sse is not None else ep.stream:
                    return _response(
                        200, b"data: this is {not JSON\n\n", headers, "text/event-stream"
                    )
                return _response(200, b"\x00\xffthis is {not JSON", headers, "application/json")
        answer = _answer(ep, rec, b)
        if ep.stream and ep.sse:
            return await self._stream(request, ex, self._frames(ep, answer), b, headers)
        body = _json_body(self.wire, self.models, ep, rec, answer)
        return await self._send_body(request, ex, body, b, headers)

    def _frames(self, ep: _Endpoint, answer: _Answer) -> list[_Frame]:
        if ep.name == "chat":
            return _chat_frames(answer)
        if ep.name == "completions":
            return _completion_frames(answer)
        if ep.name == "messages":
            return _anthropic_frames(answer)
        return _gemini_frames(answer)

    def _encode(self, frame: _Frame) -> bytes:
        if self.wire == "anthropic":
            return f"event: {frame.event}\ndata: {frame.payload}\n\n".encode()
        end = "\r\n\r\n" if self.wire == "gemini" else "\n\n"  # Gemini frames end in CRLF CRLF
        return f"data: {frame.payload}{end}".encode()

    async def _stream(
        self,
        request: web.Request,
        ex: _Exchange,
        frames: list[_Frame],
        b: Behaviour,
        headers: CIMultiDict[str],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers=headers)
        if "Content-Type" not in headers:
            resp.content_type = "text/event-stream"
            resp.charset = "utf-8"
        resp.headers.setdefault("Cache-Control", "no-cache")
        ex.resp = resp
        await resp.prepare(request)
        fault = b.kind in _STREAM_FAULTS
        limit = math.inf if b.after_chunks is None else b.after_chunks
        sent = 0
        for frame in frames:
            if fault and (frame.kind == "end" or (frame.kind == "count" and sent >= limit)):
                fault = False
                if await self._fault(request, ex, b):
                    return resp
            if frame.kind == "count":
                if b.kind == "truncated_json":
                    half = frame._replace(payload=frame.payload[: len(frame.payload) // 2])
                    await resp.write(self._encode(half))
                    break
                delay = b.first_delay if sent == 0 else b.interval
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += 1
            await resp.write(self._encode(frame))
        if fault and await self._fault(request, ex, b):
            return resp
        await resp.write_eof()
        ex.finished = True
        return resp

    async def _fault(self, request: web.Request, ex: _Exchange, b: Behaviour) -> bool:
        """Apply a stream fault; True when the response is over."""
        if b.kind == "stall_mid_stream":
            await asyncio.sleep(b.seconds)
            return False
        if b.kind == "reset_mid_stream":
            _abort(request, ex, rst=b.rst)
            return True
        assert ex.resp is not None  # cut_before_done: a clean end, minus the terminator
        await ex.resp.write_eof()
        ex.finished = True
        return True

    async def _send_body(
        self,
        request: web.Request,
        ex: _Exchange,
        body: bytes,
        b: Behaviour,
        headers: CIMultiDict[str],
    ) -> web.StreamResponse:
        half = len(body) // 2
        if b.kind in ("cut_before_done", "truncated_json"):
            return _response(200, body[:half], headers, "application/json")
        if b.kind not in ("stall_mid_stream", "reset_mid_stream"):
            if b.first_delay > 0:
                await asyncio.sleep(b.first_delay)
            return _response(200, body, headers, "application/json")
        resp = web.StreamResponse(status=200, headers=headers)
        if "Content-Type" not in headers:
            resp.content_type = "application/json"
        resp.content_length = len(body)
        ex.resp = resp
        await resp.prepare(request)
        await resp.write(body[:half])
        if b.kind == "reset_mid_stream":
            _abort(request, ex, rst=b.rst)
            return resp
        await asyncio.sleep(b.seconds)
        await resp.write(body[half:])
        await resp.write_eof()
        ex.finished = True
        return resp


def _response(code: int, body: bytes, headers: CIMultiDict[str], content_type: str) -> web.Response:
    resp = web.Response(status=code, body=body, headers=headers)
    if "Content-Type" not in headers:
        resp.content_type = content_type
    return resp


def _abort(request: web.Request, ex: _Exchange, *, rst: bool) -> None:
    ex.aborted = True
    transport = request.transport
    if transport is None:
        return
    if rst:  # linger 0: close() sends RST instead of FIN
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# --- places where nothing answers -------------------------------------------------------------


def _base_url(wire: Wire, port: int) -> str:
    root = f"http://127.0.0.1:{port}"
    return f"{root}/v1" if wire == "openai" else root


def refused_url(wire: Wire = "openai") -> str:
    """A base URL on a loopback port where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return _base_url(wire, port)


class Blackhole:
    """Accepts TCP connections and never reads or answers: connect succeeds, no headers ever.

    Listening starts at construction (so `url` is valid at once); `stop()` closes everything.
    """

    def __init__(self, *, wire: Wire = "openai") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)  # the accept loop checks for stop this often
        self.port: int = self._sock.getsockname()[1]
        self.url = _base_url(wire, self.port)
        self.connections: list[socket.socket] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._accept, name=f"blackhole-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def accepted(self) -> int:
        with self._cond:
            return len(self.connections)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.connections.append(conn)
                self._cond.notify_all()

    def wait_for_connections(self, n: int, timeout: float = 5) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.connections) >= n, timeout):
                raise TimeoutError(f"blackhole {self.url}: wanted {n} connections")

    def start(self) -> Self:
        return self  # already listening; kept for symmetry with FakeUpstream

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with self._cond:
            for conn in self.connections:
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
