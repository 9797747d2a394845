"""proxy.core.rewrite: the body each backend gets. Fields it does not touch come out
byte-identical; an unchanged request is the client's very bytes."""

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.rewrite import ClientRequest, body_for, endpoint_on
from proxy.front.request import parse

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
RESERVED = {"model", "messages", "stream", "stream_options"}
EXTRA = st.dictionaries(st.text(max_size=8).filter(lambda k: k not in RESERVED), JSON, max_size=4)


def request(doc: dict[str, Any], pretty: bool = False) -> ClientRequest:
    body = json.dumps(doc, indent=2 if pretty else None).encode()
    fields, model, stream, include_usage = parse(body, "chat")
    return ClientRequest("chat", "openai", body, fields, model, stream, include_usage, "r", [])


def raw_fields(body: bytes) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in _top.decode(body).items()}


@given(extra=EXTRA, pretty=st.booleans(), stream=st.booleans())
@settings(max_examples=80)
def test_unchanged_request_is_the_clients_bytes(
    extra: dict[str, Any], pretty: bool, stream: bool
) -> None:
    req = request({"model": "m", "messages": [], "stream": stream, **extra}, pretty)
    # Same model, streaming backend; the client asked for usage itself, so nothing changes.
    if stream:
        req = req._replace(include_usage=True)
    assert body_for(req, "openai", True, "m") is req.body


@given(extra=EXTRA, pretty=st.booleans(), model=st.text(min_size=1, max_size=10))
@settings(max_examples=80)
def test_model_rewrite_changes_only_model(extra: dict[str, Any], pretty: bool, model: str) -> None:
    req = request(
        {"model": "alias", "messages": [{"role": "user", "content": "x"}], **extra}, pretty
    )
    out = body_for(req, "openai", True, model)
    before, after = raw_fields(req.body), raw_fields(out)
    assert json.loads(after.pop("model")) == model
    before.pop("model")
    assert after == before, "every other field keeps its bytes"


@given(extra=EXTRA, options=st.none() | st.just({}) | st.just({"other": 1}))
@settings(max_examples=60)
def test_stream_gets_include_usage_and_keeps_the_rest(
    extra: dict[str, Any], options: dict[str, Any] | None
) -> None:
    doc: dict[str, Any] = {"model": "m", "messages": [], "stream": True, **extra}
    if options is not None or extra.get("x") is None:
        doc["stream_options"] = options
    req = request(doc)
    out = body_for(req, "openai", True, "m")
    before, after = raw_fields(req.body), raw_fields(out)
    sent_options = json.loads(after.pop("stream_options"))
    assert sent_options["include_usage"] is True
    if isinstance(options, dict):
        assert {k: v for k, v in sent_options.items() if k != "include_usage"} == options
    before.pop("stream_options", None)
    assert after == before


def test_null_stream_options_with_stream_is_not_an_error() -> None:
    req = request({"model": "m", "messages": [], "stream": True, "stream_options": None})
    out = json.loads(body_for(req, "openai", True, "m"))
    assert out["stream_options"] == {"include_usage": True}


def test_non_streaming_backend_is_asked_not_to_stream() -> None:
    req = request(
        {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    )
    out = json.loads(body_for(req, "openai", False, "m"))
    assert out["stream"] is False
    assert "stream_options" not in out


def test_embeddings_never_get_stream_options() -> None:
    body = b'{"model": "m", "input": "hi"}'
    fields, model, stream, usage = parse(body, "embeddings")
    req = ClientRequest("embeddings", "openai", body, fields, model, stream, usage, "r", [])
    assert body_for(req, "openai", True, "m") is body


def test_translated_request_goes_to_the_equivalent_endpoint() -> None:
    req = request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    out = json.loads(body_for(req, "anthropic", True, "claude"))
    assert out["model"] == "claude"
    assert out["messages"][0]["role"] == "user"
    assert endpoint_on("chat", "anthropic") == "messages"
    assert endpoint_on("messages", "openai") == "chat"
    assert endpoint_on("embeddings", "openai") == "embeddings"
