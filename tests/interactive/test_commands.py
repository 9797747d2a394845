"""The command grammar: what is a command, what stripping leaves, and what applying does."""

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.interactive.commands import Allowed, Command, apply, describe, parse
from proxy.interactive.state import SessionState

COMMANDS = (
    "!/help",
    "!/session",
    "!/reset",
    "!/model(gpt-4o)",
    "!/backend(openai)",
    "!/set(temperature=0.2, max_tokens=500)",
    '!/set(stop=["a,b", ")"])',
    "!/unset(temperature, model)",
    "!/Help()",
    "!/frobnicate",
)

# A line of prose: never a command line, no code markers, no line break.
prose = st.text(
    alphabet=st.characters(blacklist_characters="\n\r`~", blacklist_categories=("Cs",)),
    max_size=30,
).filter(lambda s: not s.lstrip(" ").startswith("!/"))
command = st.sampled_from(COMMANDS)
indent = st.sampled_from(("", " ", "  ", "   "))


@st.composite
def messages(draw: Any) -> tuple[str, str, list[str]]:
    """(message, the message with commands stripped, the commands as written)."""
    lines: list[tuple[str, str | None]] = []  # (line, what stripping keeps of it)
    written: list[str] = []
    for kind in draw(st.lists(st.sampled_from(("prose", "commands", "mixed")), max_size=8)):
        if kind == "prose":
            line = draw(prose)
            lines.append((line, line))
            continue
        cmds = draw(st.lists(command, min_size=1, max_size=3))
        written += cmds
        pad = draw(indent)
        line = pad + " ".join(cmds)
        if kind == "mixed":
            rest = draw(prose.filter(lambda s: s.strip(" \t") == s and s.strip() != ""))
            lines.append((f"{line} {rest}", pad + rest))
        else:
            lines.append((line, None))
    if not lines:
        return "", "", []
    ends = draw(st.lists(st.sampled_from(("\n", "\r\n")), min_size=len(lines), max_size=len(lines)))
    ends[-1] = draw(st.sampled_from(("", "\n")))
    text = "".join(line + end for (line, _), end in zip(lines, ends, strict=True))
    kept = "".join(k + end for (_, k), end in zip(lines, ends, strict=True) if k is not None)
    return text, kept, written


@given(messages())
def test_stripping_removes_the_commands_and_nothing_else(case: tuple[str, str, list[str]]) -> None:
    text, kept, written = case
    parsed = parse(text)
    assert [c.written for c in parsed.commands] == written
    assert parsed.text == (kept if written else text)


@given(st.text(max_size=200), st.sampled_from(("!/", ">>", "/", "@@")))
def test_any_text_parses_and_without_commands_is_unchanged(text: str, prefix: str) -> None:
    parsed = parse(text, prefix)
    if not parsed.commands:
        assert parsed.text == text
    else:
        assert len(parsed.text) < len(text)
        assert all(c.written.startswith(prefix) and c.written in text for c in parsed.commands)


@given(messages(), st.sampled_from(("```", "~~~", "````")), st.sampled_from(("", "python")))
def test_commands_in_fenced_code_are_text(
    case: tuple[str, str, list[str]], fence: str, info: str
) -> None:
    text = f"look at this:\n{fence}{info}\n{case[0]}\n{fence}\n"
    assert parse(text) == (parse(text).commands, text)
    assert parse(text).commands == ()


def test_unclosed_fence_hides_everything_after_it() -> None:
    text = "```\n!/help\n"
    assert parse(text).commands == ()


def test_a_shorter_fence_does_not_close_a_longer_one() -> None:
    text = "````\n```\n!/help\n````\n!/session\n"
    parsed = parse(text)
    assert [c.name for c in parsed.commands] == ["session"]
    assert parsed.text == "````\n```\n!/help\n````\n"


@given(command, st.sampled_from(("`", "``")))
def test_commands_in_inline_code_are_text(cmd: str, ticks: str) -> None:
    for text in (f"{ticks}{cmd}{ticks}", f"see {ticks}x\n{cmd}{ticks} here"):
        assert parse(text) == ((), text)


def test_a_blank_line_ends_an_open_inline_span() -> None:
    parsed = parse("a `stray tick\n\n!/help\n")
    assert [c.name for c in parsed.commands] == ["help"]
    assert parsed.text == "a `stray tick\n\n"


def test_commands_must_start_a_line() -> None:
    for text in (
        "see !/help",
        "    !/help",
        "\t!/help",
        "x!/help",
        "!/ help",
        "!/1x",
        "!/bin/sh -c true",
        "!/help, please",
        "!/model(x)y",
    ):
        assert parse(text).commands == (), text


def test_grammar_details() -> None:
    parsed = parse('!/set(stop=["a,b", ")"], x=1) !/MODEL(m) and then text')
    assert parsed.commands == (
        Command("set", 'stop=["a,b", ")"], x=1', '!/set(stop=["a,b", ")"], x=1)'),
        Command("model", "m", "!/MODEL(m)"),
    )
    assert parsed.text == "and then text"
    broken = parse("!/model(gpt\nhello")
    assert broken.commands[0].error is not None
    assert broken.text == "hello"


def test_other_prefix() -> None:
    parsed = parse(">>model(x)\n!/help", ">>")
    assert [c.name for c in parsed.commands] == ["model"]
    assert parsed.text == "!/help"


# --- apply ------------------------------------------------------------------------------------

ALLOWED = Allowed(
    may_use=lambda m: m != "secret-model",
    routed=lambda m: m in ("gpt-4o", "claude", "secret-model"),
    backends=("openai", "anthropic"),
)


def run(state: SessionState | None, text: str) -> tuple[SessionState | None, str, bool]:
    out = apply(state, parse(text).commands, ALLOWED, session_id="s1")
    return out.state, out.reply, out.ok


def test_model_backend_set_unset_reset() -> None:
    state, reply, ok = run(SessionState(), "!/model(gpt-4o) !/backend(openai)")
    assert ok and state is not None
    assert (state.model, state.backend, state.commands) == ("gpt-4o", "openai", 2)
    assert "gpt-4o" in reply and "openai" in reply
    state, reply, ok = run(state, '!/set(temperature=0.2, max_tokens=500, stop=["x"], tag=blue)')
    assert ok and state is not None
    assert state.params == (
        ("temperature", "0.2"), ("max_tokens", "500"), ("stop", '["x"]'), ("tag", '"blue"')
    )  # fmt: skip
    state, _, ok = run(state, "!/set(temperature=1) !/unset(max_tokens, model)")
    assert ok and state is not None
    assert state.model is None and state.backend == "openai"
    assert state.params == (("temperature", "1"), ("stop", '["x"]'), ("tag", '"blue"'))
    state, reply, ok = run(state, "!/session")
    assert ok and state is not None and "temperature=1" in reply and "s1" in reply
    # It shows the state as the commands before it left it (not counting itself).
    assert reply == describe(msgspec.structs.replace(state, commands=state.commands - 1), "s1")
    state, _, ok = run(state, "!/reset")
    assert ok and state is not None and not state.overrides
    assert state.commands == 7


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("!/frobnicate", "unknown command !/frobnicate"),
        ("!/model(secret-model)", "may not use model 'secret-model'"),
        ("!/model(nope)", "not routed"),
        ("!/model", "needs arguments"),
        ("!/model(a, b)", "takes one name"),
        ("!/backend(gemini)", "available: anthropic, openai"),
        ("!/set(temperature)", "is not name=value"),
        ("!/set(model=x)", "can't be set"),
        ("!/set(messages=[])", "can't be set"),
        ("!/set()", "needs name=value"),
        ("!/unset()", "needs names"),
        ("!/help(me)", "takes no arguments"),
        ("!/model(x", "not closed"),
    ],
)
def test_errors_change_nothing_and_say_why(text: str, says: str) -> None:
    before = SessionState(model="claude", params=(("top_p", "0.5"),))
    state, reply, ok = run(before, f"!/set(temperature=0) {text}")
    assert not ok
    assert state is before
    assert says in reply
    assert "!/help" in reply


def test_unknown_command_lists_the_commands() -> None:
    _, reply, ok = run(SessionState(), "!/frobnicate")
    assert not ok
    for name in ("help", "model", "backend", "set", "unset", "session", "reset"):
        assert f"!/{name}" in reply


def test_without_a_session_only_help_works() -> None:
    state, reply, ok = run(None, "!/help")
    assert ok and state is None and "!/model(NAME)" in reply
    state, reply, ok = run(None, "!/model(gpt-4o)")
    assert not ok and state is None and "x-session-id" in reply


def test_help_uses_the_configured_prefix() -> None:
    out = apply(SessionState(), parse(">>help", ">>").commands, ALLOWED, prefix=">>")
    assert ">>model(NAME)" in out.reply and "!/" not in out.reply


@given(st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=6))
def test_apply_is_all_or_nothing(cmds: list[str]) -> None:
    before = SessionState(model="claude")
    out = apply(before, parse(" ".join(cmds)).commands, ALLOWED)
    if out.ok:
        assert out.state is not None and out.state.commands == len(cmds)
    else:
        assert out.state is before
    assert out.reply


def test_a_later_non_command_on_a_command_line_is_text() -> None:
    parsed = parse("!/help !/bin/sh")
    assert [c.name for c in parsed.commands] == ["help"]
    assert parsed.text == "!/bin/sh"


def test_many_broken_commands_parse_in_linear_time() -> None:
    text = "!/x(\n" * 50_000  # each line scans only itself
    parsed = parse(text)
    assert len(parsed.commands) == 50_000 and parsed.text == ""
    out = apply(SessionState(), parsed.commands, ALLOWED)
    assert not out.ok and "At most 20 commands" in out.reply
