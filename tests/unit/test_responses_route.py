"""Which upstream request a Responses request becomes on each kind of backend."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import Backend
from proxy.responses_route import route
from proxy.translate import TranslationError, responses_anthropic, responses_chat, responses_gemini
from schemas import responses as rs

OPENAI = Backend(name="o", type="openai", base_url="https://api.openai.com/v1", responses=True)
COMPATIBLE = Backend(name="c", type="openai", base_url="http://127.0.0.1:9/v1")
ANTHROPIC = Backend(name="a", type="anthropic", base_url="https://api.anthropic.com")
GEMINI = Backend(name="g", type="gemini", base_url="https://generativelanguage.googleapis.com")
HISTORY = [
    rs.InputItem(role="user", content="6*7?"),
    rs.InputItem(type="reasoning", id="rs_1_0", content=[rs.ReasoningText("think")]),
    rs.InputItem(
        type="message",
        role="assistant",
        id="msg_1_1",
        status="completed",
        content=[rs.OutputText("42")],
    ),
]


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "alias", "input": "hi", **fields}).encode()


def go(raw: bytes, backend: Backend, history: Any = None, wire: Any = "openai") -> Any:
    return route(raw, responses_chat.decode(raw), backend, wire, "up-model", False, history)


def test_a_responses_backend_gets_the_body_with_only_model_changed() -> None:
    raw = b'{"model":"alias","input":"hi","include":["x"],"future_field":{"a":[1,2]}}'
    r = go(raw, OPENAI)
    assert r.endpoint == "responses" and r.translator is None
    assert json.loads(r.body) == {**json.loads(raw), "model": "up-model"}


OTHER_KEYS = st.text(max_size=8).filter(lambda k: k not in ("model", "previous_response_id"))


@given(st.dictionaries(OTHER_KEYS, st.integers() | st.text(max_size=5) | st.none()))
def test_pass_through_keeps_every_other_field(extra: dict[str, Any]) -> None:
    fields = {"model": "alias", "input": "hi", **extra}
    raw = json.dumps(fields).encode()
    try:
        responses_chat.decode(raw)
    except TranslationError:
        return  # not a request the gateway would route (a known field of the wrong type)
    assert json.loads(go(raw, OPENAI).body) == {**fields, "model": "up-model"}


def test_an_unknown_previous_id_passes_through_to_a_responses_backend() -> None:
    raw = body(previous_response_id="resp_openai_own")
    assert json.loads(go(raw, OPENAI).body)["previous_response_id"] == "resp_openai_own"


def test_a_stored_previous_id_is_replaced_by_its_turns_on_a_responses_backend() -> None:
    raw = body(previous_response_id="resp_1", input=[{"role": "user", "content": "6*8?"}])
    out = json.loads(go(raw, OPENAI, HISTORY).body)
    assert "previous_response_id" not in out
    assert out["input"] == [
        {"role": "user", "content": "6*7?"},
        {
            "role": "assistant",
            "content": [{"type": "output_text", "text": "42", "annotations": [], "logprobs": []}],
        },
        {"role": "user", "content": "6*8?"},
    ]
    string_input = json.loads(go(body(previous_response_id="resp_1"), OPENAI, HISTORY).body)
    assert string_input["input"][-1] == {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("backend", "wire", "module"),
    [
        (COMPATIBLE, "openai", responses_chat),
        (ANTHROPIC, "anthropic", responses_anthropic),
        (GEMINI, "gemini", responses_gemini),
    ],
)
def test_other_backends_are_translated_with_history(backend: Any, wire: Any, module: Any) -> None:
    r = go(body(previous_response_id="resp_1"), backend, HISTORY, wire)
    assert r.endpoint == "chat" and r.translator is module
    assert r.body == module.request(body(), "up-model", False, HISTORY)


@pytest.mark.parametrize("backend", [COMPATIBLE, ANTHROPIC, GEMINI])
def test_an_unknown_previous_id_is_a_400_on_translated_backends(backend: Any) -> None:
    wire = {"c": "openai", "a": "anthropic", "g": "gemini"}[backend.name]
    with pytest.raises(TranslationError) as err:
        go(body(previous_response_id="resp_gone"), backend, None, wire)
    assert err.value.param == "previous_response_id" and "resp_gone" in str(err.value)


def test_a_stream_false_backend_is_asked_not_to_stream() -> None:
    raw = body(stream=True, stream_options={"include_obfuscation": False})
    request = responses_chat.decode(raw)
    out = json.loads(route(raw, request, OPENAI, "openai", "up-model", False, None).body)
    assert out["stream"] is False and "stream_options" not in out
    same = json.loads(route(raw, request, OPENAI, "openai", "up-model", True, None).body)
    assert same == {**json.loads(raw), "model": "up-model"}
