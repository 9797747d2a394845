"""In-chat commands: find them in a message's text, strip them, apply them to a session.

Grammar (PREFIX is `settings.commands.prefix`, `!/` by default):

    line     := up to 3 spaces, command (spaces command)*, [spaces text]
    command  := PREFIX name ["(" args ")"]        name: a letter, then letters, digits, _ -
                followed by a space or the end of the line ("!/bin/sh" is text)
    args     := arg ("," arg)*                    commas inside quotes or brackets don't split

A command is recognised only where a line starts (so "see !/help" is text), never inside a
fenced code block (``` or ~~~) or an inline code span, and the parenthesised arguments end
on the same line. Pure: no clock, no IO. Invariants: `parse` changes nothing in the text but
the commands it returns (each command line goes whole; text after commands on a line stays);
`apply` is all-or-nothing: one bad command leaves the state as it was.
"""

import bisect
import itertools
import re
from collections.abc import Callable, Collection
from typing import NamedTuple

import msgspec

from proxy.interactive.state import SessionState

__all__ = ["NAMES", "Allowed", "Command", "Outcome", "Parsed", "apply", "describe", "parse"]

NAMES = ("help", "model", "backend", "set", "unset", "session", "reset")
_NO_ARGS = ("help", "session", "reset")
# Fields that shape the request itself: a session may not replace them.
_PROTECTED = frozenset(
    ("model", "messages", "stream", "stream_options", "system", "prompt", "input", "metadata")
)
MAX_PARAMS = 32
MAX_COMMANDS = 20  # in one message
MAX_VALUE = 1024  # bytes of JSON per parameter value
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MODEL = re.compile(r"[^\s(),'\"`]{1,200}")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_TICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
_LINE = re.compile(r"[^\n]*\n?")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


class Command(NamedTuple):
    name: str  # lowercased
    args: str | None  # the text between the parentheses; None: written without them
    written: str  # as the user wrote it, for replies
    error: str | None = None  # a syntax error found while parsing


class Parsed(NamedTuple):
    commands: tuple[Command, ...]
    text: str  # the input with every command line (or command prefix of a line) removed


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, disjoint [start, end) ranges of fenced blocks and inline code spans."""
    spans: list[tuple[int, int]] = []
    prose_start = 0
    fence: tuple[str, int, int] | None = None  # (char, length, block start)
    for m in _LINE.finditer(text):
        if m.start() == m.end():
            break
        f = _FENCE.match(text, m.start(), m.end())
        if fence is None and f is not None:
            _inline_spans(text, prose_start, m.start(), spans)
            fence = (f[1][0], len(f[1]), m.start())
        elif fence is not None and f is not None:
            char, length, start = fence
            rest = text[f.end() : m.end()]
            if f[1][0] == char and len(f[1]) >= length and not rest.strip():
                spans.append((start, m.end()))
                fence, prose_start = None, m.end()
    if fence is not None:  # an unclosed fence runs to the end, as CommonMark reads it
        spans.append((fence[2], len(text)))
    else:
        _inline_spans(text, prose_start, len(text), spans)
    return spans


def _inline_spans(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    """Code spans in text[start:end], as CommonMark reads them: a backtick run opens a span
    closed by the next run of the same length in the same paragraph; unmatched runs are text."""
    paragraphs = [start, *(m.end() for m in _BLANK_LINE.finditer(text, start, end)), end]
    for a, b in itertools.pairwise(paragraphs):
        runs = [m.span() for m in _TICKS.finditer(text, a, b)]
        following: list[int] = [-1] * len(runs)  # index of the next run of the same length
        last: dict[int, int] = {}
        for i in range(len(runs) - 1, -1, -1):
            n = runs[i][1] - runs[i][0]
            following[i] = last.get(n, -1)
            last[n] = i
        i = 0
        while i < len(runs):
            k = following[i]
            if k < 0:
                i += 1
            else:
                spans.append((runs[i][0], runs[k][1]))
                i = k + 1
    spans.sort()


def _inside(spans: list[tuple[int, int]], starts: list[int], pos: int) -> bool:
    i = bisect.bisect_right(starts, pos) - 1
    return i >= 0 and spans[i][0] <= pos < spans[i][1]


def _close(text: str, i: int, end: int) -> int:
    """Index just past the `)` that closes the `(` at text[i], or -1 before `end`."""
    stack: list[str] = []
    quote = ""
    for j in range(i, end):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in _CLOSE:
            stack.append(_CLOSE[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return j + 1
    return -1


def _command_at(text: str, j: int, end: int, prefix: str) -> tuple[Command, int] | None:
    """The command whose prefix starts at text[j], and where it ends; None if it isn't one."""
    m = _NAME.match(text, j + len(prefix), end)
    if m is None:
        return None
    k = m.end()
    name = m[0].lower()
    if k < end and text[k] == "(":
        close = _close(text, k, end)
        if close < 0:
            stop = end
            while stop > k and text[stop - 1] in "\r\n":
                stop -= 1
            return Command(name, None, text[j:stop], "the '(' is not closed on its line"), stop
        cmd, k = Command(name, text[k + 1 : close - 1], text[j:close]), close
    else:
        cmd = Command(name, None, text[j:k])
    if k < end and text[k] not in " \t\r\n":
        return None  # "!/bin/sh", "!/help," or "!/model(x)y": text, not a command
    return cmd, k


def parse(text: str, prefix: str = "!/") -> Parsed:
    """The commands in `text` and the text without them; `text` itself if it has none."""
    if prefix not in text:
        return Parsed((), text)
    spans = _code_spans(text) if "`" in text or "~~~" in text else []
    starts = [s for s, _ in spans]
    found: list[Command] = []
    kept: list[str] = []
    for line in _LINE.finditer(text):
        a, b = line.span()
        if a == b:
            break
        j = a
        while j < b and j - a < 3 and text[j] == " ":
            j += 1
        at = j
        while text.startswith(prefix, j) and not _inside(spans, starts, j):
            got = _command_at(text, j, b, prefix)
            if got is None:
                break
            found.append(got[0])
            j = got[1]
            while j < b and text[j] in " \t":
                j += 1
        if j == at:  # no command on this line
            kept.append(line[0])
        elif text[j:b].strip(" \t\r\n"):  # text follows the commands: keep it, indent too
            kept.append(text[a:at] + text[j:b])
    return Parsed(tuple(found), "".join(kept)) if found else Parsed((), text)


# --- applying commands ------------------------------------------------------------------------


class Allowed(NamedTuple):
    """What a command may switch to, for this caller and this config."""

    may_use: Callable[[str], bool]  # the client key may use this model
    routed: Callable[[str], bool]  # the gateway routes this model
    backends: Collection[str]  # backends a session may pick


class Outcome(NamedTuple):
    state: SessionState | None  # unchanged (the same object) when ok is False
    reply: str  # what the gateway answers when it answers itself
    ok: bool  # every command applied


def _help(prefix: str) -> str:
    rows = (
        ("help", "this list"),
        ("model(NAME)", "send this session's turns to model NAME"),
        ("backend(NAME)", "try only backend NAME for this session's model"),
        ("set(temperature=0.2, max_tokens=500)", "override request parameters"),
        ("unset(temperature, model, backend)", "drop overrides"),
        ("session", "show this session's state"),
        ("reset", "drop every override"),
    )
    lines = [f"  {prefix}{usage:<38} {what}" for usage, what in rows]
    return (
        "Gateway commands (a message of its own, or lines before your text; "
        "not inside code):\n" + "\n".join(lines)
    )


def describe(state: SessionState, session_id: str | None = None) -> str:
    """A session's state as the `session` command shows it."""
    params = ", ".join(f"{k}={v}" for k, v in state.params) or "none"
    head = f"Session {session_id}" if session_id else "Session"
    return (
        f"{head}: model {state.model or '(as requested)'}, "
        f"backend {state.backend or '(any)'}, parameters {params}; "
        f"{state.requests} requests, {state.commands} commands, {state.loops} loops cut."
    )


def _split(args: str) -> list[str]:
    """`args` at its top-level commas (not inside quotes or brackets), each part stripped."""
    parts: list[str] = []
    stack: list[str] = []
    quote = ""
    start = 0
    for j, c in enumerate(args):
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "[{":
            stack.append(_CLOSE[c])
        elif stack and c == stack[-1]:
            stack.pop()
        elif c == "," and not stack:
            parts.append(args[start:j].strip())
            start = j + 1
    parts.append(args[start:].strip())
    return [] if parts == [""] else parts


def _value(text: str) -> str:
    """A `set` value as the JSON it is sent as: JSON as written, 'quoted' or bare text."""
    try:
        return msgspec.json.encode(msgspec.json.decode(text)).decode()
    except (msgspec.DecodeError, RecursionError):
        pass
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    return msgspec.json.encode(text).decode()


def _step(
    state: SessionState, cmd: Command, allowed: Allowed, prefix: str, sid: str | None
) -> tuple[SessionState, str]:
    """One command applied; ValueError with what to tell the user when it can't be."""
    if cmd.error is not None:
        raise ValueError(f"{cmd.written}: {cmd.error}")
    if cmd.name not in NAMES:
        known = ", ".join(prefix + n for n in NAMES)
        raise ValueError(f"unknown command {prefix}{cmd.name}; the commands are {known}")
    if cmd.name in _NO_ARGS and cmd.args not in (None, ""):
        raise ValueError(f"{prefix}{cmd.name} takes no arguments")
    if cmd.name not in _NO_ARGS and cmd.args is None:
        raise ValueError(f"{prefix}{cmd.name} needs arguments in parentheses; see {prefix}help")
    args = _split(cmd.args or "")
    if cmd.name == "help":
        return state, _help(prefix)
    if cmd.name == "session":
        return state, describe(state, sid)
    if cmd.name == "reset":
        reset = msgspec.structs.replace(state, model=None, backend=None, params=())
        return reset, "Session reset: every override dropped."
    if cmd.name in ("model", "backend"):
        if len(args) != 1 or not _MODEL.fullmatch(args[0]):
            raise ValueError(f"{prefix}{cmd.name} takes one name, like {prefix}{cmd.name}(NAME)")
        name = args[0]
        if cmd.name == "model":
            if not allowed.routed(name):
                raise ValueError(f"model '{name}' is not routed by this gateway")
            if not allowed.may_use(name):
                raise ValueError(f"your key may not use model '{name}'")
            return msgspec.structs.replace(state, model=name), f"Model set to {name}."
        if name not in allowed.backends:
            known = ", ".join(sorted(allowed.backends)) or "none"
            raise ValueError(f"backend '{name}' is not available; available: {known}")
        return msgspec.structs.replace(state, backend=name), f"Backend set to {name}."
    if cmd.name == "set":
        return _set(state, args, prefix)
    return _unset(state, args, prefix)


def _set(state: SessionState, args: list[str], prefix: str) -> tuple[SessionState, str]:
    if not args:
        raise ValueError(f"{prefix}set needs name=value pairs, like {prefix}set(temperature=0.2)")
    params = dict(state.params)
    for arg in args:
        name, eq, raw = arg.partition("=")
        name, raw = name.strip(), raw.strip()
        if not eq or not raw or not _PARAM.fullmatch(name):
            raise ValueError(f"'{arg}' is not name=value (like temperature=0.2)")
        if name in _PROTECTED:
            raise ValueError(f"'{name}' shapes the request itself and can't be set")
        value = _value(raw)
        if len(value.encode()) > MAX_VALUE:
            raise ValueError(f"the value of '{name}' is over {MAX_VALUE} bytes")
        params[name] = value
    if len(params) > MAX_PARAMS:
        raise ValueError(f"a session holds at most {MAX_PARAMS} parameters")
    names = dict.fromkeys(arg.partition("=")[0].strip() for arg in args)
    shown = ", ".join(f"{name}={params[name]}" for name in names)
    return msgspec.structs.replace(state, params=tuple(params.items())), f"Set {shown}."


def _unset(state: SessionState, args: list[str], prefix: str) -> tuple[SessionState, str]:
    if not args:
        raise ValueError(f"{prefix}unset needs names, like {prefix}unset(temperature)")
    params = dict(state.params)
    model, backend = state.model, state.backend
    for name in args:
        if name == "model":
            model = None
        elif name == "backend":
            backend = None
        elif _PARAM.fullmatch(name):
            params.pop(name, None)
        else:
            raise ValueError(f"'{name}' is not a parameter name")
    new = msgspec.structs.replace(state, model=model, backend=backend, params=tuple(params.items()))
    return new, f"Unset {', '.join(args)}."


def apply(
    state: SessionState | None,
    commands: tuple[Command, ...],
    allowed: Allowed,
    *,
    prefix: str = "!/",
    session_id: str | None = None,
) -> Outcome:
    """The state after every command, and the reply; on any error, the old state and why.

    `state` None means the request names no session: only `help` works then, since any
    other command would have nowhere to keep its effect.
    """
    if state is None:
        if all(c.name == "help" and c.error is None and not c.args for c in commands):
            return Outcome(None, _help(prefix), True)
        return Outcome(
            None,
            "This conversation has no session, so commands can't be kept: send an "
            "x-session-id header (or Anthropic metadata.user_id), or ask the gateway's "
            "operator to turn on settings.sessions.derive.",
            False,
        )
    if len(commands) > MAX_COMMANDS:
        return Outcome(state, f"At most {MAX_COMMANDS} commands in one message.", False)
    new = state
    replies: list[str] = []
    errors: list[str] = []
    for cmd in commands:
        try:
            new, reply = _step(new, cmd, allowed, prefix, session_id)
            replies.append(reply)
        except ValueError as err:
            errors.append(str(err))
    if errors:
        lines = [*errors, f"Nothing was changed. Send {prefix}help for the commands."]
        return Outcome(state, "\n".join(lines), False)
    new = msgspec.structs.replace(new, commands=new.commands + len(commands))
    return Outcome(new, "\n".join(replies), True)
