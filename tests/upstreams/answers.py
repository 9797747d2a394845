"""One request's answer, before any wire shapes it: its text pieces, tool calls and usage.

Deterministic: with nothing scripted, the text is derived from the model and the last user
turn, and usage from word counts, so a test can predict every byte it is sent.
"""

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from tests.upstreams.behaviours import Behaviour
from tests.upstreams.received import Recorded, _Endpoint


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
    if ep.name == "responses" and isinstance(body.get("input"), str):
        return str(body["input"])
    key = {"generate": "contents", "responses": "input"}.get(ep.name, "messages")
    turns = body.get(key)
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
