"""What one stream event means to the gateway: does it commit the stream, fail it, or belong
to the preamble; what an error event says (credentials masked); where usage is. Pure: the
stream core (`stream.py`) asks, per event, without ever decoding a whole frame it forwards.
"""

from typing import Any, Literal

import msgspec

from proxy import redact, sse
from proxy.errors import Wire
from proxy.usage import AnthropicUsage

Verdict = Literal["hold", "commit", "error"]


# msgspec reads `Raw | None` as "null only": containers of Raw skip decoding and accept any.
class Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[msgspec.Raw] | None = None
    function_call: dict[str, msgspec.Raw] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None


class Choice(msgspec.Struct):
    delta: Delta | None = None
    finish_reason: str | None = None
    text: str | None = None


class Chunk(msgspec.Struct):
    choices: list[Choice] | None = None
    error: dict[str, msgspec.Raw] | str | None = None
    usage: dict[str, Any] | None = None


class AnthropicBlock(msgspec.Struct):
    type: str = ""
    text: str | None = None


class AnthropicMessage(msgspec.Struct):
    usage: AnthropicUsage | None = None


class AnthropicEvent(msgspec.Struct):
    type: str = ""
    content_block: AnthropicBlock | None = None
    error: dict[str, msgspec.Raw] | None = None
    message: AnthropicMessage | None = None
    usage: AnthropicUsage | None = None


decode_chunk = msgspec.json.Decoder(Chunk).decode
decode_anthropic = msgspec.json.Decoder(AnthropicEvent).decode
_error_body = msgspec.json.Decoder(dict[str, Any])


def verdict(wire: Wire, event: sse.Event) -> Verdict:
    """Does this client-protocol event commit the stream, fail it, or belong to the preamble?"""
    if wire == "anthropic":
        try:
            ev = decode_anthropic(event.data)
        except msgspec.DecodeError:
            return "error"
        kind = ev.type or event.event
        if kind in ("message_start", "ping"):
            return "hold"
        if kind == "error":
            return "error"
        if kind == "content_block_start":
            block = ev.content_block
            text_start = block is not None and block.type == "text" and not block.text
            return "hold" if text_start else "commit"
        return "commit"
    if event.data.startswith("[DONE]"):
        return "commit"
    try:
        chunk = decode_chunk(event.data)
    except msgspec.DecodeError:
        return "error"
    if chunk.error is not None:
        return "error"
    if not chunk.choices:
        return "commit" if chunk.usage else "hold"
    for c in chunk.choices:
        d = c.delta
        if c.finish_reason or c.text:
            return "commit"
        if d is not None and (
            d.content or d.tool_calls or d.function_call or d.refusal or d.reasoning_content
        ):
            return "commit"
    return "hold"


def error_message(data: str) -> str:
    """The message of an upstream error event, credentials masked."""
    try:
        body = _error_body.decode(data)
    except msgspec.DecodeError:
        return "upstream sent malformed stream data"
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        # Upstreams quote keys ("Incorrect API key provided: sk-..."): never pass them on.
        return "upstream stream error: " + redact.scrub(str(err["message"])[:300])
    return "upstream stream error"


def first_error(events: list[sse.Event]) -> str | None:
    for e in events:
        if e.event == "error" or e.data.startswith('{"error"'):
            return error_message(e.data)
    return None
