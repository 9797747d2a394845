"""OpenAI/Anthropic clients ↔ Ollama native wire: the pure translators."""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sse import Event
from proxy.translate import TranslationError, anthropic_ollama, openai_ollama, pick
from proxy.translate.openai_ollama_stream import Stream


def _request(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        openai_ollama.request(json.dumps(body).encode(), "llama3.2", stream)
    )
    return out


def test_pick_finds_the_ollama_translators() -> None:
    assert pick("openai", "ollama") is openai_ollama
    assert pick("anthropic", "ollama") is anthropic_ollama


def test_chat_request_maps_messages_tools_and_options() -> None:
    body = {
        "model": "alias",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is "},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "this?"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"x": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        ],
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {}}}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": "END",
        "seed": 3,
        "response_format": {"type": "json_object"},
    }
    out = _request(body)
    assert out["model"] == "llama3.2"
    assert out["stream"] is False  # always sent: Ollama streams when it is missing
    assert out["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is this?", "images": ["AAAA"]},
        {
            "role": "assistant",  # content "" is Ollama's default: left out
            "tool_calls": [{"function": {"name": "look", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "a cat", "tool_name": "look"},
    ]
    assert out["tools"] == [{"function": {"name": "look", "parameters": {}}, "type": "function"}]
    assert out["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "num_predict": 50,
        "stop": ["END"],
        "seed": 3,
    }
    assert out["format"] == "json"


def test_tool_choice_none_drops_tools_and_a_schema_becomes_the_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = _request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "none",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": schema},
            },
        },
        stream=True,
    )
    assert "tools" not in out
    assert out["format"] == schema
    assert out["stream"] is True
    assert "options" not in out


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}
                        ],
                    }
                ],
            },
            "messages[0].content[0]",
        ),
        ({"model": "m", "messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "input": [[1, 2]]}, "input"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
    ],
)
def test_what_ollama_cannot_take_is_a_client_error(body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as err:
        _request(body)
    assert err.value.param == param


def test_completion_and_embedding_requests() -> None:
    gen = _request({"model": "m", "prompt": "once", "max_tokens": 3, "suffix": "end"})
    assert gen == {
        "model": "llama3.2",
        "prompt": "once",
        "stream": False,
        "suffix": "end",
        "options": {"num_predict": 3},
    }
    emb = _request({"model": "m", "input": ["a", "b"], "dimensions": 8})
    assert emb == {"model": "llama3.2", "input": ["a", "b"], "dimensions": 8}


def test_chat_answer_with_tool_calls_and_usage() -> None:
    answer = {
        "model": "llama3.2",
        "message": {
            "role": "assistant",
            "content": "",
            "thinking": "hmm",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        },
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 12,
        "eval_count": 5,
    }
    out = json.loads(openai_ollama.response(json.dumps(answer).encode(), "alias", id="chatcmpl-x"))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "hmm"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_x_0", "function": {"name": "f", "arguments": '{"a":1}'}, "type": "function"}
    ]
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert out["model"] == "alias"
    assert out["object"] == "chat.completion"


def test_a_chat_answer_that_mentions_embeddings_is_still_a_chat() -> None:
    call = {"function": {"name": "store", "arguments": {"embeddings": [1]}}}
    answer = {"message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": True}
    out = json.loads(openai_ollama.response(json.dumps(answer).encode(), "m", id="chatcmpl-1"))
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "store"


def test_generate_and_embed_answers() -> None:
    gen = {"response": "hi there", "done": True, "done_reason": "length", "eval_count": 2}
    out = json.loads(openai_ollama.response(json.dumps(gen).encode(), "m", id="cmpl-1"))
    assert out["object"] == "text_completion"
    assert out["choices"][0]["text"] == "hi there"
    assert out["choices"][0]["finish_reason"] == "length"
    emb = {"model": "m", "embeddings": [[0.5, 1.0], [2.0, 3.0]], "prompt_eval_count": 4}
    out = json.loads(openai_ollama.response(json.dumps(emb).encode(), "alias"))
    assert [d["embedding"] for d in out["data"]] == [[0.5, 1.0], [2.0, 3.0]]
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    packed = json.loads(openai_ollama.base64_embeddings(json.dumps(out).encode()))
    assert packed["data"][0]["embedding"] == "AAAAPwAAgD8="  # 0.5, 1.0 as float32 LE


def test_error_body_becomes_an_openai_error() -> None:
    body = b'{"error": "model \\"x\\" not found, try pulling it first"}'
    out = json.loads(openai_ollama.error(404, body))
    assert out["error"]["type"] == "not_found_error"
    assert "try pulling it first" in out["error"]["message"]


# -- streams ----------------------------------------------------------------------------------


def _lines(texts: list[str], **done: Any) -> list[Event]:
    lines = [{"message": {"role": "assistant", "content": t}, "done": False} for t in texts]
    last = {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
    last |= {"prompt_eval_count": 4, "eval_count": len(texts)} | done
    return [Event(json.dumps(x)) for x in [*lines, last]]


def _run(events: list[Event], include_usage: bool = False) -> list[str]:
    s = Stream("alias", include_usage=include_usage, id="chatcmpl-7", created=9)
    out = [e.data for ev in events for e in s.feed(ev)] + [e.data for e in s.close()]
    return out


@given(st.lists(st.text(min_size=1, max_size=10), max_size=8), st.booleans())
def test_stream_invariants(texts: list[str], include_usage: bool) -> None:
    out = _run(_lines(texts), include_usage)
    assert out[-1] == "[DONE]"
    chunks = [json.loads(d) for d in out[:-1]]
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {("chatcmpl-7", 9, "alias")}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert all("role" not in d for d in deltas[1:])
    assert "".join(d.get("content", "") for d in deltas) == "".join(texts)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["stop"]
    usage = [c for c in chunks if not c["choices"]]
    if include_usage:
        assert usage == [usage[0]] and usage[0]["usage"]["completion_tokens"] == len(texts)
        assert all(c["usage"] is None for c in chunks if c["choices"])
    else:
        assert usage == [] and all("usage" not in c for c in chunks)


def test_stream_tool_calls_thinking_and_length() -> None:
    call = {"function": {"name": "f", "arguments": {"q": "x"}}}
    events = [
        Event(json.dumps({"message": {"role": "assistant", "content": "", "thinking": "t"}})),
        Event(json.dumps({"message": {"role": "assistant", "content": "", "tool_calls": [call]}})),
        *_lines([])[-1:],
    ]
    s = Stream("m", include_usage=False, id="chatcmpl-7", created=9)
    chunks = [json.loads(e.data) for ev in events for e in s.feed(ev) if e.data != "[DONE]"]
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "t"}
    assert chunks[2]["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_7_0",
            "type": "function",
            "function": {"name": "f", "arguments": '{"q":"x"}'},
        }
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert s.finish == "tool_calls" and s.usage == (4, 0)
    out = _run(_lines(["a"], done_reason="length"))
    assert json.loads(out[-2])["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "events",
    [
        [Event('{"message": {"content": "a"}}')],  # ends before done
        [Event('{"error": "out of memory"}')],
        [Event("not json")],
    ],
)
def test_a_broken_stream_ends_with_one_error_chunk(events: list[Event]) -> None:
    out = _run(events)
    assert out[-1] != "[DONE]"
    assert "error" in json.loads(out[-1])
    assert sum("error" in json.loads(d) for d in out) == 1


def test_generate_stream_gives_text_completion_chunks() -> None:
    lines = [
        {"response": "a", "done": False},
        {"response": "b", "done": False},
        {"response": "", "done": True, "done_reason": "stop", "eval_count": 2},
    ]
    out = _run([Event(json.dumps(x)) for x in lines], include_usage=True)
    chunks = [json.loads(d) for d in out[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "ab"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


# -- Anthropic clients, by composition --------------------------------------------------------


def test_anthropic_request_and_answer_compose() -> None:
    body = {
        "model": "m",
        "max_tokens": 20,
        "system": "terse",
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = json.loads(anthropic_ollama.request(json.dumps(body).encode(), "llama3.2", False))
    assert out["messages"] == [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "hi"},
    ]
    assert out["options"] == {"num_predict": 20}
    answer = {
        "message": {"role": "assistant", "content": "yo"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 1,
    }
    msg = json.loads(anthropic_ollama.response(json.dumps(answer).encode(), "m", id="msg_1"))
    assert msg["type"] == "message"
    assert msg["content"] == [{"type": "text", "text": "yo"}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["input_tokens"] == 3 and msg["usage"]["output_tokens"] == 1


def test_anthropic_stream_composes() -> None:
    s = anthropic_ollama.Stream("m", include_usage=False, id="msg_1", created=1)
    out = [e for ev in _lines(["he", "llo"]) for e in s.feed(ev)] + s.close()
    kinds = [e.event for e in out]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    text = "".join(
        json.loads(e.data)["delta"].get("text", "") for e in out if e.event == "content_block_delta"
    )
    assert text == "hello"
    delta = next(json.loads(e.data) for e in out if e.event == "message_delta")
    assert delta["usage"]["output_tokens"] == 2
    assert msgspec.json.decode(out[-1].data)["type"] == "message_stop"
