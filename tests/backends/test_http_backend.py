"""`type: http` against two model servers with their own JSON shapes: the request rendered
from the template, the answer and the stream read back by the configured paths."""

from typing import Any

from proxy.config import Backend
from tests.backends.conftest import call, config
from tests.backends.servers import FlatServer, NestedServer

NESTED = """
version: 1
backends:
  nested:
    type: http
    base_url: URL
    headers: {x-team: search}
    request:
      path: /v2/infer
      stream_path: /v2/infer/stream
      body:
        inputs: {prompt: "{{prompt}}", history: "{{messages}}", system: "{{system}}"}
        params: {max_new_tokens: "{{max_tokens}}", temperature: "{{temperature}}"}
        tag: "llm-proxy/{{model}}"
    response:
      text: output.text
      finish: final.stop
      usage: {prompt_tokens: meta.tokens_in, completion_tokens: meta.tokens_out}
      stream: {format: ndjson, text: delta.text}
models: {}
"""

FLAT = """
version: 1
backends:
  flat:
    type: http
    base_url: URL
    request:
      path: /generate
      body:
        text: "{{prompt}}"
        max_new_tokens: "{{max_tokens}}"
        stream: "{{stream}}"
    response:
      text: results.0.generated_text
      stream: {format: sse, text: token.text}
models: {}
"""


def _backend(template: str, url: str) -> Backend:
    return config(template.replace("URL", url)).backends[0]


def _chat(**more: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "say hi"},
    ]
    return {"model": "alias", "messages": messages, **more}


async def test_nested_shape_answer(nested: NestedServer) -> None:
    backend = _backend(NESTED, nested.url)
    got = await call(backend, "openai", "chat", _chat(temperature=0.3), "inhouse-7b")
    assert got.body["choices"][0]["message"]["content"] == "hello from nested: 6"
    assert got.body["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    path, sent = nested.received[-1]
    assert path == "/v2/infer"
    assert sent == {
        "inputs": {
            "prompt": "say hi",
            "history": [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "say hi"},
            ],
            "system": "be kind",
        },
        "params": {"temperature": 0.3},  # max_tokens not given: left out
        "tag": "llm-proxy/inhouse-7b",
    }


async def test_nested_shape_stream(nested: NestedServer) -> None:
    backend = _backend(NESTED, nested.url)
    got = await call(
        backend, "openai", "chat", _chat(max_tokens=4), "m", stream=True, include_usage=True
    )
    assert got.text() == "hello from nested: 6"
    assert nested.received[-1][0] == "/v2/infer/stream"
    assert nested.received[-1][1]["params"] == {"max_new_tokens": 4}
    chunks = got.chunks()
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert got.events[-1].data == "[DONE]"


async def test_flat_shape_answer_and_sse_stream(flat: FlatServer) -> None:
    backend = _backend(FLAT, flat.url)
    got = await call(backend, "openai", "chat", _chat(), "m")
    assert got.body["choices"][0]["message"]["content"] == "hello from flat: 6"
    assert got.body["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in got.body  # the server reports none: never guessed here
    assert flat.received[-1] == ("/generate", {"text": "say hi", "stream": False})
    got = await call(backend, "openai", "chat", _chat(stream=True), "m", stream=True)
    assert got.text() == "hello from flat: 6"
    assert flat.received[-1][1]["stream"] is True
    assert got.events[-1].data == "[DONE]"


async def test_anthropic_clients_over_a_template(flat: FlatServer, nested: NestedServer) -> None:
    body = {
        "model": "a",
        "max_tokens": 9,
        "system": "terse",
        "messages": [{"role": "user", "content": "hey"}],
    }
    got = await call(_backend(FLAT, flat.url), "anthropic", "messages", body, "m")
    assert got.body["content"] == [{"type": "text", "text": "hello from flat: 3"}]
    assert flat.received[-1][1] == {"text": "hey", "max_new_tokens": 9, "stream": False}
    got = await call(
        _backend(NESTED, nested.url),
        "anthropic",
        "messages",
        {**body, "stream": True},
        "m",
        stream=True,
    )
    text = "".join(
        c["delta"].get("text", "") for c in got.chunks() if c["type"] == "content_block_delta"
    )
    assert text == "hello from nested: 3"
    delta = next(c for c in got.chunks() if c["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["output_tokens"] == 4


async def test_what_the_template_cannot_carry_is_refused(flat: FlatServer) -> None:
    from proxy.translate import TranslationError

    tools = [{"type": "function", "function": {"name": "f"}}]
    try:
        await call(_backend(FLAT, flat.url), "openai", "chat", _chat(tools=tools), "m")
    except TranslationError as err:
        assert err.param == "tools"
        assert flat.received == []
        return
    raise AssertionError("tools were silently dropped")
