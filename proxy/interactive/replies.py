"""The gateway's own answer to a commands-only message, shaped as a backend's answer.

Pure: text, model, id and time in; the body (JSON) or the SSE stream out, in the front door's
protocol, exactly as a real backend would send it so the official SDKs parse it unchanged.
Streams are the non-streaming body replayed by `proxy.synthesize` (the same frames a
`stream: false` backend's answer becomes), so there is one canonical event sequence.
Invariant: usage is all zeros (no model ran) and the stop reason is a normal end of turn.
"""

from typing import Any, Literal

import msgspec

from proxy import synthesize

__all__ = ["CONTENT_TYPE", "anthropic_message", "openai_completion", "render"]

Front = Literal["openai", "anthropic"]
CONTENT_TYPE = {False: b"application/json", True: b"text/event-stream; charset=utf-8"}
_encode = msgspec.json.Encoder().encode


def openai_completion(text: str, model: str, reply_id: str, created: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{reply_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def anthropic_message(text: str, model: str, reply_id: str) -> dict[str, Any]:
    return {
        "id": f"msg_{reply_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def render(
    front: Front,
    text: str,
    *,
    model: str,
    reply_id: str,
    created: int,
    stream: bool,
    include_usage: bool = False,
) -> bytes:
    """The whole response body; `CONTENT_TYPE[stream]` is its content type.

    `reply_id` should be unique per answer (the request id does); `created` is epoch seconds.
    """
    if front == "openai":
        body = _encode(openai_completion(text, model, reply_id, created))
        return synthesize.openai_stream(body, include_usage) if stream else body
    body = _encode(anthropic_message(text, model, reply_id))
    return synthesize.anthropic_stream(body) if stream else body
