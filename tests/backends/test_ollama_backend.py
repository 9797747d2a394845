"""`type: ollama` against a real server speaking Ollama's native API: what the adapter sends
(URLs, options, keep_alive, stream flag) and what clients get back, streamed and not."""

from typing import Any

from proxy.config import Backend
from tests.backends.conftest import call, config
from tests.backends.servers import OllamaServer


def _backend(server: OllamaServer, extra: str = "") -> Backend:
    c = config(
        f"""
        version: 1
        backends:
          local:
            type: ollama
            base_url: {server.url}/
            {extra}
        models: {{}}
        """
    )
    return c.backends[0]


def _chat(content: str = "hi there", **more: Any) -> dict[str, Any]:
    return {"model": "alias", "messages": [{"role": "user", "content": content}], **more}


async def test_chat_answer(ollama: OllamaServer) -> None:
    got = await call(_backend(ollama), "openai", "chat", _chat(), "llama3.2")
    assert got.status == 200
    assert got.body["choices"][0]["message"]["content"] == "hello from llama3.2: 8"
    assert got.body["choices"][0]["finish_reason"] == "stop"
    assert got.body["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    path, sent = ollama.received[-1]
    assert path == "/api/chat"
    assert sent["stream"] is False and sent["model"] == "llama3.2"


async def test_backend_options_are_defaults_under_the_clients(ollama: OllamaServer) -> None:
    backend = _backend(
        ollama, "options: {num_ctx: 8192, num_predict: 99}\n            keep_alive: 5m"
    )
    got = await call(backend, "openai", "chat", _chat(max_tokens=1), "llama3.2")
    assert got.body["choices"][0]["finish_reason"] == "length"  # num_predict 1 reached upstream
    _, sent = ollama.received[-1]
    assert sent["options"] == {"num_ctx": 8192, "num_predict": 1}
    assert sent["keep_alive"] == "5m"
    await call(backend, "openai", "chat", _chat(), "llama3.2")
    _, sent = ollama.received[-1]
    assert sent["options"] == {"num_ctx": 8192, "num_predict": 99}


async def test_chat_stream(ollama: OllamaServer) -> None:
    got = await call(
        _backend(ollama),
        "openai",
        "chat",
        _chat(stream=True),
        "llama3.2",
        stream=True,
        include_usage=True,
    )
    assert got.text() == "hello from llama3.2: 8"
    assert got.events[-1].data == "[DONE]"
    chunks = got.chunks()
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    _, sent = ollama.received[-1]
    assert sent["stream"] is True


async def test_tool_call_streamed_and_not(ollama: OllamaServer) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    body = _chat("weather in Paris?", tools=tools)
    got = await call(_backend(ollama), "openai", "chat", body, "llama3.2")
    (call_,) = got.body["choices"][0]["message"]["tool_calls"]
    assert call_["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert got.body["choices"][0]["finish_reason"] == "tool_calls"
    got = await call(_backend(ollama), "openai", "chat", body, "llama3.2", stream=True)
    calls = [tc for c in got.chunks() for tc in c["choices"][0]["delta"].get("tool_calls", ())]
    assert [tc["function"]["name"] for tc in calls] == ["get_weather"]
    assert got.chunks()[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_completion_and_embeddings(ollama: OllamaServer) -> None:
    got = await call(
        _backend(ollama), "openai", "completions", {"model": "a", "prompt": "abc"}, "llama3.2"
    )
    assert got.body["choices"][0]["text"] == "hello from llama3.2: 3"
    assert ollama.received[-1][0] == "/api/generate"
    got = await call(
        _backend(ollama),
        "openai",
        "completions",
        {"model": "a", "prompt": "abc"},
        "llama3.2",
        stream=True,
    )
    assert got.text() == "hello from llama3.2: 3"
    got = await call(
        _backend(ollama), "openai", "embeddings", {"model": "a", "input": ["ab", "abcd"]}, "e"
    )
    assert [d["embedding"] for d in got.body["data"]] == [[2.0, 0.5, -0.5], [4.0, 0.5, -0.5]]
    assert got.body["usage"]["prompt_tokens"] == 2
    assert ollama.received[-1] == ("/api/embed", {"model": "e", "input": ["ab", "abcd"]})


async def test_unknown_model_error_is_translated(ollama: OllamaServer) -> None:
    got = await call(_backend(ollama), "openai", "chat", _chat(), "missing")
    assert got.status == 404
    assert got.body["error"]["type"] == "not_found_error"
    assert "try pulling it first" in got.body["error"]["message"]
    got = await call(_backend(ollama), "anthropic", "messages", _anthropic(), "missing")
    assert got.body["type"] == "error"
    assert got.body["error"]["type"] == "not_found_error"


def _anthropic(**more: Any) -> dict[str, Any]:
    return {"model": "a", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **more}


async def test_anthropic_clients_streamed_and_not(ollama: OllamaServer) -> None:
    got = await call(_backend(ollama), "anthropic", "messages", _anthropic(), "llama3.2")
    assert got.body["content"] == [{"type": "text", "text": "hello from llama3.2: 2"}]
    assert got.body["usage"]["input_tokens"] == 7
    assert ollama.received[-1][0] == "/api/chat"
    got = await call(
        _backend(ollama), "anthropic", "messages", _anthropic(stream=True), "llama3.2", stream=True
    )
    kinds = [e.event for e in got.events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    text = "".join(
        c["delta"].get("text", "") for c in got.chunks() if c["type"] == "content_block_delta"
    )
    assert text == "hello from llama3.2: 2"
