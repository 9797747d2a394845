"""The generated text in raw SSE frames, cheaply, for the loop detector on pass-through.

The pass-through relay forwards upstream bytes without decoding them; decoding each chunk's
JSON only to watch for loops would cost more than the relay itself. Instead one regex (in C)
picks the string values of the delta fields out of whole frames: OpenAI `content`,
`reasoning_content`, `reasoning`, `refusal` and tool-call `arguments`; Anthropic `text`,
`thinking` and `partial_json`. The values stay JSON-escaped: escaping maps each character on
its own, so text that repeats stays repeating text (a fragment's length is then counted in
escaped characters, `\\n` as two). Pure.
Invariant: `split` only ever returns what a field's string value holds in the frames given;
a value whose closing quote is not in the frames yet is not returned at all, so feed whole
frames (the relay's `sse.frame_end` gives that boundary).
"""

import re
from typing import Literal, NamedTuple

__all__ = ["Split", "split"]

_STRING = rb'"((?:[^"\\]|\\.)*)"'
_FIELDS = {
    "openai": re.compile(
        rb'"(content|reasoning_content|reasoning|refusal|arguments)"\s*:\s*' + _STRING
    ),
    "anthropic": re.compile(rb'"(text|thinking|partial_json)"\s*:\s*' + _STRING),
}
_ARGUMENTS = (b"arguments", b"partial_json")


class Split(NamedTuple):
    text: str  # what the model says (and thinks), JSON-escaped
    arguments: str  # tool-call argument fragments, JSON-escaped


_NOTHING = Split("", "")


def split(frames: bytes, wire: Literal["openai", "anthropic"]) -> Split:
    """The delta strings in `frames` (whole SSE frames), in order, text apart from arguments."""
    found = _FIELDS[wire].findall(frames)
    if not found:
        return _NOTHING
    if len(found) == 1:  # the usual frame: one token
        name, value = found[0]
        value_text = value.decode("utf-8", "replace")
        return Split("", value_text) if name in _ARGUMENTS else Split(value_text, "")
    text = b"".join(value for name, value in found if name not in _ARGUMENTS)
    arguments = b"".join(value for name, value in found if name in _ARGUMENTS)
    return Split(text.decode("utf-8", "replace"), arguments.decode("utf-8", "replace"))
