"""Per-backend caps on what a request asks for: a `max_tokens` above the backend's
`max_output_tokens` is lowered to it, in whatever wire the backend speaks.

Clamping, not dropping or failing: a client that asks for 32,000 tokens (Claude Code does) of
a backend that allows 8,192 gets an answer of at most 8,192 tokens (`finish_reason: length`
if it runs out) instead of a 400. Only the token fields are touched; every other byte of the
body is passed on as it came. Pure.
"""

import msgspec

from proxy.errors import Wire  # the lead is making this the one definition

_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode
_FIELDS: dict[str, tuple[str, ...]] = {
    "openai": ("max_tokens", "max_completion_tokens", "max_output_tokens"),
    "anthropic": ("max_tokens",),
}


def _lowered(raw: msgspec.Raw, cap: int) -> msgspec.Raw | None:
    """The value lowered to `cap`, or None when it is not a number above it."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= cap:
        return None
    return msgspec.Raw(_encode(cap))


def clamp_output(body: bytes, wire: Wire, cap: int | None) -> bytes:
    """`body` with its output-token limit at most `cap`; unchanged when there is no cap, no
    such field, or the field is already within it (or is not a JSON object at all)."""
    if cap is None:
        return body
    try:
        top = _top_level.decode(body)
    except msgspec.DecodeError:
        return body
    changed = False
    if wire == "gemini":
        raw = top.get("generationConfig")
        if raw is None:
            return body
        try:
            config = _top_level.decode(raw)
        except msgspec.DecodeError:
            return body
        lowered = _lowered(config["maxOutputTokens"], cap) if "maxOutputTokens" in config else None
        if lowered is None:
            return body
        config["maxOutputTokens"] = lowered
        top["generationConfig"] = msgspec.Raw(_encode(config))
        return _encode(top)
    for name in _FIELDS[wire]:
        if name in top:
            lowered = _lowered(top[name], cap)
            if lowered is not None:
                top[name] = lowered
                changed = True
    return _encode(top) if changed else body
