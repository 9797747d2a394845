"""Bodies: commands come out of the last user message only; overrides change only themselves."""

import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from proxy.interactive.rewrite import encode, find, first_user_text, with_overrides
from proxy.interactive.state import SessionState

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])


def fields_of(body: bytes) -> dict[str, msgspec.Raw]:
    return _top.decode(body)


def body(messages: list[Any], **extra: Any) -> bytes:
    return json.dumps({"model": "demo", "messages": messages, **extra}, indent=1).encode()


def test_string_content_openai() -> None:
    raw = body([{"role": "user", "content": "!/model(gpt-4o)\nWhat is 2+2?"}], temperature=1)
    found = find(fields_of(raw), "!/")
    assert found is not None and not found.only
    assert [c.name for c in found.commands] == ["model"]
    out = json.loads(encode(found.fields))
    assert out == {
        "model": "demo",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "temperature": 1,
    }


def test_commands_only() -> None:
    found = find(fields_of(body([{"role": "user", "content": "  !/help  \n"}])), "!/")
    assert found is not None and found.only


def test_content_blocks_anthropic() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    raw = body(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "!/set(temperature=0)", "cache_control": {"x": 1}},
                    image,
                    {"type": "text", "text": "Describe it.\n!/session"},
                ],
            }
        ]
    )
    found = find(fields_of(raw), "!/")
    assert found is not None and not found.only
    assert [c.name for c in found.commands] == ["set", "session"]
    message = json.loads(encode(found.fields))["messages"][0]
    # The emptied block is dropped (APIs refuse empty text); everything else is kept.
    assert message["content"] == [image, {"type": "text", "text": "Describe it.\n"}]


def test_blocks_that_are_only_commands() -> None:
    blocks = [{"type": "text", "text": "!/model(x)"}, {"type": "text", "text": "!/help"}]
    found = find(fields_of(body([{"role": "user", "content": blocks}])), "!/")
    assert found is not None and found.only


def test_an_image_with_commands_is_not_commands_only() -> None:
    blocks = [{"type": "image", "source": {}}, {"type": "text", "text": "!/help"}]
    found = find(fields_of(body([{"role": "user", "content": blocks}])), "!/")
    assert found is not None and not found.only


def test_earlier_messages_and_other_roles_are_ignored() -> None:
    history = [
        {"role": "user", "content": "!/model(gpt-4o)"},
        {"role": "assistant", "content": "Model set."},
    ]
    assert find(fields_of(body([*history, {"role": "user", "content": "hello"}])), "!/") is None
    # The last message is not the user's (a tool result, an assistant prefill): nothing to do.
    tool = {"role": "tool", "tool_call_id": "c1", "content": "!/help"}
    assert find(fields_of(body([*history, tool])), "!/") is None
    prefill = {"role": "assistant", "content": "!/help"}
    assert find(fields_of(body([*history, prefill])), "!/") is None
    # Anthropic tool results travel in a user message: only top-level text blocks count.
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "!/help"}
    assert find(fields_of(body([{"role": "user", "content": [result]}])), "!/") is None


def test_commands_in_code_are_not_found() -> None:
    text = "Why does this print?\n```\n!/help\n```"
    assert find(fields_of(body([{"role": "user", "content": text}])), "!/") is None


def test_escaped_slash_and_unicode_escapes_are_seen() -> None:
    raw = b'{"model":"m","messages":[{"role":"user","content":"!\\/help"}]}'
    assert find(fields_of(raw), "!/") is not None
    raw = b'{"model":"m","messages":[{"role":"user","content":"\\u0021/help"}]}'
    assert find(fields_of(raw), "!/") is not None


def test_malformed_bodies_are_left_to_the_upstream() -> None:
    for messages in (b"[]", b"{}", b'"x"', b"[1]", b'[{"role":"user","content":5}]'):
        raw = b'{"model":"m","messages":' + messages + b"}"
        assert find(fields_of(raw), "!/") is None
    assert find(fields_of(b'{"model":"m"}'), "!/") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
plain = st.text(max_size=30).filter(lambda s: "!/" not in s)


@given(
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in ("model", "messages")), json_values
    ),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(("user", "assistant")), "content": st.text(max_size=20)}
        ),
        max_size=4,
    ),
    plain,
    st.sampled_from(("!/help", "!/model(x) !/set(temperature=0.5)")),
    st.integers(0, 3),
)
def test_find_changes_only_the_last_message_text(
    extra: dict[str, Any], history: list[Any], text: str, cmds: str, indent: int
) -> None:
    messages = [*history, {"role": "user", "content": f"{cmds}\n{text}", "name": "me"}]
    raw = json.dumps({"model": "demo", "messages": messages, **extra}, indent=indent).encode()
    before = fields_of(raw)
    found = find(before, "!/")
    assert found is not None
    assert found.only == (not text.strip())
    after = found.fields
    assert after.keys() == before.keys()
    for name in before.keys() - {"messages"}:
        assert bytes(after[name]) == bytes(before[name])  # the client's own bytes
    old = msgspec.json.decode(before["messages"], type=list[msgspec.Raw])
    new = msgspec.json.decode(after["messages"], type=list[msgspec.Raw])
    assert [bytes(m) for m in new[:-1]] == [bytes(m) for m in old[:-1]]
    assert json.loads(bytes(new[-1])) == {"role": "user", "content": text, "name": "me"}


@given(
    st.dictionaries(st.text(max_size=8), json_values),
    st.none() | st.text(max_size=10),
    st.lists(
        st.tuples(st.sampled_from(("temperature", "top_p", "max_tokens", "x")), json_values),
        max_size=4,
    ),
)
def test_overrides_change_only_model_and_params(
    extra: dict[str, Any], model: str | None, params: list[tuple[str, Any]]
) -> None:
    raw = json.dumps({**extra, "model": "client-model"}).encode()
    state = SessionState(
        model=model, params=tuple((k, json.dumps(v)) for k, v in dict(params).items())
    )
    out = with_overrides(fields_of(raw), state)
    expected = {**extra, "model": "client-model" if model is None else model, **dict(params)}
    assert json.loads(encode(out)) == expected
    for name in extra.keys() - {"model"} - dict(params).keys():
        assert bytes(out[name]) == bytes(fields_of(raw)[name])


def test_first_user_text_is_the_same_on_every_turn() -> None:
    first = {"role": "user", "content": [{"type": "text", "text": "plan a trip"}]}
    turn1 = body([{"role": "system", "content": "be brief"}, first])
    turn2 = body(
        [first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    )
    assert first_user_text(fields_of(turn1)) == first_user_text(fields_of(turn2)) == "plan a trip"
    assert first_user_text(fields_of(body([{"role": "assistant", "content": "hi"}]))) is None
    assert first_user_text(fields_of(b'{"messages": 3}')) is None
