"""Anthropic client → OpenAI-compatible backend (`proxy.translate.anthropic_openai`), and the
round trip back through `openai_anthropic`."""

import json
import string
from typing import Any

import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.translate import TranslationError, anthropic_openai, openai_anthropic

texts = st.text(min_size=1, max_size=20)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
tool_ids = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=10).map(
    lambda s: f"toolu_{s}"
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
text_blocks = texts.map(lambda t: {"type": "text", "text": t})
image_blocks = st.sampled_from(
    [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]
)


# -- round trip --------------------------------------------------------------------------------


@st.composite
def messages_requests(draw: st.DrawFn) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids the next user turn must answer
    for turn in range(draw(st.integers(1, 3)) * 2 - 1):
        if turn % 2 == 0:
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": i,
                    "content": draw(texts | st.lists(text_blocks, min_size=1, max_size=2)),
                }
                for i in pending
            ]
            rest = draw(st.lists(text_blocks | image_blocks, max_size=2))
            content: Any = results + rest
            if not results and not rest:
                content = draw(texts)
            msgs.append({"role": "user", "content": content or draw(texts)})
            pending = []
        else:
            uses = [
                {"type": "tool_use", "id": i, "name": draw(names), "input": draw(json_objects)}
                for i in draw(st.lists(tool_ids, max_size=3, unique=True))
            ]
            lead = draw(st.lists(text_blocks, max_size=2 if uses else 1, min_size=0 if uses else 1))
            msgs.append({"role": "assistant", "content": lead + uses})
            pending = [u["id"] for u in uses]
    body: dict[str, Any] = {
        "model": "alias",
        "max_tokens": draw(st.integers(1, 100_000)),
        "messages": msgs,
    }
    if draw(st.booleans()):
        body["system"] = draw(texts | st.lists(text_blocks, min_size=1, max_size=3))
    for key, strategy in {
        "temperature": st.floats(0, 1, allow_nan=False),
        "top_p": st.floats(0, 1, allow_nan=False),
        "stop_sequences": st.lists(texts, min_size=1, max_size=3),
        "metadata": st.builds(
            lambda u: {"user_id": u}, st.text(string.ascii_letters, min_size=1, max_size=8)
        ),
    }.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    if draw(st.booleans()):
        functions = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        body["tools"] = [
            {
                "name": n,
                "description": draw(texts),
                "input_schema": {"type": "object", "properties": {}},
            }
            for n in functions
        ]
        choice = draw(
            st.sampled_from(
                [
                    None,
                    {"type": "auto"},
                    {"type": "any"},
                    {"type": "none"},
                    {"type": "tool", "name": functions[0]},
                ]
            )
        )
        if choice is not None and choice["type"] != "none" and draw(st.booleans()):
            choice["disable_parallel_tool_use"] = True
        if choice is not None:
            body["tool_choice"] = choice
    return body


def expected_round_trip(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    want = {**body, "model": "claude-x", "stream": stream}
    system = body.get("system")
    if isinstance(system, list):  # one system message on the OpenAI side
        want["system"] = "\n\n".join(b["text"] for b in system)
    msgs = []
    for m in body["messages"]:
        content = m["content"]
        if m["role"] == "assistant":  # text blocks are joined; tool_use blocks follow
            text = "".join(b["text"] for b in content if b["type"] == "text")
            uses = [b for b in content if b["type"] == "tool_use"]
            content = [{"type": "text", "text": text}, *uses] if text else uses
            if not uses:
                content = text
        elif isinstance(content, list):
            content = [
                {**b, "content": "\n".join(x["text"] for x in b["content"])}
                if b["type"] == "tool_result" and isinstance(b["content"], list)
                else b
                for b in content
            ]
        msgs.append({"role": m["role"], "content": content})
    want["messages"] = msgs
    return want


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(messages_requests(), st.booleans())
def test_round_trip_keeps_messages_tools_and_params(body: dict[str, Any], stream: bool) -> None:
    pivot = anthropic_openai.request(json.dumps(body).encode(), "gpt-x", stream)
    assert ("stream_options" in json.loads(pivot)) is stream
    back = json.loads(openai_anthropic.request(pivot, "claude-x", stream))
    assert back == expected_round_trip(body, stream)


# -- request mapping ---------------------------------------------------------------------------


def to_openai(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    full = {"model": "a", "max_tokens": 100, **body}
    out: dict[str, Any] = json.loads(
        anthropic_openai.request(json.dumps(full).encode(), "gpt-x", stream)
    )
    return out


def test_request_basics() -> None:
    out = to_openai(
        {
            "system": [
                {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "two"},
            ],
            "messages": [{"role": "user", "content": "hi"}],
            "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "metadata": {"user_id": "u-1"},
        },
        stream=True,
    )
    assert out == {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "one\n\ntwo"},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 100,
        "user": "u-1",
    }


def test_tool_results_come_first_and_tool_images_follow_in_a_user_message() -> None:
    out = to_openai(
        {
            "messages": [
                {"role": "user", "content": "look"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "s"},
                        {"type": "text", "text": "Reading."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "read",
                            "input": {"path": "a.png"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "is_error": False,
                            "content": [
                                {"type": "text", "text": "an image"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": "AAAA",
                                    },
                                },
                            ],
                        },
                    ],
                },
            ]
        }
    )
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "function": {"name": "read", "arguments": '{"path":"a.png"}'},
                    "type": "function",
                }
            ],
        },
        {"role": "tool", "content": "an image", "tool_call_id": "toolu_1"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "here"},
            ],
        },
    ]


def test_documents() -> None:
    out = to_openai(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBE",
                            },
                            "title": "spec",
                        },
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "plain"},
                        },
                    ],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "spec.pdf"},
        },
        {"type": "text", "text": "plain"},
    ]


@pytest.mark.parametrize(
    ("choice", "want_choice", "want_parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
)
def test_tool_choice(choice: dict[str, Any], want_choice: Any, want_parallel: bool | None) -> None:
    tools = [
        {"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
    ]
    out = to_openai(
        {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}
    )
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": tools[0]["input_schema"]}}
    ]
    assert out["tool_choice"] == want_choice
    assert out.get("parallel_tool_calls") == want_parallel


def test_tool_choice_without_tools_is_dropped() -> None:
    out = to_openai(
        {"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "any"}}
    )
    assert "tool_choice" not in out and "tools" not in out


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
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
                        "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}],
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
                        "content": [
                            {"type": "document", "source": {"type": "url", "url": "https://x"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].source",
        ),
    ],
)
def test_untranslatable_input_is_a_translation_error(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as err:
        to_openai(body)
    assert err.value.param == param


def test_unknown_block_type_is_a_translation_error_naming_the_path() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "x"}]}]}
    with pytest.raises(TranslationError, match=r"messages\[0\]\.content\[0\]"):
        to_openai(body)


# -- response and error ------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Sure.",
                "reasoning_content": "think",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x": 1}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "g", "arguments": "{broken"},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 60},
    },
}


def test_response_maps_content_stop_and_usage() -> None:
    out = Message.model_validate_json(
        anthropic_openai.response(json.dumps(COMPLETION).encode(), "alias")
    )
    assert (out.id, out.model, out.stop_reason) == ("chatcmpl-9", "alias", "tool_use")
    assert [b.model_dump(exclude_none=True) for b in out.content] == [
        {"type": "thinking", "thinking": "think", "signature": ""},
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_b", "name": "g", "input": {}},  # model wrote bad JSON
    ]
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.cache_read_input_tokens) == (
        40,
        7,
        60,
    )


def test_response_from_a_minimal_compatible_server() -> None:
    body = {"choices": [{"message": {"content": "ok"}, "finish_reason": "weird_reason"}]}
    out = json.loads(
        anthropic_openai.response(json.dumps(body).encode(), "alias", id="msg_fallback")
    )
    assert out["id"] == "msg_fallback" and out["stop_reason"] == "end_turn"
    assert out["content"] == [{"type": "text", "text": "ok"}]
    assert out["usage"]["input_tokens"] == 0


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (
            400,
            b'{"error":{"message":"bad param","type":"invalid_request_error","param":"x"}}',
            ("invalid_request_error", "bad param"),
        ),
        (
            429,
            b'{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}',
            ("rate_limit_error", "slow down"),
        ),
        (500, b"Internal Server Error", ("api_error", "Internal Server Error")),
        (404, b'{"detail":"Not Found"}', ("not_found_error", "Not Found")),
        (413, b"", ("request_too_large", "upstream returned HTTP 413")),
    ],
)
def test_error_becomes_anthropic_envelope(status: int, body: bytes, want: tuple[str, str]) -> None:
    out = json.loads(anthropic_openai.error(status, body))
    assert out == {"type": "error", "error": {"type": want[0], "message": want[1]}}


@given(st.integers(400, 599), st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_error_never_fails_on_any_body(status: int, body: bytes) -> None:
    out = json.loads(anthropic_openai.error(status, body))
    assert out["type"] == "error" and out["error"]["message"]
