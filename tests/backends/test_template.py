"""Template placeholders and JSON paths (`proxy.template`)."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.template import PLACEHOLDERS, lookup, parse_path, problems, render

_plain = st.text(max_size=20).filter(lambda s: "{" not in s and "}" not in s)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _plain,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_plain, inner),
    max_leaves=10,
)


def test_an_exact_placeholder_keeps_the_type_and_embedded_ones_become_text() -> None:
    template = {
        "prompt": "{{prompt}}",
        "history": "{{ messages }}",
        "label": "model={{model}} n={{max_tokens}} stop={{stop}}",
        "opts": ["{{temperature}}", 1, True],
    }
    values = {
        "prompt": "hi",
        "messages": [{"role": "user", "content": "hi"}],
        "model": "m",
        "max_tokens": 5,
        "stop": ["x"],
        "temperature": 0.5,
    }
    assert render(template, values) == {
        "prompt": "hi",
        "history": [{"role": "user", "content": "hi"}],
        "label": 'model=m n=5 stop=["x"]',
        "opts": [0.5, 1, True],
    }


def test_an_entry_whose_placeholder_has_no_value_is_left_out() -> None:
    template = {"t": "{{temperature}}", "p": "{{prompt}}", "s": "seed {{seed}}"}
    assert render(template, {"prompt": "x"}) == {"p": "x", "s": "seed "}


@given(_json)
def test_a_template_without_placeholders_renders_to_itself(doc: Any) -> None:
    assert render(doc, {name: "v" for name in PLACEHOLDERS}) == doc


@given(_json, st.sampled_from(PLACEHOLDERS))
def test_an_exact_placeholder_renders_to_the_value(value: Any, name: str) -> None:
    assert render(["{{" + name + "}}"], {name: value}) == [value]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("{{prompt}}", []),
        ("say {{ prompt }} to {{model}}", []),
        ("{{promt}}", ["unknown placeholder {{promt}}"]),
        ("{{prompt}", ["unbalanced"]),
        ("x }} y", ["unbalanced"]),
    ],
)
def test_problems_name_unknown_and_unbalanced_placeholders(text: str, found: list[str]) -> None:
    got = problems(text)
    assert len(got) == len(found)
    for message, expected in zip(got, found, strict=True):
        assert expected in message


@given(_plain)
def test_text_without_braces_has_no_problems(text: str) -> None:
    assert problems(text) == []


def test_paths_index_lists_and_mappings() -> None:
    doc = {"choices": [{"text": "a"}, {"text": "b"}], "output": {"0": "zero"}}
    assert lookup(doc, parse_path("choices.1.text")) == "b"
    assert lookup(doc, parse_path("output.0")) == "zero"
    assert lookup(doc, parse_path("choices.5.text")) is None
    assert lookup(doc, parse_path("choices.x")) is None
    assert lookup("text", parse_path("a")) is None


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a."])
def test_a_path_with_an_empty_segment_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_path(bad)


@given(
    st.lists(
        st.text(min_size=1, max_size=5).filter(lambda s: "." not in s), min_size=1, max_size=4
    ),
    _json,
)
def test_lookup_finds_what_was_put_at_a_path(keys: list[str], value: Any) -> None:
    path = parse_path(".".join(keys))
    doc: Any = value
    for segment in reversed(path):
        doc = [doc] if isinstance(segment, int) and segment == 0 else {str(segment): doc}
    assert lookup(doc, path) == value
