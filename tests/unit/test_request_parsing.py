"""proxy.front.request.parse: reads model and stream only; other fields keep their bytes."""

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import errors
from proxy.front.request import forwardable
from proxy.front.request import parse as _parse
from proxy.providers.base import Endpoint


def bad(body: bytes, endpoint: Endpoint = "chat") -> errors.BadRequest:
    with pytest.raises(errors.BadRequest) as caught:
        _parse(body, endpoint)
    assert caught.value.status == 400
    return caught.value


def chat(**fields: object) -> bytes:
    return json.dumps({"model": "demo", "messages": [], **fields}).encode()


# --- the body -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t "])
def test_empty_body(body: bytes) -> None:
    err = bad(body)
    assert "empty" in err.message
    assert err.param is None


@pytest.mark.parametrize(
    ("body", "position"),
    [
        (b'{"model": x}', 10),
        (b'{"model": "demo",}', 17),
        (b'{"model": "demo"} trailing', 18),
        (b"\xff", 0),
    ],
)
def test_malformed_json_names_the_byte_position(body: bytes, position: int) -> None:
    err = bad(body)
    assert "not valid JSON" in err.message
    found = re.search(r"\(byte (\d+)\)", err.message)
    assert found is not None, err.message
    # msgspec names the offending byte or the one after it (trailing characters).
    assert position <= int(found.group(1)) <= position + 1


def test_truncated_json_says_so() -> None:
    err = bad(b'{"model": "demo", "messages": [')
    assert "not valid JSON" in err.message
    assert "truncated" in err.message


@pytest.mark.parametrize("body", [b"[]", b'"demo"', b"42", b"null", b"true", b'[{"model":"x"}]'])
def test_body_must_be_an_object(body: bytes) -> None:
    err = bad(body)
    assert "must be a JSON object" in err.message
    assert err.param is None


# --- model ----------------------------------------------------------------------------------


def test_missing_model() -> None:
    err = bad(b'{"messages": []}')
    assert err.param == "model"
    assert "'model'" in err.message


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], {}, ["demo"]])
def test_model_must_be_a_string(value: object) -> None:
    err = bad(json.dumps({"model": value, "messages": []}).encode())
    assert err.param == "model"
    assert "must be a string" in err.message


def test_model_is_decoded() -> None:
    fields, model, stream, include_usage = _parse(chat(model="gpt-\u00e9\\n"), "chat")
    assert model == "gpt-\u00e9\\n"
    assert (stream, include_usage) == (False, False)
    assert set(fields) == {"model", "messages"}


# --- required fields per endpoint -----------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"model": "m"}', b'{"model": "m", "messages": null}'])
def test_chat_needs_messages(body: bytes) -> None:
    err = bad(body)
    assert err.param == "messages"
    assert "missing required field 'messages'" in err.message


@pytest.mark.parametrize("value", ['"hi"', "{}", "1", "true", '{"role": "user"}'])
def test_chat_messages_must_be_an_array(value: str) -> None:
    err = bad(b'{"model": "m", "messages": ' + value.encode() + b"}")
    assert err.param == "messages"
    assert "must be an array" in err.message


def test_messages_array_may_follow_whitespace() -> None:
    assert _parse(b'{"model":"m","messages":  \n [ ]}', "chat")[1] == "m"


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("completions", b'{"model": "m"}', "prompt"),
        ("embeddings", b'{"model": "m"}', "input"),
        ("messages", b'{"model": "m", "max_tokens": 5}', "messages"),
        ("messages", b'{"model": "m", "messages": []}', "max_tokens"),
        ("count_tokens", b'{"model": "m"}', "messages"),
    ],
)
def test_each_endpoint_names_its_missing_field(endpoint: Endpoint, body: bytes, param: str) -> None:
    assert bad(body, endpoint).param == param


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("completions", b'{"model": "m", "prompt": "hi"}'),
        ("completions", b'{"model": "m", "prompt": ["a", "b"]}'),
        ("embeddings", b'{"model": "m", "input": [1, 2, 3]}'),
        ("messages", b'{"model": "m", "messages": [], "max_tokens": 5}'),
        ("count_tokens", b'{"model": "m", "messages": []}'),
    ],
)
def test_each_endpoint_accepts_its_minimal_body(endpoint: Endpoint, body: bytes) -> None:
    assert _parse(body, endpoint)[1] == "m"


# --- stream and stream_options --------------------------------------------------------------


@pytest.mark.parametrize("value", ['"true"', "1", "0", '"yes"', "[]", "{}"])
def test_stream_must_be_a_boolean(value: str) -> None:
    err = bad(b'{"model": "m", "messages": [], "stream": ' + value.encode() + b"}")
    assert err.param == "stream"
    assert "true or false" in err.message


@pytest.mark.parametrize("stream", [True, False])
def test_stream_flag_is_read(stream: bool) -> None:
    assert _parse(chat(stream=stream), "chat")[2] is stream


@pytest.mark.parametrize(
    ("stream_options", "expected"),
    [
        ({"include_usage": True}, True),
        ({"include_usage": False}, False),
        ({"include_usage": "true"}, False),
        ({"include_usage": 1}, False),
        ({}, False),
        ({"other": True}, False),
    ],
)
def test_include_usage_only_when_exactly_true(stream_options: object, expected: bool) -> None:
    assert _parse(chat(stream=True, stream_options=stream_options), "chat")[3] is expected


def test_include_usage_ignored_without_stream() -> None:
    assert _parse(chat(stream_options={"include_usage": True}), "chat")[2:] == (False, False)
    body = chat(stream=False, stream_options={"include_usage": True})
    assert _parse(body, "chat")[2:] == (False, False)


def test_stream_options_not_read_without_stream() -> None:
    # Not read at all: even a wrong type passes through to the upstream untouched.
    fields = _parse(chat(stream_options="nonsense"), "chat")[0]
    assert bytes(fields["stream_options"]) == b'"nonsense"'


@pytest.mark.parametrize("value", ['"x"', "[]", "1", "true"])
def test_stream_options_must_be_an_object_when_streaming(value: str) -> None:
    body = b'{"model": "m", "messages": [], "stream": true, "stream_options": ' + value.encode()
    err = bad(body + b"}")
    assert err.param == "stream_options"


def test_embeddings_cannot_stream() -> None:
    err = bad(b'{"model": "m", "input": "hi", "stream": true}', "embeddings")
    assert err.param == "stream"
    assert "embeddings" in err.message
    assert _parse(b'{"model": "m", "input": "hi", "stream": false}', "embeddings")[2] is False


def test_stream_null_means_not_streaming() -> None:
    assert _parse(chat(stream=None), "chat")[2] is False


def test_stream_options_null_means_none() -> None:
    assert _parse(chat(stream=True, stream_options=None), "chat")[2:] == (True, False)


# --- never anything but BadRequest ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "a\xffb", "messages": []}',
        b'{"model": "m", "messages": [], "\xff": 1}',
        b'{"model": "m", "messages": [], "stream": true, "stream_options": {"a": "\xff"}}',
    ],
)
def test_invalid_utf8_is_a_bad_request(body: bytes) -> None:
    bad(body)


@pytest.mark.parametrize("where", ["extra", "stream_options"])
def test_deep_nesting_is_a_bad_request(where: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    if where == "extra":
        body = b'{"model": "m", "messages": [], "x": ' + deep + b"}"
    else:
        body = b'{"model": "m", "messages": [], "stream": true, "stream_options": {"a": '
        body += deep + b"}}"
    bad(body)


JSON_ISH = st.text(alphabet='{}[]":,.-+eE0123456789 \\/truefalsnmodelsagstrip\n\t', max_size=12)


@st.composite
def near_json(draw: st.DrawFn) -> bytes:
    """Valid request bodies with text-level damage: cut, spliced, inserted (valid UTF-8)."""
    fields: dict[str, Any] = {"model": draw(st.text(max_size=8)), "messages": []}
    if draw(st.booleans()):
        fields["stream"] = draw(st.booleans() | st.integers(0, 1) | st.none())
    if draw(st.booleans()):
        fields["stream_options"] = draw(
            st.dictionaries(st.text(max_size=14), st.booleans() | st.none(), max_size=2)
        )
    text = json.dumps(fields, ensure_ascii=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 6)))
        text = text[:i] + draw(JSON_ISH) + text[j:]
    return text.encode()


ENDPOINTS: tuple[Endpoint, ...] = ("chat", "completions", "embeddings", "messages", "count_tokens")


# Damage stays valid UTF-8: invalid UTF-8 inside strings is checked on its own above.
@given(st.binary(max_size=200) | near_json(), st.sampled_from(ENDPOINTS))
@settings(max_examples=200)
def test_any_bytes_give_a_result_or_a_bad_request(body: bytes, endpoint: Endpoint) -> None:
    try:
        fields, model, stream, include_usage = _parse(body, endpoint)
    except errors.BadRequest as err:
        assert err.status == 400
        assert err.message
        return
    assert isinstance(model, str)
    assert msgspec.json.decode(bytes(fields["model"])) == model
    assert stream in (True, False) and include_usage in (True, False)
    assert not include_usage or stream


# --- pass-through: every field's bytes as sent ----------------------------------------------

RESERVED = {"model", "messages", "stream", "stream_options"}
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


# Model names never hold control characters (they travel in headers): see the next tests;
# nor lone surrogates, which no UTF-8 JSON body can carry.
MODEL_NAMES = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), max_size=20
)  # JSON is UTF-8


@given(
    model=MODEL_NAMES,
    messages=st.lists(JSON, max_size=3),
    extra=st.dictionaries(st.text(max_size=10).filter(lambda k: k not in RESERVED), JSON),
    stream=st.none() | st.booleans(),
    pretty=st.booleans(),
)
@settings(max_examples=60)
def test_fields_pass_through_unchanged(
    model: str,
    messages: list[Any],
    extra: dict[str, Any],
    stream: bool | None,
    pretty: bool,
) -> None:
    obj: dict[str, Any] = {**extra, "model": model, "messages": messages}
    if stream is not None:
        obj["stream"] = stream
    if pretty:  # whitespace between tokens is not part of any value
        body = json.dumps(obj, indent=2, ensure_ascii=False).encode()
    else:
        body = msgspec.json.encode(obj)

    fields, got_model, got_stream, include_usage = _parse(body, "chat")

    assert got_model == model
    assert got_stream is bool(stream)
    assert include_usage is False
    assert set(fields) == set(obj)
    for key, value in obj.items():
        raw = bytes(fields[key])
        assert msgspec.json.decode(raw) == value
        if not pretty:  # compact: the raw bytes are exactly what the client sent
            assert raw == msgspec.json.encode(value)
        else:
            assert raw in body
            assert not re.match(rb"\s", raw) and not re.search(rb"\s\Z", raw)


@pytest.mark.parametrize("model", ["up/a\r\nx-evil: 1", "gpt\x00", "tab\there", "del\x7f"])
def test_model_with_control_characters_is_a_bad_request(model: str) -> None:
    err = bad(chat(model=model))
    assert err.param == "model"
    assert "control characters" in err.message


def test_overlong_model_name_is_a_bad_request() -> None:
    err = bad(chat(model="m" * 257))
    assert err.param == "model"
    assert "at most 256" in err.message


@given(st.text(max_size=40))
def test_any_model_name_is_routable_text_or_a_bad_request(model: str) -> None:
    try:
        got = _parse(chat(model=model), "chat")[1]
    except errors.BadRequest as err:
        assert err.param == "model"
        assert any(ord(c) < 32 or ord(c) == 127 for c in model)
    else:
        assert got == model


# --- duplicate keys the gateway decides on ----------------------------------------------


def test_duplicate_model_is_forwarded_as_the_authorised_value_only() -> None:
    body = b'{"model": "expensive", "messages": [], "model": "ok"}'
    fields, model, _, _ = _parse(body, "chat")
    assert model == "ok"
    sent = forwardable(body, fields)
    assert json.loads(sent) == {"model": "ok", "messages": []}
    assert sent.count(b'"model"') == 1


def test_escaped_duplicate_key_is_re_encoded_too() -> None:
    body = b'{"mod\\u0065l": "expensive", "messages": [], "model": "ok"}'
    fields, model, _, _ = _parse(body, "chat")
    assert model == "ok"
    assert json.loads(forwardable(body, fields)) == {"model": "ok", "messages": []}


def test_duplicate_stream_is_forwarded_as_read() -> None:
    body = b'{"model": "m", "stream": false, "messages": [], "stream": true}'
    fields, _, stream, _ = _parse(body, "chat")
    assert stream is True
    assert json.loads(forwardable(body, fields))["stream"] is True


def test_ordinary_body_is_forwarded_as_sent() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
    fields, *_ = _parse(body, "chat")
    assert forwardable(body, fields) is body
