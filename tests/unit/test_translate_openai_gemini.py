"""OpenAI client → Gemini backend (`proxy.translate.openai_gemini`)."""

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from proxy.sse import Event
from proxy.translate import TranslationError, openai_gemini
from tests.unit.test_translate_conformance import check_openai, openai_final
from tests.unit.test_translate_openai_anthropic import chat_requests, json_objects, names, texts

# -- request -----------------------------------------------------------------------------------


def to_gemini(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        openai_gemini.request(json.dumps({"model": "a", **body}).encode(), "gemini-x", stream)
    )
    return out


CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    },
    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
]


def test_roles_system_and_function_responses() -> None:
    out = to_gemini(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "use metric"}]},
                {"role": "user", "content": "weather and time?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": CALLS},
                {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
                {
                    "role": "tool",
                    "tool_call_id": "call_1",
                    "content": [{"type": "text", "text": "sunny"}],
                },
                {"role": "user", "content": "thanks"},
            ]
        },
        stream=True,
    )
    assert "model" not in out  # Gemini takes the model from the URL
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "use metric"}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "weather and time?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "skip_thought_signature_validator",
                },
                {"functionCall": {"name": "get_time"}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                {"text": "thanks"},
            ],
        },
    ]
    assert "generationConfig" not in out and "tools" not in out


def test_media_parts() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
    ]
    out = to_gemini({"messages": [{"role": "user", "content": content}]})
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
    ]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], "messages[0].tool_call_id"),
        (
            [
                {
                    "role": "system",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
                    ],
                }
            ],
            "messages[0].content[0]",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
            "messages[0].content[0]",
        ),
    ],
)
def test_untranslatable_input_is_a_translation_error(
    messages: list[dict[str, Any]], param: str
) -> None:
    with pytest.raises(TranslationError) as err:
        to_gemini({"messages": messages})
    assert err.value.param == param


@pytest.mark.parametrize(
    ("choice", "want"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "f"}},
            {"mode": "ANY", "allowedFunctionNames": ["f"]},
        ),
    ],
)
def test_tools_and_tool_choice(choice: Any, want: dict[str, Any]) -> None:
    params = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "city": {"type": "string", "format": "uri"},
            "when": {"$ref": "#/$defs/When"},
        },
        "required": ["city", "ghost"],
        "additionalProperties": False,
        "$defs": {"When": {"type": ["string", "null"], "format": "date-time"}},
    }
    tools = [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": params}},
        {
            "type": "function",
            "function": {"name": "g", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    out = to_gemini(
        {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}
    )
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "f",
                    "description": "d",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "when": {"type": "string", "nullable": True, "format": "date-time"},
                        },
                        "required": ["city"],
                    },
                },
                {"name": "g"},
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": want}


def test_generation_config() -> None:
    out = to_gemini(
        {
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 10,
            "max_completion_tokens": 50,
            "stop": ["A", "B"],
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "reasoning_effort": "medium",
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "s",
                    "schema": {
                        "type": "object",
                        "properties": {"a": {"const": "x"}},
                        "additionalProperties": False,
                    },
                },
            },
        }
    )
    assert out["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 50,
        "stopSequences": ["A", "B"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.3,
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {"a": {"type": "string", "enum": ["x"]}},
        },
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192},
    }


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(chat_requests(), st.booleans())
def test_any_chat_request_makes_well_formed_gemini_turns(
    body: dict[str, Any], stream: bool
) -> None:
    urls = json.dumps(body)
    try:
        out = json.loads(openai_gemini.request(urls.encode(), "g", stream))
    except TranslationError as err:
        assert "https://" in urls and err.param and err.param.endswith("image_url.url")
        return
    contents = out["contents"]
    roles = [c["role"] for c in contents]
    assert set(roles) <= {"user", "model"}
    assert all(a != b for a, b in itertools.pairwise(roles)), "turns alternate"
    for turn, answer in itertools.pairwise(contents):
        calls = [p["functionCall"]["name"] for p in turn["parts"] if "functionCall" in p]
        replies = [
            p["functionResponse"]["name"] for p in answer["parts"] if "functionResponse" in p
        ]
        if turn["role"] == "model":
            assert sorted(calls) == sorted(replies), "every call answered, by name"
    assert all(p for c in contents for p in c["parts"]), "no empty parts"


# -- response and error ------------------------------------------------------------------------


def gemini(candidates: list[dict[str, Any]], **extra: Any) -> bytes:
    usage = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": 3,
        "totalTokenCount": 17,
        "cachedContentTokenCount": 2,
    }
    return json.dumps(
        {"candidates": candidates, "usageMetadata": usage, "responseId": "resp1", **extra}
    ).encode()


def test_response_text_thoughts_calls_and_usage() -> None:
    parts = [
        {"text": "plan", "thought": True},
        {"text": "Calling."},
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"},
        {"functionCall": {"id": "given-id", "name": "g", "args": {}}},
    ]
    raw = openai_gemini.response(
        gemini(
            [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}]
        ),
        "alias",
        created=9,
    )
    out = ChatCompletion.model_validate_json(raw)
    assert (out.id, out.created, out.model) == ("chatcmpl-resp1", 9, "alias")
    message = out.choices[0].message
    assert message.content == "Calling." and out.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_resp1_0", "f", {"a": 1}),
        ("given-id", "g", {}),
    ]
    assert json.loads(raw)["choices"][0]["message"]["reasoning_content"] == "plan"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (
        10,
        7,
        17,
    )
    assert (
        out.usage.completion_tokens_details
        and out.usage.completion_tokens_details.reasoning_tokens == 3
    )
    # the gateway's own id wins, and seeds the synthesized tool-call ids
    again = json.loads(
        openai_gemini.response(gemini([{"content": {"parts": parts}}]), "alias", id="chatcmpl-7")
    )
    assert again["id"] == "chatcmpl-7"
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] == "call_7_0"


@pytest.mark.parametrize(
    ("reason", "want"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("NEW_REASON", "stop"),
    ],
)
def test_response_finish_reasons(reason: str, want: str) -> None:
    body = gemini([{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}])
    assert json.loads(openai_gemini.response(body, "m"))["choices"][0]["finish_reason"] == want


def test_blocked_prompt_and_several_candidates() -> None:
    blocked = json.loads(
        openai_gemini.response(gemini([], promptFeedback={"blockReason": "SAFETY"}), "m")
    )
    assert blocked["choices"] == [
        {
            "index": 0,
            "message": {"content": "", "role": "assistant"},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]
    two = gemini(
        [
            {"content": {"parts": [{"text": "a"}]}, "index": 0},
            {"content": {"parts": [{"text": "b"}]}, "index": 1},
        ]
    )
    out = ChatCompletion.model_validate_json(openai_gemini.response(two, "m"))
    assert [(c.index, c.message.content) for c in out.choices] == [(0, "a"), (1, "b")]


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (
            429,
            b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}',
            ("Quota exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"),
        ),
        (
            400,
            b'[{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]',
            ("bad", "invalid_request_error", "INVALID_ARGUMENT"),
        ),
        (500, b"", ("upstream returned HTTP 500", "api_error", None)),
    ],
)
def test_error_becomes_openai_envelope(
    status: int, body: bytes, want: tuple[str, str, str | None]
) -> None:
    out = json.loads(openai_gemini.error(status, body))
    assert out == {"error": {"message": want[0], "type": want[1], "param": None, "code": want[2]}}


# -- stream ------------------------------------------------------------------------------------


def record(
    parts: list[dict[str, Any]], finish: str | None = None, index: int = 0, **extra: Any
) -> Event:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish:
        candidate["finishReason"] = finish
    return Event(json.dumps({"candidates": [candidate], **extra}))


def run(
    events: list[Event], include_usage: bool = True
) -> tuple[list[Event], openai_gemini.Stream]:
    s = openai_gemini.Stream("alias", include_usage=include_usage, id="chatcmpl-s", created=3)
    out = [o for e in events for o in s.feed(e)]
    return out + s.close(), s


Part = tuple[str, Any]
gemini_parts = st.lists(
    st.one_of(
        st.tuples(st.just("text"), texts),
        st.tuples(st.just("thought"), texts),
        st.tuples(st.just("call"), st.tuples(names, json_objects)),
    ),
    max_size=6,
)


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(st.lists(gemini_parts, min_size=1, max_size=4), st.booleans())
def test_stream_reassembles_in_the_openai_sdk(
    records: list[list[Part]], include_usage: bool
) -> None:
    events = []
    for k, parts in enumerate(records):
        wire = []
        for kind, value in parts:
            if kind == "call":
                wire.append({"functionCall": {"name": value[0], "args": value[1]}})
            else:
                wire.append(
                    {"text": value, "thought": True} if kind == "thought" else {"text": value}
                )
        usage = {"promptTokenCount": 5, "candidatesTokenCount": k, "totalTokenCount": 5 + k}
        events.append(record(wire, "STOP" if k == len(records) - 1 else None, usageMetadata=usage))
    out, s = run(events, include_usage)
    final = openai_final(out, include_usage=include_usage)
    flat = [p for parts in records for p in parts]
    message = final.choices[0].message
    assert (message.content or "") == "".join(v for k, v in flat if k == "text")
    calls = [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()
    ]
    wanted = [v for k, v in flat if k == "call"]
    assert calls == [(f"call_s_{n}", name, args) for n, (name, args) in enumerate(wanted)]
    assert final.choices[0].finish_reason == ("tool_calls" if wanted else "stop") == s.finish
    assert s.usage == (5, len(records) - 1)


def test_stream_ends_only_on_close() -> None:
    s = openai_gemini.Stream("alias", include_usage=False, id="c", created=0)
    fed = s.feed(record([{"text": "hi"}], "STOP"))
    assert "[DONE]" not in [e.data for e in fed]
    closing = s.close()
    assert [e.data for e in closing] == ["[DONE]"]
    check_openai(fed + closing, include_usage=False)


def test_two_candidates_each_get_role_and_finish_once() -> None:
    out, _ = run(
        [
            record([{"text": "a"}], index=0),
            record([{"text": "b"}], "MAX_TOKENS", index=1),
            record([], "STOP", index=0),
        ]
    )
    chunks = check_openai(out, include_usage=True)
    finishes = {
        c.choices[0].index: c.choices[0].finish_reason
        for c in chunks
        if c.choices and c.choices[0].finish_reason
    }
    assert finishes == {0: "stop", 1: "length"}


def test_close_owes_finish_to_candidates_that_never_finished() -> None:
    out, _ = run([record([{"text": "a"}], index=1), record([{"text": "b"}], "STOP", index=0)])
    chunks = check_openai(out, include_usage=True)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_blocked_prompt_stream() -> None:
    out, s = run([Event(json.dumps({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}))])
    check_openai(out, include_usage=True)
    assert s.finish == "content_filter"


@pytest.mark.parametrize(
    "events",
    [
        [record([{"text": "a"}])],  # no finishReason: cut off
        [record([{"text": "a"}]), Event("{cut")],
        [
            Event(
                json.dumps(
                    {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
                )
            )
        ],
    ],
)
def test_truncated_garbled_or_failed_stream_ends_with_an_error_chunk(events: list[Event]) -> None:
    out, s = run(events)
    assert set(json.loads(out[-1].data)) == {"error"} and "[DONE]" not in [e.data for e in out]
    assert s.feed(record([{"text": "late"}], "STOP")) == [] and s.close() == []
