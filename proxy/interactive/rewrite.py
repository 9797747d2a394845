"""Request bodies and sessions: find commands in the last user message, apply overrides.

Works on the top-level `dict[str, msgspec.Raw]` the front doors already decode, for OpenAI
chat and Anthropic messages alike (both carry `messages: [{role, content}]`, content a string
or a list of blocks whose text blocks are `{"type": "text", "text": ...}`). Pure.
Invariant: only what is named changes. Stripping commands re-encodes the last message
alone (every other message stays the client's bytes, and in that message every field but
its text); overrides replace `model` and the set parameters and keep every other field's
bytes.
"""

from typing import Any, NamedTuple

import msgspec

from proxy.interactive import commands
from proxy.interactive.commands import Command
from proxy.interactive.state import SessionState

__all__ = ["Found", "encode", "find", "first_user_text", "with_overrides"]

Fields = dict[str, msgspec.Raw]

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_list = msgspec.json.Decoder(list[msgspec.Raw])
_str = msgspec.json.Decoder(str)
_any = msgspec.json.Decoder(Any)
_encode = msgspec.json.Encoder().encode
_BAD = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)  # ValidationError too


class Found(NamedTuple):
    commands: tuple[Command, ...]
    fields: Fields  # the body's fields with the commands stripped from the last message
    only: bool  # the message held nothing but commands: answer it, forward nothing


def encode(fields: Fields) -> bytes:
    return _encode(fields)


def _maybe_has(raw: bytes, prefix: str) -> bool:
    """Cheap pre-check on the JSON bytes: can this content hold `prefix` at all?"""
    if not prefix.isascii():
        return True
    escaped = _encode(prefix)[1:-1]
    # Some encoders write "/" as "\/"; any "\u" escape may spell a character of the prefix.
    return escaped in raw or escaped.replace(b"/", b"\\/") in raw or b"\\u" in raw


def _role(message: Fields) -> str | None:
    raw = message.get("role")
    try:
        return _str.decode(raw) if raw is not None else None
    except _BAD:
        return None


def _strip_blocks(blocks: list[msgspec.Raw], prefix: str) -> tuple[list[Command], bytes, bool]:
    """Commands in the text blocks, the blocks without them, and whether nothing else is left."""
    found: list[Command] = []
    out: list[msgspec.Raw] = []
    left = False
    for raw in blocks:
        try:
            block = _fields.decode(raw)
            is_text = _str.decode(block.get("type", msgspec.Raw(b"null"))) == "text"
            text = _str.decode(block["text"]) if is_text else ""
        except (*_BAD, KeyError):
            is_text = False
        if not is_text:
            out.append(raw)
            left = True
            continue
        parsed = commands.parse(text, prefix)
        if not parsed.commands:
            out.append(raw)
            left = left or bool(text.strip())
            continue
        found.extend(parsed.commands)
        if parsed.text.strip():  # a block emptied by stripping goes: APIs refuse empty text
            block["text"] = msgspec.Raw(_encode(parsed.text))
            out.append(msgspec.Raw(_encode(block)))
            left = True
    return found, _encode(out), not left


def find(fields: Fields, prefix: str) -> Found | None:
    """The commands of the last message when it is the user's; None when it has none."""
    raw_messages = fields.get("messages")
    if raw_messages is None or not _maybe_has(bytes(raw_messages), prefix):
        return None  # no message can hold a command: nothing decoded
    try:
        messages = _list.decode(raw_messages)
        last = _fields.decode(messages[-1]) if messages else None
    except _BAD:
        return None  # the upstream will say what is wrong with it
    if last is None or _role(last) != "user" or "content" not in last:
        return None
    content = bytes(last["content"])
    if not _maybe_has(content, prefix):
        return None
    try:
        if content.lstrip()[:1] == b'"':
            parsed = commands.parse(_str.decode(content), prefix)
            found, new_content = list(parsed.commands), _encode(parsed.text)
            only = not parsed.text.strip()
        elif content.lstrip()[:1] == b"[":
            found, new_content, only = _strip_blocks(_list.decode(content), prefix)
        else:
            return None
    except _BAD:
        return None
    if not found:
        return None
    last["content"] = msgspec.Raw(new_content)
    messages[-1] = msgspec.Raw(_encode(last))
    return Found(tuple(found), {**fields, "messages": msgspec.Raw(_encode(messages))}, only)


def with_overrides(fields: Fields, state: SessionState) -> Fields:
    """`fields` with the session's model and parameters in place of the client's."""
    if state.model is None and not state.params:
        return fields
    out = dict(fields)
    if state.model is not None:
        out["model"] = msgspec.Raw(_encode(state.model))
    for name, value in state.params:
        out[name] = msgspec.Raw(value.encode())
    return out


def first_user_text(fields: Fields) -> str | None:
    """The text of the conversation's first user message: the same on every turn."""
    try:
        for raw in _list.decode(fields.get("messages", msgspec.Raw(b"[]"))):
            message = _fields.decode(raw)
            if _role(message) != "user" or "content" not in message:
                continue
            content = _any.decode(message["content"])
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [
                    b.get("text", "")
                    for b in content
                    if isinstance(b, dict) and b.get("type") == "text"
                ]
                return "\n".join(t for t in texts if isinstance(t, str))
            return None
    except _BAD:
        return None
    return None
