"""A whole (non-streaming) response → the SSE stream a streaming client expects.

For backends configured `stream: false`: the gateway calls them without streaming and
replays the answer as a correct stream in the client's protocol. Pure: body in, frames out.
OpenAI: role chunk, content chunk, one chunk per tool call (id/name once, whole arguments),
finish chunk, the usage chunk only if the client asked, `[DONE]`. Anthropic: the canonical
message_start → block start/delta/stop per block → message_delta → message_stop.
"""

from typing import Any

import msgspec

from proxy import sse
from proxy.errors import UpstreamFailure

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def _load(body: bytes) -> dict[str, Any]:
    try:
        return _decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamFailure("protocol", f"upstream sent a malformed response: {exc}") from exc


def _data(obj: dict[str, Any]) -> bytes:
    return b"data: " + _encode(obj) + b"\n\n"


def openai_stream(body: bytes, include_usage: bool) -> bytes:
    """chat.completion or text_completion JSON → chunk frames ending in `data: [DONE]`."""
    resp = _load(body)
    base: dict[str, Any] = {
        k: resp[k] for k in ("id", "created", "model", "system_fingerprint") if k in resp
    }
    chat = resp.get("object") != "text_completion"
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    frames: list[bytes] = []

    def chunk(choice: dict[str, Any]) -> None:
        frames.append(_data({**base, "choices": [choice]}))

    for choice in resp.get("choices") or []:
        index = choice.get("index", 0)
        finish = choice.get("finish_reason") or "stop"
        if not chat:
            chunk(
                {
                    "index": index,
                    "text": choice.get("text") or "",
                    "finish_reason": None,
                    "logprobs": None,
                }
            )
            chunk({"index": index, "text": "", "finish_reason": finish, "logprobs": None})
            continue
        message = choice.get("message") or {}
        chunk(
            {"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )
        for field in ("reasoning_content", "content", "refusal"):
            if message.get(field):
                chunk({"index": index, "delta": {field: message[field]}, "finish_reason": None})
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            delta = {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call.get("id"),
                        "type": call.get("type", "function"),
                        "function": {
                            "name": function.get("name"),
                            "arguments": function.get("arguments") or "",
                        },
                    }
                ]
            }
            chunk({"index": index, "delta": delta, "finish_reason": None})
        chunk({"index": index, "delta": {}, "finish_reason": finish})
    if include_usage and resp.get("usage") is not None:
        frames.append(_data({**base, "choices": [], "usage": resp["usage"]}))
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def anthropic_stream(body: bytes) -> bytes:
    """Anthropic Message JSON → the canonical event sequence."""
    msg = _load(body)
    usage = msg.get("usage") or {}
    frames: list[bytes] = []

    def event(kind: str, payload: dict[str, Any]) -> None:
        frames.append(sse.encode(_encode({"type": kind, **payload}).decode(), kind))

    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 0
    event(
        "message_start",
        {
            "message": {
                "id": msg.get("id"),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": msg.get("model"),
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            }
        },
    )
    for index, block in enumerate(msg.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            event(
                "content_block_start",
                {"index": index, "content_block": {"type": "text", "text": ""}},
            )
            event(
                "content_block_delta",
                {"index": index, "delta": {"type": "text_delta", "text": block.get("text", "")}},
            )
        elif kind == "tool_use":
            event(
                "content_block_start",
                {
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block.get("id"),
                        "name": block.get("name"),
                        "input": {},
                    },
                },
            )
            partial = _encode(block.get("input") or {}).decode()
            event(
                "content_block_delta",
                {"index": index, "delta": {"type": "input_json_delta", "partial_json": partial}},
            )
        elif kind == "thinking":
            event(
                "content_block_start",
                {"index": index, "content_block": {"type": "thinking", "thinking": ""}},
            )
            event(
                "content_block_delta",
                {
                    "index": index,
                    "delta": {"type": "thinking_delta", "thinking": block.get("thinking", "")},
                },
            )
            if block.get("signature"):
                event(
                    "content_block_delta",
                    {
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": block["signature"]},
                    },
                )
        else:  # redacted thinking, server tool blocks: whole in the start event
            event("content_block_start", {"index": index, "content_block": block})
        event("content_block_stop", {"index": index})
    event(
        "message_delta",
        {
            "delta": {
                "stop_reason": msg.get("stop_reason") or "end_turn",
                "stop_sequence": msg.get("stop_sequence"),
            },
            "usage": usage,
        },
    )
    event("message_stop", {})
    return b"".join(frames)
