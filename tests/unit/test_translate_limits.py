"""Issue 20 item 12: what Claude Code sends an OpenAI-compatible backend through the gateway —
`role: "system"` turns, a long `metadata.user_id`, `max_tokens: 32000` — is translated into
what such backends accept (`anthropic_openai`, `caps`)."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import parse
from proxy.translate import TranslationError, anthropic_openai, caps

CLAUDE_CODE_USER = json.dumps(
    {
        "device_id": "5d9c" * 16,
        "account_uuid": "0b6b3f5e-7a8a-4ad5-9f5c-2f51d4d5b0f1",
        "session_id": "c8f1a4c2-39f4-4c5e-8f2d-4b3a1f0e9d7c",
    }
)


def translate(body: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_openai.request(json.dumps(body).encode(), "gpt-x", False)
    return json.loads(out)  # type: ignore[no-any-return]


def base(messages: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"model": "claude", "max_tokens": 100, "messages": messages, **kw}


def test_system_turns_inside_messages_are_accepted_in_order() -> None:
    out = translate(
        base(
            [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": [{"type": "text", "text": "now in French"}]},
                {"role": "user", "content": "again"},
                {"role": "system", "content": "last word"},
            ],
            system="top",
        )
    )
    assert [(m["role"], m["content"]) for m in out["messages"]] == [
        ("system", "top\n\nbe brief"),  # leading ones join the one leading system message
        ("user", "hi"),
        ("assistant", "hello"),
        ("system", "now in French"),
        ("user", "again"),
        ("system", "last word"),
    ]


def test_a_malformed_system_turn_is_a_400_naming_it() -> None:
    with pytest.raises(TranslationError) as err:
        translate(base([{"role": "user", "content": "hi"}, {"role": "system", "content": 5}]))
    assert err.value.param == "messages[1].content"


def test_bad_turns_after_a_system_turn_are_named_by_their_original_index() -> None:
    with pytest.raises(TranslationError) as err:
        translate(
            base(
                [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                  "input": {}}]},
                ]
            )
        )  # fmt: skip
    assert err.value.param is not None and err.value.param.startswith("messages[1]")


turn = st.tuples(st.sampled_from(["user", "assistant", "system"]), st.text(min_size=1, max_size=8))


@given(st.lists(turn, min_size=1, max_size=8))
def test_any_mix_of_turns_keeps_the_conversation_order(turns: list[tuple[str, str]]) -> None:
    out = translate(base([{"role": r, "content": c} for r, c in turns]))
    got = [(m["role"], m["content"]) for m in out["messages"]]
    first = next((i for i, (r, _) in enumerate(turns) if r != "system"), len(turns))
    leading = [c for _, c in turns[:first]]
    want = ([("system", "\n\n".join(leading))] if leading else []) + list(turns[first:])
    assert got == want


@given(st.text(max_size=300))
def test_user_id_always_fits_openais_user_limit_deterministically(user_id: str) -> None:
    user = anthropic_openai.openai_user(user_id)
    assert user is not None and len(user) <= anthropic_openai.USER_MAX
    assert user == anthropic_openai.openai_user(user_id)
    if len(user_id) <= anthropic_openai.USER_MAX:
        assert user == user_id


def test_claude_codes_user_id_becomes_a_64_character_digest() -> None:
    assert len(CLAUDE_CODE_USER) > 64
    out = translate(
        base([{"role": "user", "content": "hi"}], metadata={"user_id": CLAUDE_CODE_USER})
    )
    assert len(out["user"]) == 64 and all(c in "0123456789abcdef" for c in out["user"])
    short = translate(base([{"role": "user", "content": "hi"}], metadata={"user_id": "u-1"}))
    assert short["user"] == "u-1"


# --- caps: max_output_tokens per backend --------------------------------------------------------

others = st.dictionaries(
    st.sampled_from(["model", "temperature", "stream", "x"]),
    st.integers() | st.text(max_size=5) | st.booleans() | st.none(),
    max_size=3,
)


@given(
    st.integers(1, 10**7), st.integers(1, 10**6), others, st.sampled_from(["openai", "anthropic"])
)
def test_max_tokens_is_clamped_and_nothing_else_changes(
    asked: int, cap: int, rest: dict[str, Any], wire: caps.Wire
) -> None:
    field = "max_completion_tokens" if wire == "openai" and asked % 2 else "max_tokens"
    body = {**rest, field: asked}
    out = json.loads(caps.clamp_output(json.dumps(body).encode(), wire, cap))
    assert out == {**rest, field: min(asked, cap)}


@given(st.integers(1, 10**7), st.integers(1, 10**6))
def test_gemini_max_output_tokens_is_clamped(asked: int, cap: int) -> None:
    body = {"contents": [], "generationConfig": {"maxOutputTokens": asked, "temperature": 0.5}}
    out = json.loads(caps.clamp_output(json.dumps(body).encode(), "gemini", cap))
    assert out["generationConfig"] == {"maxOutputTokens": min(asked, cap), "temperature": 0.5}


@pytest.mark.parametrize(
    "body",
    [b'{"max_tokens": 10}', b"not json", b'{"max_tokens": "lots"}', b'{"max_tokens": true}', b"[]"],
)
def test_bodies_within_the_cap_or_not_understood_pass_unchanged(body: bytes) -> None:
    assert caps.clamp_output(body, "openai", 100) is body
    assert caps.clamp_output(b'{"max_tokens": 32000}', "openai", None) == b'{"max_tokens": 32000}'


def test_backend_max_output_tokens_is_configured_per_backend() -> None:
    config = parse(
        "version: 1\n"
        "backends:\n"
        "  small: {type: mock, max_output_tokens: 8192}\n"
        "  big: {type: mock}\n"
        "models: {m: {targets: [{backend: small}]}}\n",
        {},
    )
    assert config.backend("small").max_output_tokens == 8192
    assert config.backend("big").max_output_tokens is None
