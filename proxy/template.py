"""Request-body templates and JSON paths for `type: http` backends.

A template is any JSON value whose strings may hold placeholders, `{{name}}`. A string that is
exactly one placeholder becomes the value itself (a number stays a number, `messages` stays a
list); a placeholder inside a longer string is replaced by the value's text (JSON for lists
and objects, "" for absent). A mapping entry whose value is exactly one placeholder with no
value (the client did not set `temperature`) is left out, so servers see only what was given.
A path is dot-separated keys, where a segment of digits indexes a list: `choices.0.text`.

Pure: no IO. Invariant: `problems()` finds every error `render` could hit, so a template that
passed `llm-proxy check` renders for every request.
"""

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

PLACEHOLDERS: Final = (
    *("prompt", "messages", "system", "model", "stream", "parameters"),
    *("max_tokens", "temperature", "top_p", "stop", "seed"),
)
PARAMETERS: Final = ("max_tokens", "temperature", "top_p", "stop", "seed")

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ONLY = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}\Z")
_encode = msgspec.json.Encoder().encode

Path = tuple[str | int, ...]
StreamFormat = Literal["ndjson", "sse"]


class HttpTemplate(msgspec.Struct, frozen=True, kw_only=True):
    """A `type: http` backend's request and response description (see README)."""

    method: str = "POST"  # or PUT
    path: str = ""  # appended to base_url
    stream_path: str | None = None  # None: `path` for streams too
    body: str = "{}"  # the template, as JSON text (frozen config holds no dicts)
    text: Path = ()
    prompt_tokens: Path | None = None
    completion_tokens: Path | None = None
    finish: Path | None = None
    stream_format: StreamFormat | None = None  # None: the server cannot stream
    stream_text: Path | None = None  # None: `text`


def problems(text: str) -> list[str]:
    """What is wrong with the placeholders in one template string; [] when nothing."""
    found: list[str] = []
    rest = _PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        found.append("unbalanced '{{' or '}}'; a placeholder is written {{name}}")
    for m in _PLACEHOLDER.finditer(text):
        if m[1] not in PLACEHOLDERS:
            found.append(
                f"unknown placeholder {{{{{m[1]}}}}}; expected one of: " + ", ".join(PLACEHOLDERS)
            )
    return found


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """`template` with its placeholders replaced from `values` (absent names are None)."""
    if isinstance(template, str):
        only = _ONLY.match(template)
        if only is not None:
            return values.get(only[1])
        return _PLACEHOLDER.sub(lambda m: _text(values.get(m[1])), template)
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            only = _ONLY.match(value) if isinstance(value, str) else None
            if only is not None and values.get(only[1]) is None:
                continue
            out[key] = render(value, values)
        return out
    return template


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _encode(value).decode()


def parse_path(text: str) -> Path:
    """`choices.0.text` → ("choices", 0, "text"); raises ValueError for an empty segment."""
    if not text:
        raise ValueError("a path can't be empty; write keys separated by dots, like output.text")
    segments: list[str | int] = []
    for part in text.split("."):
        if not part:
            raise ValueError(f"path {text!r} has an empty segment; write keys like output.text")
        segments.append(int(part) if part.isascii() and part.isdigit() else part)
    return tuple(segments)


_MISSING: Final = object()


def lookup(doc: Any, path: Path) -> Any:
    """The value at `path` in a decoded JSON document, or None where the path leads nowhere.

    An int segment indexes a list (a string key on a mapping: `{"0": ...}` works too)."""
    here = doc
    for segment in path:
        if isinstance(here, dict):
            here = here.get(str(segment), _MISSING)
        elif isinstance(here, list) and isinstance(segment, int) and segment < len(here):
            here = here[segment]
        else:
            return None
        if here is _MISSING:
            return None
    return here
