"""OpenAI client → Anthropic backend (`proxy.translate.openai_anthropic`), and the round trip
back through `anthropic_openai`, which must keep messages, tools and parameters."""

import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.translate import TranslationError, anthropic_openai, openai_anthropic

# -- strategies --------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=20)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
call_ids = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=10).map(
    lambda s: f"call_{s}"
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
images = st.sampled_from(
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "data:image/jpeg;base64,/9j/4AAQ",
        "https://x.test/a.png",
    ]
)
parts = st.one_of(
    texts.map(lambda t: {"type": "text", "text": t}),
    images.map(lambda u: {"type": "image_url", "image_url": {"url": u}}),
)
tool_calls = st.builds(
    lambda i, n, a: {
        "id": i,
        "type": "function",
        "function": {"name": n, "arguments": json.dumps(a)},
    },
    call_ids,
    names,
    json_objects,
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    system_roles = st.sampled_from(["system", "developer"])
    msgs: list[dict[str, Any]] = [
        {"role": draw(system_roles), "content": draw(texts)} for _ in range(draw(st.integers(0, 2)))
    ]
    turns = draw(st.integers(1, 3))
    for turn in range(turns):
        msgs.append(
            {"role": "user", "content": draw(texts | st.lists(parts, min_size=1, max_size=3))}
        )
        if turn == turns - 1 and draw(st.booleans()):
            break  # user turns alternate with assistant turns; the last may be a user's
        calls = draw(st.lists(tool_calls, max_size=3, unique_by=lambda c: c["id"]))
        if calls:
            msgs.append(
                {
                    "role": "assistant",
                    "content": draw(st.none() | st.just("") | texts),
                    "tool_calls": calls,
                }
            )
        else:
            msgs.append({"role": "assistant", "content": draw(texts)})
        for call in calls:
            result = draw(
                texts
                | st.lists(texts.map(lambda t: {"type": "text", "text": t}), min_size=1, max_size=2)
            )
            msgs.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return msgs


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "alias", "messages": draw(conversations())}
    optional = {
        "max_tokens": st.integers(1, 100_000),
        "max_completion_tokens": st.integers(1, 100_000),
        "temperature": st.floats(0, 2, allow_nan=False),
        "top_p": st.floats(0, 1, allow_nan=False),
        "stop": texts | st.lists(texts, max_size=3),
        "user": st.text(string.ascii_letters + string.digits, min_size=1, max_size=10),
        "n": st.just(1),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    if draw(st.booleans()):
        functions = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": n,
                    "description": draw(st.none() | texts),
                    "parameters": draw(
                        st.none()
                        | st.just({"type": "object", "properties": {"x": {"type": "string"}}})
                    ),
                },
            }
            for n in functions
        ]
        choice = draw(st.sampled_from([None, "auto", "none", "required", functions[0]]))
        if choice in functions:
            choice = {"type": "function", "function": {"name": choice}}
        if choice is not None:
            body["tool_choice"] = choice
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    return body


def strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def expected_round_trip(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """What a request should look like after OpenAI → Anthropic → OpenAI: the same
    conversation, with the documented normalizations only."""
    msgs = body["messages"]
    system = [m["content"] for m in msgs if m["role"] in ("system", "developer")]
    out: list[dict[str, Any]] = (
        [{"role": "system", "content": "\n\n".join(system)}] if system else []
    )
    previous = None
    for m in msgs:
        if m["role"] == "user":
            content = m["content"]
            if previous == "tool" and isinstance(content, str):  # merged into the tool-result turn
                content = [{"type": "text", "text": content}]
            out.append({"role": "user", "content": content})
        elif m["role"] == "assistant":
            message: dict[str, Any] = {"role": "assistant"}
            if m.get("content"):
                message["content"] = m["content"]
            if m.get("tool_calls"):
                message["tool_calls"] = m["tool_calls"]
            out.append(message)
        elif m["role"] == "tool":
            content = m["content"]
            if isinstance(content, list):
                content = "\n".join(p["text"] for p in content)
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": content})
        previous = m["role"]
    want: dict[str, Any] = {
        "model": "backend-model",
        "messages": out,
        "stream": stream,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or 4096,
    }
    if stream:
        want["stream_options"] = {"include_usage": True}
    for key in ("temperature", "top_p", "user"):
        if key in body:
            want[key] = body[key]
    stop = body.get("stop")
    if stop:
        want["stop"] = [stop] if isinstance(stop, str) else stop
    if "tools" in body:
        default = {"type": "object", "properties": {}}
        want["tools"] = [
            strip_none(
                {
                    **t,
                    "function": {
                        **t["function"],
                        "parameters": t["function"]["parameters"] or default,
                    },
                }
            )
            for t in body["tools"]
        ]
        choice = body.get("tool_choice")
        single = body.get("parallel_tool_calls") is False
        if choice is None and single:
            choice = "auto"
        if choice is not None:
            want["tool_choice"] = choice
        if single and choice != "none":
            want["parallel_tool_calls"] = False
    return want


def parsed_arguments(request: dict[str, Any]) -> dict[str, Any]:
    for m in request["messages"]:
        for call in m.get("tool_calls", ()):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return request


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(chat_requests(), st.booleans())
def test_round_trip_keeps_messages_tools_and_params(body: dict[str, Any], stream: bool) -> None:
    forward = openai_anthropic.request(json.dumps(body).encode(), "claude-x", stream)
    back = json.loads(anthropic_openai.request(forward, "backend-model", stream))
    assert parsed_arguments(back) == parsed_arguments(expected_round_trip(body, stream))


# -- request mapping ---------------------------------------------------------------------------


def to_anthropic(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        openai_anthropic.request(json.dumps(body).encode(), "claude-x", stream)
    )
    return out


def test_request_defaults_and_pulls_out_system() -> None:
    out = to_anthropic(
        {
            "model": "a",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
        }
    )
    assert out == {
        "model": "claude-x",
        "max_tokens": 4096,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


def test_request_params() -> None:
    out = to_anthropic(
        {
            "model": "a",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "stop": "END",
            "user": "team-7",
            "temperature": 0.5,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    assert out["max_tokens"] == 20 and out["stop_sequences"] == ["END"] and out["stream"] is True
    assert out["metadata"] == {"user_id": "team-7"} and out["temperature"] == 0.5
    assert "stream_options" not in out


def test_request_drops_email_user_ids() -> None:
    out = to_anthropic(
        {"model": "a", "messages": [{"role": "user", "content": "hi"}], "user": "a@b.c"}
    )
    assert "metadata" not in out


@pytest.mark.parametrize(
    ("choice", "parallel", "want"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, None),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, want: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {
        "model": "a",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out = to_anthropic(body)
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert out.get("tool_choice") == want


def test_images_and_pdf() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/i.jpg", "detail": "high"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        },
    ]
    out = to_anthropic({"model": "a", "messages": [{"role": "user", "content": content}]})
    assert out["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/i.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
            "title": "a.pdf",
        },
    ]


def test_tool_history_becomes_tool_use_and_merged_tool_results() -> None:
    calls = [
        {"id": "call.1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1]}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    out = to_anthropic(
        {
            "model": "a",
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call.1", "content": "one"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "two"}],
                },
                {"role": "user", "content": "and?"},
            ],
        }
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1]}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "two"}],
                },
                {"type": "text", "text": "and?"},
            ],
        },
    ]


def test_reasoning_effort_becomes_thinking() -> None:
    out = to_anthropic(
        {
            "model": "a",
            "messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "low",
            "max_tokens": 500,
        }
    )
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert out["max_tokens"] > 1024  # Anthropic requires max_tokens > budget_tokens


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "s"}},
            },
            "response_format",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_untranslatable_input_is_a_translation_error(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as err:
        openai_anthropic.request(json.dumps({"model": "a", **body}).encode(), "m", False)
    assert err.value.param == param


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'{"model": 1}', b'{"model": "a", "messages": [{"role": "x"}]}']
)
def test_bad_body_is_a_translation_error(body: bytes) -> None:
    with pytest.raises(TranslationError):
        openai_anthropic.request(body, "m", False)


def test_bad_body_error_names_the_field() -> None:
    body = b'{"model": "a", "messages": [{"role": "user", "content": 5}]}'
    with pytest.raises(TranslationError) as err:
        openai_anthropic.request(body, "m", False)
    assert err.value.param == "messages[0].content"


def test_tool_choice_without_tools_is_dropped() -> None:
    out = to_anthropic(
        {"model": "a", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}
    )
    assert "tool_choice" not in out


# -- response and error ------------------------------------------------------------------------

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 20,
    },
}


def test_response_maps_blocks_finish_and_usage() -> None:
    from openai.types.chat import ChatCompletion

    raw = openai_anthropic.response(json.dumps(MESSAGE).encode(), "alias", id="x", created=123)
    out = ChatCompletion.model_validate_json(raw)
    assert (out.id, out.created, out.model, out.object) == (
        "msg_1",
        123,
        "alias",
        "chat.completion",
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"})
    ]
    assert json.loads(raw)["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (
        33,
        5,
        38,
    )
    assert out.usage.prompt_tokens_details and out.usage.prompt_tokens_details.cached_tokens == 20


def test_response_without_tools_has_text_content() -> None:
    message = {**MESSAGE, "content": [], "stop_reason": "max_tokens"}
    out = json.loads(openai_anthropic.response(json.dumps(message).encode(), "alias"))
    assert out["choices"][0]["message"]["content"] == ""
    assert out["choices"][0]["finish_reason"] == "length"
    assert "tool_calls" not in out["choices"][0]["message"]


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (
            529,
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            ("Overloaded", "overloaded_error"),
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"bad"},"request_id":"r"}',
            ("bad", "invalid_request_error"),
        ),
        (502, b"<html>Bad Gateway</html>", ("<html>Bad Gateway</html>", "api_error")),
        (503, b"", ("upstream returned HTTP 503", "overloaded_error")),
        (
            401,
            b'{"error": "key sk-ant-api03-abcdefghijklmnop revoked"}',
            ("key [SECRET] revoked", "authentication_error"),
        ),
    ],
)
def test_error_becomes_openai_envelope(status: int, body: bytes, want: tuple[str, str]) -> None:
    out = json.loads(openai_anthropic.error(status, body))
    assert out == {"error": {"message": want[0], "type": want[1], "param": None, "code": None}}


@given(st.integers(400, 599), st.binary(max_size=200))
def test_error_never_fails_on_any_body(status: int, body: bytes) -> None:
    out = json.loads(openai_anthropic.error(status, body))
    assert set(out["error"]) == {"message", "type", "param", "code"} and out["error"]["message"]
