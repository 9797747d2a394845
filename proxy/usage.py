"""Token usage read from what the backend reported: never guessed when it can be read.

Pure. Usage is `(input_tokens, output_tokens)`; input counts cached prompt tokens too (as
OpenAI's `prompt_tokens` does), so numbers agree whichever protocol reported them.
"""

from typing import Any

import msgspec

from proxy.errors import UpstreamFailure

Usage = tuple[int, int]


class _OpenAIUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AnthropicUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _OpenAIBody(msgspec.Struct):
    usage: _OpenAIUsage | None = None


class _AnthropicBody(msgspec.Struct):
    usage: AnthropicUsage | None = None


_openai = msgspec.json.Decoder(_OpenAIBody)
_anthropic = msgspec.json.Decoder(_AnthropicBody)


def from_body(body: bytes, wire: str) -> Usage | None:
    """Usage of a whole (non-streaming) response in the OpenAI or Anthropic shape.

    Decoding validates the whole document, so this doubles as the check that a backend's
    200 answer is JSON at all (an `UpstreamFailure` of kind protocol if not); unknown fields
    are skipped, not built.
    """
    try:
        if wire == "anthropic":
            a = _anthropic.decode(body).usage
            return None if a is None else anthropic_usage(a)
        o = _openai.decode(body).usage
    except msgspec.ValidationError:
        return None  # JSON, but not the shape we know: pass it on untouched
    except msgspec.DecodeError as exc:
        raise UpstreamFailure("protocol", f"upstream sent a malformed response: {exc}") from exc
    return None if o is None else (o.prompt_tokens, o.completion_tokens)


def anthropic_usage(a: AnthropicUsage) -> Usage:
    cached = (a.cache_creation_input_tokens or 0) + (a.cache_read_input_tokens or 0)
    return (a.input_tokens + cached, a.output_tokens)


def from_openai_dict(usage: dict[str, Any]) -> Usage | None:
    try:
        return (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return None
