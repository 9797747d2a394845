"""A streamed answer (the SSE bytes the client received) → the whole answer it stands for. Pure.

The inverse of `proxy.synthesize`, so one entry serves both kinds of request: OpenAI chat and
text completion chunks → `chat.completion` / `text_completion`; Anthropic events → `Message`.
Invariant: a whole answer comes back only from a stream that ended cleanly (`[DONE]`, or
`message_stop`) with no error event; anything else gives None and is not cached. Tool calls
survive: OpenAI `tool_calls` deltas are joined by index, Anthropic `input_json_delta` parts
are joined and parsed into `input`.
"""

from typing import Any

import msgspec

from proxy import sse

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_loads = msgspec.json.Decoder(Any).decode
_encode = msgspec.json.Encoder().encode


def _events(stream: bytes) -> list[sse.Event] | None:
    decoder = sse.Decoder()
    try:
        return decoder.feed(stream)
    except sse.LineTooLong:
        return None


def openai(stream: bytes, counted: tuple[int, int] | None = None) -> bytes | None:
    """OpenAI chunks → the whole chat.completion (or text_completion); None if unclean.
    `counted` (prompt, completion tokens) is the usage when the stream carried none (the
    gateway read it from a usage chunk the client did not ask for)."""
    events = _events(stream)
    if events is None:
        return None
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    usage: Any = None
    done = False
    try:
        for ev in events:
            if done:
                return None  # frames after [DONE]
            if ev.data == "[DONE]":
                done = True
                continue
            chunk = _decode(ev.data)
            if "error" in chunk or ev.event == "error":
                return None
            for k in ("id", "created", "model", "system_fingerprint"):
                if k in chunk and k not in head:
                    head[k] = chunk[k]
            if "object" in chunk and "object" not in head:
                head["object"] = chunk["object"]
            if chunk.get("usage") is not None:
                usage = chunk["usage"]
            for c in chunk.get("choices") or []:
                _merge_choice(c, choices, calls)
    except (msgspec.DecodeError, TypeError, AttributeError, KeyError):
        return None
    if not done:
        return None
    chat = head.get("object") != "text_completion"
    out: dict[str, Any] = {k: head[k] for k in ("id", "created", "model") if k in head}
    out["object"] = "chat.completion" if chat else "text_completion"
    if "system_fingerprint" in head:
        out["system_fingerprint"] = head["system_fingerprint"]
    result = []
    for index in sorted(choices):
        c = choices[index]
        if not chat:
            result.append(
                {
                    "index": index,
                    "text": c.get("text", ""),
                    "finish_reason": c.get("finish_reason"),
                    "logprobs": None,
                }
            )
            continue
        message: dict[str, Any] = {"role": c.get("role") or "assistant", "content": None}
        for field in ("content", "reasoning_content", "refusal"):
            if field in c:
                message[field] = c[field]
        if calls.get(index):
            message["tool_calls"] = [calls[index][i] for i in sorted(calls[index])]
        result.append(
            {
                "index": index,
                "message": message,
                "finish_reason": c.get("finish_reason"),
                "logprobs": None,
            }
        )
    out["choices"] = result
    if usage is None and counted is not None:
        usage = {
            "prompt_tokens": counted[0],
            "completion_tokens": counted[1],
            "total_tokens": counted[0] + counted[1],
        }
    if usage is not None:
        out["usage"] = usage
    return _encode(out)


def _merge_choice(
    c: dict[str, Any], choices: dict[int, dict[str, Any]], calls: dict[int, dict[int, Any]]
) -> None:
    index = c.get("index", 0)
    acc = choices.setdefault(index, {})
    if c.get("finish_reason"):
        acc["finish_reason"] = c["finish_reason"]
    if "text" in c:
        acc["text"] = acc.get("text", "") + (c["text"] or "")
    delta = c.get("delta") or {}
    if delta.get("role"):
        acc["role"] = delta["role"]
    for field in ("content", "reasoning_content", "refusal"):
        part = delta.get(field)
        if part:
            acc[field] = acc.get(field, "") + part
        elif field == "content" and part == "" and "content" not in acc:
            acc["content"] = ""
    for tc in delta.get("tool_calls") or []:
        slot = calls.setdefault(index, {}).setdefault(
            tc.get("index", 0),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if tc.get("id"):
            slot["id"] = tc["id"]
        if tc.get("type"):
            slot["type"] = tc["type"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            slot["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            slot["function"]["arguments"] += fn["arguments"]


def anthropic(stream: bytes) -> bytes | None:
    """Anthropic events → the whole Message; None if unclean."""
    events = _events(stream)
    if events is None:
        return None
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    stopped = False
    try:
        for ev in events:
            if stopped:
                return None
            data = _decode(ev.data)
            kind = data.get("type") or ev.event
            if kind == "error" or ev.event == "error":
                return None
            if kind == "message_start":
                message = dict(data["message"])
            elif kind == "content_block_start":
                blocks[data["index"]] = dict(data["content_block"])
            elif kind == "content_block_delta":
                _merge_delta(blocks[data["index"]], data["delta"], partial, data["index"])
            elif kind == "message_delta" and message is not None:
                message.update(data.get("delta") or {})
                message["usage"] = {**(message.get("usage") or {}), **(data.get("usage") or {})}
            elif kind == "message_stop":
                stopped = True
        if message is None or not stopped:
            return None
        for index, text in partial.items():
            blocks[index]["input"] = _loads(text) if text else {}
    except (msgspec.DecodeError, TypeError, AttributeError, KeyError):
        return None
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return _encode(message)


def _merge_delta(
    block: dict[str, Any], delta: dict[str, Any], partial: dict[int, str], i: int
) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        partial[i] = partial.get(i, "") + delta.get("partial_json", "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = block.get("signature", "") + delta.get("signature", "")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))
