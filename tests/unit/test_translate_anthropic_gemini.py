"""Anthropic client → Gemini backend: exactly `anthropic_openai` ∘ `openai_gemini`."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import Event
from proxy.translate import TranslationError, anthropic_gemini, anthropic_openai, openai_gemini
from tests.unit.test_translate_anthropic_openai import messages_requests
from tests.unit.test_translate_conformance import anthropic_final


@settings(deadline=None)  # SDK validation per example: no per-example deadline
@given(messages_requests(), st.booleans())
def test_request_is_the_composition(body: dict[str, Any], stream: bool) -> None:
    raw = json.dumps(body).encode()
    pivot = anthropic_openai.request(raw, "gem", stream)
    try:
        want = openai_gemini.request(pivot, "gem", stream)
    except TranslationError as err:  # an image URL: Gemini takes inline data only
        with pytest.raises(TranslationError, match=str(err)):
            anthropic_gemini.request(raw, "gem", stream)
        return
    assert anthropic_gemini.request(raw, "gem", stream) == want


def test_tool_results_find_their_function_names() -> None:
    body = {
        "model": "a",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}],
            },
        ],
    }
    out = json.loads(anthropic_gemini.request(json.dumps(body).encode(), "gem", False))
    assert out["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "lookup", "response": {"output": "found"}}}],
    }


def test_response_and_error() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "On it."},
                        {"functionCall": {"name": "f", "args": {"x": 1}}},
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 20,
            "candidatesTokenCount": 5,
            "cachedContentTokenCount": 8,
        },
        "responseId": "r9",
    }
    out = json.loads(anthropic_gemini.response(json.dumps(body).encode(), "alias", id="msg_1"))
    assert out["id"] == "msg_1" and out["stop_reason"] == "tool_use" and out["model"] == "alias"
    assert out["content"] == [
        {"type": "text", "text": "On it."},
        {"type": "tool_use", "id": "call_msg_1_0", "name": "f", "input": {"x": 1}},
    ]
    assert (out["usage"]["input_tokens"], out["usage"]["cache_read_input_tokens"]) == (12, 8)
    err = b'{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}'
    assert json.loads(anthropic_gemini.error(429, err)) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Quota exceeded"},
    }


def test_stream_completes_on_close_with_usage() -> None:
    s = anthropic_gemini.Stream("alias", include_usage=False, id="msg_s", created=0)
    usage = {"promptTokenCount": 11, "candidatesTokenCount": 2, "totalTokenCount": 13}
    first = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}}], "usageMetadata": usage}
    last = {
        "candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}],
        "usageMetadata": usage,
    }
    out = s.feed(Event(json.dumps(first))) + s.feed(Event(json.dumps(last)))
    assert "message_stop" not in [e.event for e in out], "Gemini has no [DONE]: close() ends it"
    out += s.close()
    final = anthropic_final(out)
    assert [b.model_dump()["text"] for b in final.content] == ["Hi!"]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 2)
    assert s.usage == (11, 2) and s.finish == "end_turn"


def test_stream_error_keeps_usage_known_so_far() -> None:
    s = anthropic_gemini.Stream("alias", include_usage=False, id="msg_e", created=0)
    s.feed(
        Event(
            json.dumps(
                {
                    "candidates": [{"content": {"parts": [{"text": "Hi"}]}}],
                    "usageMetadata": {"promptTokenCount": 4},
                }
            )
        )
    )
    out = s.feed(
        Event(json.dumps({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}))
    )
    assert out[-1].event == "error" and json.loads(out[-1].data)["error"]["message"] == "internal"
    assert s.usage == (4, 0) and s.close() == []
