"""front.request.with_default_model: a body that names no model gets settings.default_model;
any other body is forwarded as the client's bytes."""

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from proxy.front.request import with_default_model

_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=8)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "model"), _VALUES, max_size=4))
def test_absent_null_or_empty_model_gets_the_default(fields: dict[str, object]) -> None:
    for model in ((), (None,), ("",)):
        body = msgspec.json.encode({**fields, **({"model": model[0]} if model else {})})
        out = msgspec.json.decode(with_default_model(body, "demo"))
        assert out == {**fields, "model": "demo"}


@given(st.dictionaries(st.text(max_size=8), _VALUES, max_size=4), st.text(min_size=1, max_size=8))
def test_a_named_model_or_no_default_leaves_the_bytes(fields: dict[str, object], name: str) -> None:
    body = msgspec.json.encode({**fields, "model": name})
    assert with_default_model(body, "demo") is body
    assert with_default_model(msgspec.json.encode(fields), None) == msgspec.json.encode(fields)


def test_not_json_is_left_for_parse_to_refuse() -> None:
    assert with_default_model(b"{oops", "demo") == b"{oops"
    assert with_default_model(b"[1]", "demo") == b"[1]"
