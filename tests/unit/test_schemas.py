"""Wire Structs (`schemas/`): they decode what the providers send and encode exactly what the
official SDKs accept (checked against the SDKs' own Pydantic types, offline)."""

import json
import typing
from typing import Any

import msgspec
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from hypothesis import given
from hypothesis import strategies as st
from openai.types import Completion as SDKCompletion
from openai.types import CreateEmbeddingResponse
from openai.types import Model as SDKModel
from openai.types.chat import ChatCompletion as SDKChatCompletion
from openai.types.chat import ChatCompletionChunk as SDKChunk
from pydantic import TypeAdapter

from schemas import anthropic as an
from schemas import gemini as gm
from schemas import openai as oa

encode = msgspec.json.encode


def wire(value: Any) -> Any:
    return json.loads(encode(value))


@pytest.mark.parametrize(
    "kind",
    [
        oa.Usage,
        oa.ErrorEnvelope,
        an.Usage,
        an.DeltaUsage,
        an.ErrorEnvelope,
        gm.UsageMetadata,
        gm.ToolConfig,
    ],
)
@given(data=st.data())
def test_encode_decode_round_trip(kind: type[Any], data: st.DataObject) -> None:
    value = data.draw(st.from_type(kind))
    assert msgspec.json.decode(encode(value), type=kind) == value


# -- OpenAI ------------------------------------------------------------------------------------


def test_openai_error_body_always_has_four_keys() -> None:
    assert wire(oa.ErrorEnvelope(oa.ErrorBody(message="m", type="t"))) == {
        "error": {"message": "m", "type": "t", "param": None, "code": None}
    }


def test_chunk_usage_is_absent_null_or_full() -> None:
    choice = oa.ChunkChoice(delta=oa.Delta(role="assistant", content=""))
    plain = oa.ChatCompletionChunk(id="c", created=1, model="m", choices=[choice])
    assert wire(plain) == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    assert wire(msgspec.structs.replace(plain, usage=None))["usage"] is None
    usage = oa.Usage(3, 4, 7, prompt_tokens_details=oa.PromptTokensDetails(1))
    last = wire(oa.ChatCompletionChunk(id="c", created=1, model="m", choices=[], usage=usage))
    assert last["choices"] == [] and last["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 1},
    }
    for chunk in (plain, last):
        SDKChunk.model_validate(wire(chunk) if isinstance(chunk, oa.ChatCompletionChunk) else chunk)


def test_tool_call_delta_encodes_only_what_is_set() -> None:
    head = oa.ChunkToolCall(0, "call_1", "function", oa.ChunkFunction(name="f", arguments=""))
    tail = oa.ChunkToolCall(0, function=oa.ChunkFunction(arguments='{"a"'))
    assert wire(head) == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert wire(tail) == {"index": 0, "function": {"arguments": '{"a"'}}


def test_chunk_decodes_real_openai_and_compatible_server_output() -> None:
    real = (
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o",'
        b'"service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":'
        b'{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function",'
        b'"function":{"name":"f","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}],'
        b'"usage":null}'
    )
    chunk = msgspec.json.decode(real, type=oa.ChatCompletionChunk)
    call = (chunk.choices[0].delta.tool_calls or [])[0]
    assert (call.index, call.id, call.function and call.function.name) == (0, "call_1", "f")
    assert chunk.usage is None
    sparse = msgspec.json.decode(
        b'{"choices":[{"delta":{"reasoning":"r"}}]}', type=oa.ChatCompletionChunk
    )
    assert sparse.choices[0].delta.reasoning == "r" and sparse.usage is msgspec.UNSET


def test_completion_encodes_what_the_sdk_validates() -> None:
    message = oa.ResponseMessage(
        content=None, refusal=None, tool_calls=[oa.ToolCall("call_1", oa.Function("f", "{}"))]
    )
    body = oa.ChatCompletion(
        id="x",
        created=1,
        model="m",
        choices=[oa.Choice(message=message, finish_reason="tool_calls")],
        usage=oa.Usage(1, 2, 3),
    )
    out = wire(body)
    assert out["object"] == "chat.completion" and out["choices"][0]["message"]["content"] is None
    assert "reasoning_content" not in out["choices"][0]["message"]
    SDKChatCompletion.model_validate(out)
    minimal = msgspec.json.decode(
        b'{"choices":[{"message":{"content":"hi"}}]}', type=oa.ChatCompletion
    )
    assert minimal.choices[0].message.content == "hi" and minimal.usage is msgspec.UNSET


def test_chat_request_shapes() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "developer", "content": "d"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "t"},
                    {"type": "image_url", "image_url": {"url": "u", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "r"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "stop": "x",
        "stream_options": {"include_usage": True},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": {"type": "object"}},
        },
    }
    request = msgspec.json.decode(json.dumps(body), type=oa.ChatRequest)
    assert isinstance(request.tool_choice, oa.NamedToolChoice)
    assert isinstance(request.response_format, oa.JSONSchemaFormat)
    # absent fields stay absent; the assistant's explicit null content is dropped too
    del body["messages"][2]["content"]  # type: ignore[attr-defined]
    assert wire(request) == body
    assert (
        msgspec.json.decode(
            b'{"model":"m","messages":[],"tool_choice":"required"}', type=oa.ChatRequest
        ).tool_choice
        == "required"
    )


def test_unknown_content_part_fails_with_its_path() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}'
    with pytest.raises(msgspec.ValidationError, match=r"messages\[0\]\.content"):
        msgspec.json.decode(body, type=oa.ChatRequest)


def test_legacy_embeddings_and_models_match_the_sdk() -> None:
    completion = oa.Completion(
        id="cmpl",
        created=1,
        model="m",
        choices=[oa.CompletionChoice(text="hi", finish_reason="stop")],
    )
    assert wire(completion)["object"] == "text_completion"
    SDKCompletion.model_validate(wire(completion))
    embeddings = oa.EmbeddingResponse(
        data=[oa.Embedding(index=0, embedding=[0.5, 1.0])], model="e", usage=oa.EmbeddingUsage(2, 2)
    )
    assert wire(embeddings)["data"][0] == {
        "index": 0,
        "embedding": [0.5, 1.0],
        "object": "embedding",
    }
    CreateEmbeddingResponse.model_validate(wire(embeddings))
    listing = wire(oa.ModelList(data=[oa.Model(id="demo", created=0)]))
    assert listing == {
        "data": [{"id": "demo", "created": 0, "owned_by": "llm-proxy", "object": "model"}],
        "object": "list",
    }
    SDKModel.model_validate(listing["data"][0])
    for value in ("x", ["a", "b"], [1, 2], [[1], [2, 3]]):
        request = msgspec.json.decode(
            json.dumps({"model": "e", "input": value}), type=oa.EmbeddingRequest
        )
        assert request.input == value


# -- Anthropic ---------------------------------------------------------------------------------


def test_block_types_match_the_union() -> None:
    members = typing.get_args(an.ContentBlock)
    assert {m.__struct_config__.tag for m in members} == an.BLOCK_TYPES


def test_request_with_every_block_type_decodes_and_re_encodes() -> None:
    blocks = [
        {"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x"}},
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "d"},
            "title": "t",
        },
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [{"type": "text", "text": "r"}],
            "is_error": True,
        },
    ]
    assistant = [
        {"type": "thinking", "thinking": "th", "signature": "s"},
        {"type": "redacted_thinking", "data": "x"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
    ]
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": blocks},
        ],
        "system": [{"type": "text", "text": "s"}],
        "tools": [
            {"name": "f", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u"},
    }
    request = msgspec.json.decode(json.dumps(body), type=an.MessagesRequest)
    assert wire(request) == body


def test_unknown_block_type_fails_strict_decoding() -> None:
    with pytest.raises(msgspec.ValidationError, match="content"):
        msgspec.json.decode(b'{"content":[{"type":"new_block"}]}', type=an.Message)


def test_message_and_every_stream_event_match_the_sdk() -> None:
    message = an.Message(
        id="msg",
        content=[
            an.TextBlock(text="t"),
            an.ThinkingBlock(thinking="x"),
            an.ToolUseBlock(id="t", name="f", input={}),
        ],
        model="m",
        stop_reason="tool_use",
        usage=an.Usage(1, 2),
    )
    out = wire(message)
    assert out["stop_sequence"] is None and out["content"][1] == {
        "type": "thinking",
        "thinking": "x",
        "signature": "",
    }
    SDKMessage.model_validate(out)
    events: list[an.StreamEvent] = [
        an.MessageStart(message=an.Message(id="msg", model="m")),
        an.ContentBlockStart(0, an.ToolUseBlock(id="t", name="f", input={})),
        an.ContentBlockDelta(0, an.InputJSONDelta("{}")),
        an.ContentBlockDelta(1, an.TextDelta("t")),
        an.ContentBlockDelta(2, an.ThinkingDelta("t")),
        an.ContentBlockDelta(2, an.SignatureDelta("s")),
        an.ContentBlockStop(0),
        an.MessageDelta(
            an.MessageDeltaBody("end_turn"), an.DeltaUsage(output_tokens=3, input_tokens=1)
        ),
        an.MessageStop(),
        an.Ping(),
        an.ErrorEnvelope(an.ErrorBody("overloaded_error", "Overloaded")),
    ]
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    for event in events[:-2]:
        data = wire(event)
        assert data["type"] == event.__struct_config__.tag
        adapter.validate_python(data)
    assert wire(events[7])["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert wire(events[7])["usage"] == {"output_tokens": 3, "input_tokens": 1}
    assert wire(events[-1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    start = wire(events[0])["message"]
    assert start["stop_reason"] is None and start["content"] == []


# -- Gemini ------------------------------------------------------------------------------------


def test_gemini_is_camel_case_on_the_wire() -> None:
    request = gm.GenerateContentRequest(
        contents=[gm.Content(role="user", parts=[gm.Part(inline_data=gm.Blob("image/png", "AA"))])],
        system_instruction=gm.Content(parts=[gm.Part(text="s")]),
        tool_config=gm.ToolConfig(
            gm.FunctionCallingConfig(mode="ANY", allowed_function_names=["f"])
        ),
        generation_config=gm.GenerationConfig(max_output_tokens=5, top_p=0.5),
    )
    assert wire(request) == {
        "contents": [
            {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "AA"}}]}
        ],
        "systemInstruction": {"parts": [{"text": "s"}]},
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {"topP": 0.5, "maxOutputTokens": 5},
    }


def test_gemini_response_and_error_decode() -> None:
    body = (
        b'{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f","args":{"a":1}},'
        b'"thoughtSignature":"sig"}]},"finishReason":"STOP","index":0,"safetyRatings":[]}],'
        b'"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4,'
        b'"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}]},"modelVersion":"g","responseId":"r"}'
    )
    response = msgspec.json.decode(body, type=gm.GenerateContentResponse)
    part = response.candidates[0].content.parts[0]  # type: ignore[union-attr]
    assert (
        part.function_call == gm.FunctionCall(name="f", args={"a": 1})
        and part.thought_signature == "sig"
    )
    assert response.usage_metadata == gm.UsageMetadata(3, 1, 4)
    assert wire(gm.ErrorEnvelope(gm.ErrorBody(429, "slow", "RESOURCE_EXHAUSTED"))) == {
        "error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}
    }
