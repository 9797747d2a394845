"""Responses request → chat request, chat completion → response object, errors, and the
stored conversation a `previous_response_id` continuation is rebuilt from; and the same
through the Anthropic and Gemini compositions."""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response

from proxy.translate import TranslationError, pick, responses_anthropic, responses_chat
from proxy.translate import responses_gemini as rg
from schemas import responses as rs


def chat(body: dict[str, Any], stream: bool = False, history: Any = ()) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        responses_chat.request(json.dumps(body).encode(), "up-model", stream, history)
    )
    return out


def test_string_input_and_instructions() -> None:
    out = chat({"model": "alias", "input": "hello", "instructions": "be brief"})
    assert out == {
        "model": "up-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
    }


def test_stream_asks_for_usage() -> None:
    out = chat({"model": "a", "input": "hi", "stream": True}, stream=True)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_items_become_messages() -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                {
                    "type": "input_file",
                    "file_data": "data:application/pdf;base64,AAAA",
                    "filename": "a.pdf",
                },
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "id": "msg_1",
            "content": [{"type": "output_text", "text": "calling", "annotations": []}],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": ""},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "two"}],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    out = chat({"model": "a", "input": items})
    assert out["messages"] == [
        {"role": "system", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}, "type": "function"},
                {"id": "c2", "function": {"name": "g", "arguments": "{}"}, "type": "function"},
            ],
        },
        {"role": "tool", "content": "one", "tool_call_id": "c1"},
        {"role": "tool", "content": "two", "tool_call_id": "c2"},
    ]


def test_function_call_without_a_preceding_assistant_message() -> None:
    items = [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]
    out = chat({"model": "a", "input": items})
    assert out["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "function": {"name": "f", "arguments": "{}"}, "type": "function"}
        ],
    }


def test_options_map_to_chat_fields() -> None:
    out = chat(
        {
            "model": "a",
            "input": "hi",
            "temperature": 0.2,
            "top_p": 0.9,
            "max_output_tokens": 50,
            "reasoning": {"effort": "low", "summary": "auto"},
            "metadata": {"k": "v"},
            "store": False,
            "previous_response_id": None,
            "user": "u1",
            "parallel_tool_calls": False,
            "tools": [
                {
                    "type": "function",
                    "name": "f",
                    "description": "d",
                    "parameters": {"type": "object"},
                    "strict": True,
                }
            ],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "out",
                    "strict": True,
                    "schema": {"type": "object"},
                }
            },
        }
    )
    assert out == {
        "model": "up-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "d",
                    "parameters": {"type": "object"},
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
        },
        "reasoning_effort": "low",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "tools": [{"type": "shell_of_the_future"}]}, "tools[0].type"),
        (
            {
                "input": "hi",
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "file_search"},
            },
            "tool_choice",
        ),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0]"),
        (
            {
                "input": [
                    {
                        "role": "assistant",
                        "content": [{"type": "input_image", "image_url": "https://x"}],
                    }
                ]
            },
            "input[0].content[0]",
        ),
        ({"input": [{"role": "moderator", "content": "x"}]}, "input[0]"),
        ({"input": "hi", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"input": ""}, "input"),
        ({"input": 5}, "input"),
    ],
)
def test_what_a_chat_backend_cannot_take_is_a_400_naming_the_field(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(TranslationError) as err:
        chat({"model": "a", **body})
    assert err.value.param == param


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["model", "input", "tools", "instructions", "text", "tool_choice", "reasoning", "x"]
        ),
        json_values,
    )
)
def test_any_json_body_translates_or_is_a_400(body: dict[str, Any]) -> None:
    try:
        out = json.loads(responses_chat.request(json.dumps(body).encode(), "m", False))
    except TranslationError:
        return
    assert out["model"] == "m" and out["messages"]


# -- non-streaming answers ----------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "up",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        }
    ).encode()


def answer(body: bytes, request: rs.Request | None = None) -> Response:
    out = responses_chat.response(body, "alias", id="resp_a", created=9, request=request)
    return Response.model_validate_json(out)


def test_text_answer() -> None:
    r = answer(completion({"content": "Hi!"}))
    assert r.id == "resp_a" and r.status == "completed" and r.output_text == "Hi!"
    assert r.model == "alias" and r.created_at == 9 and r.object == "response"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 7, 18)
    assert r.usage.input_tokens_details.cached_tokens == 3
    assert r.usage.output_tokens_details.reasoning_tokens == 2


def test_tool_call_answer() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    r = answer(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    got = [(o.type, o.call_id, o.name, o.arguments) for o in r.output]  # type: ignore[union-attr]
    assert got == [
        ("function_call", "call_1", "f", '{"x": 1}'),
        ("function_call", "call_2", "g", "{}"),
    ]
    assert len({o.id for o in r.output}) == 2


def test_reasoning_content_is_a_reasoning_item() -> None:
    r = answer(completion({"content": "42", "reasoning_content": "think"}))
    assert [o.type for o in r.output] == ["reasoning", "message"]
    reasoning = r.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "think" and r.output_text == "42"
    assert len({o.id for o in r.output}) == 2


def test_length_finish_is_incomplete() -> None:
    r = answer(completion({"content": "Hi"}, "length"))
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"


def test_refusal_answer() -> None:
    r = answer(completion({"content": None, "refusal": "no"}))
    assert r.output[0].type == "message"
    assert [c.type for c in r.output[0].content] == ["refusal"]


def test_answer_that_is_not_a_completion_raises() -> None:
    with pytest.raises(msgspec.DecodeError):
        responses_chat.response(b"[1]", "m", id="resp_x", created=0)


def test_error_keeps_the_openai_shape() -> None:
    body = (
        b'{"error": {"message": "bad key sk-abcdefghijkl", "type": "invalid_request_error",'
        b' "code": "invalid_api_key", "param": null}}'
    )
    out = json.loads(responses_chat.error(401, body))
    message = out["error"].pop("message")
    assert message.startswith("bad key ") and "abcdefghijkl" not in message  # key masked
    assert out == {
        "error": {"type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
    }
    assert json.loads(responses_chat.error(502, b"<html>"))["error"]["type"] == "api_error"


# -- conversations for previous_response_id -------------------------------------------------------


def test_a_stored_conversation_continues_as_chat_messages() -> None:
    first = responses_chat.decode(
        b'{"model": "a", "input": "weather?", "instructions": "x",'
        b' "tools": [{"type": "function", "name": "w"}]}'
    )
    calls = [{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]
    done = responses_chat.answer(
        completion({"content": "let me check", "tool_calls": calls}, "tool_calls"),
        "a",
        id="resp_1",
        created=1,
        request=first,
    )
    stored = responses_chat.conversation(first, [], done)
    history = responses_chat.stored_items(stored)
    second = {
        "model": "a",
        "previous_response_id": "resp_1",
        "instructions": "y",
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
    }
    out = chat(second, history=history)
    assert out["messages"] == [
        {"role": "system", "content": "y"},  # instructions are not carried over
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "let me check",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "w", "arguments": "{}"}, "type": "function"}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]
    # and the chain goes on: the next record holds all of it
    again = responses_chat.conversation(
        responses_chat.decode(json.dumps(second).encode()), history, done
    )
    assert len(responses_chat.stored_items(again)) == 3 + 1 + 2  # history, input, output


def test_a_stored_reasoning_item_is_dropped_on_continuation() -> None:
    first = responses_chat.decode(b'{"model": "a", "input": "6*7?"}')
    done = responses_chat.answer(
        completion({"content": "42", "reasoning_content": "think"}), "a", id="resp_1", created=1
    )
    history = responses_chat.stored_items(responses_chat.conversation(first, [], done))
    assert [i.type for i in history] == ["message", "reasoning", "message"]
    out = chat({"model": "a", "input": "and 6*8?"}, history=history)
    assert out["messages"] == [
        {"role": "user", "content": "6*7?"},
        {"role": "assistant", "content": "42"},
        {"role": "user", "content": "and 6*8?"},
    ]


# -- compositions -------------------------------------------------------------------------------


def test_pick_gives_a_translator_for_every_backend_wire() -> None:
    assert pick("responses", "openai") is responses_chat
    assert pick("responses", "anthropic") is responses_anthropic
    assert pick("responses", "gemini") is rg


def test_anthropic_request_and_answer() -> None:
    body = json.dumps(
        {"model": "a", "input": "hi", "instructions": "sys", "max_output_tokens": 20}
    ).encode()
    out = json.loads(responses_anthropic.request(body, "claude", False))
    assert out["system"] == "sys" and out["max_tokens"] == 20
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    msg = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "yo"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    r = Response.model_validate_json(
        responses_anthropic.response(json.dumps(msg).encode(), "alias", id="resp_b", created=2)
    )
    assert r.output_text == "yo" and r.status == "completed"
    call = r.output[1]
    assert call.type == "function_call" and call.call_id == "toolu_1"
    assert json.loads(call.arguments) == {"a": 1}
    assert r.usage is not None and r.usage.input_tokens == 5
    err = json.loads(
        responses_anthropic.error(
            429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
        )
    )
    assert err["error"]["type"] == "rate_limit_error" and err["error"]["message"] == "slow down"


def test_gemini_request_and_answer() -> None:
    body = json.dumps({"model": "a", "input": "hi", "temperature": 0.1}).encode()
    out = json.loads(rg.request(body, "gemini-x", True))
    assert out["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert out["generationConfig"]["temperature"] == 0.1
    answer_body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "yo"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1, "totalTokenCount": 5},
    }
    r = Response.model_validate_json(
        rg.response(json.dumps(answer_body).encode(), "alias", id="resp_c", created=3)
    )
    assert r.output_text == "yo" and r.usage is not None and r.usage.total_tokens == 5
    err = json.loads(rg.error(400, b'{"error":{"code":400,"message":"bad","status":"INVALID"}}'))
    assert err["error"]["message"] == "bad"


@pytest.mark.parametrize(
    ("module", "fields", "param"),
    [
        (
            responses_anthropic,
            {"text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format",
        ),
        (
            responses_anthropic,
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}
                ]
            },
            "input",
        ),
        (
            rg,
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]},
            "input",
        ),
    ],
)
def test_downstream_400s_name_the_responses_field(module: Any, fields: Any, param: str) -> None:
    with pytest.raises(TranslationError) as err:
        module.request(json.dumps({"model": "a", "input": "hi", **fields}).encode(), "m", False)
    assert err.value.param == param and "response_format" not in str(err.value)


@pytest.mark.parametrize(
    ("chat", "front"),
    [
        ("messages[3].content[0]", "input"),
        ("response_format", "text.format"),
        ("response_format.json_schema", "text.format.json_schema"),
        ("max_completion_tokens", "max_output_tokens"),
        ("reasoning_effort", "reasoning.effort"),
        ("tools[1].function.parameters", "tools[1].parameters"),
        ("n", "n"),
        (None, None),
    ],
)
def test_front_error_params(chat: str | None, front: str | None) -> None:
    assert responses_chat.front_error(TranslationError("x", chat)).param == front


def test_codex_tools_hosted_ones_left_out_namespaces_flattened() -> None:
    body = {
        "model": "m",
        "input": "hi",
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "web_search"},
            {
                "type": "namespace",
                "name": "multi_agent_v1",
                "tools": [
                    {"type": "function", "name": "close_agent", "parameters": {"type": "object"}},
                    {"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}},
                ],
            },
        ],
    }
    out = json.loads(responses_chat.request(json.dumps(body).encode(), "m", False))
    names = [t["function"]["name"] for t in out["tools"]]
    assert names == ["exec_command", "close_agent", "spawn_agent"]


def test_only_hosted_tools_send_no_tools() -> None:
    body = {"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}
    out = json.loads(responses_chat.request(json.dumps(body).encode(), "m", False))
    assert "tools" not in out
