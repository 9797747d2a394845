"""OpenAI's Responses API (`POST /v1/responses`) in the fake OpenAI upstream: the response
object and its SSE events, written by hand from OpenAI's documented stream (not produced by
the gateway's translators, so tests of the pass-through path compare against an independent
source).

Pure: an `_Answer` in, a body or `_Frame`s out. Every frame is named (`event:` = `type`) and
numbered (`sequence_number` from 0). Content frames (`count`) are the text and argument
deltas; the lifecycle, `added` and `done` events are `meta`; `response.completed` (or
`.incomplete` for a `length` finish) is the terminator (`end`).
"""

from typing import Any

from tests.upstreams.answers import _Answer, _dump, _Frame
from tests.upstreams.wires import CREATED, _fragments


def _usage(a: _Answer) -> dict[str, Any]:
    i, o = a.usage
    return {
        "input_tokens": i,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": o,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": i + o,
    }


def _status(a: _Answer) -> str:
    return "incomplete" if a.finish_reason in ("length", "max_output_tokens") else "completed"


def _items(a: _Answer, status: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if a.text or not a.tool_calls:
        text = {"type": "output_text", "text": a.text, "annotations": [], "logprobs": []}
        items.append(
            {
                "type": "message",
                "id": f"msg_fake_{a.index}",
                "status": status,
                "role": "assistant",
                "content": [text],
            }
        )
    for k, (name, arguments) in enumerate(a.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_fake_{a.index}_{k}",
                "call_id": f"call_{a.index}_{k}",
                "name": name,
                "arguments": arguments,
                "status": "completed",
            }
        )
    return items


def _response(a: _Answer, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": f"resp_fake_{a.index}",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": a.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def responses_body(a: _Answer) -> dict[str, Any]:
    status = _status(a)
    return _response(a, status, _items(a, status), _usage(a))


def responses_frames(a: _Answer) -> list[_Frame]:
    frames: list[_Frame] = []

    def emit(kind: Any, obj: dict[str, Any]) -> None:
        obj = {**obj, "sequence_number": len(frames)}
        frames.append(_Frame(_dump(obj), kind, obj["type"]))

    opening = _response(a, "in_progress", [], None)
    emit("meta", {"type": "response.created", "response": opening})
    emit("meta", {"type": "response.in_progress", "response": opening})
    status = _status(a)
    for index, item in enumerate(_items(a, status)):
        ident = item["id"]
        if item["type"] == "message":
            emit(
                "meta",
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                },
            )
            where = {"item_id": ident, "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("meta", {"type": "response.content_part.added", **where, "part": empty})
            for piece in a.pieces:
                emit(
                    "count",
                    {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []},
                )
            emit(
                "meta",
                {"type": "response.output_text.done", **where, "text": a.text, "logprobs": []},
            )
            emit(
                "meta", {"type": "response.content_part.done", **where, "part": item["content"][0]}
            )
        else:
            emit(
                "meta",
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "arguments": ""},
                },
            )
            where = {"item_id": ident, "output_index": index}
            for fragment in _fragments(item["arguments"]):
                emit(
                    "count",
                    {"type": "response.function_call_arguments.delta", **where, "delta": fragment},
                )
            emit(
                "meta",
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "arguments": item["arguments"],
                    "name": item["name"],
                },
            )
        emit("meta", {"type": "response.output_item.done", "output_index": index, "item": item})
    emit("end", {"type": f"response.{status}", "response": responses_body(a)})
    return frames
