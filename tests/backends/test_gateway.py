"""A running gateway with the new backend types, through the official SDKs: discovered Ollama
models appear in `/v1/models` with no alias written and go when the server stops listing
them; OpenAI and Anthropic clients reach Ollama and two custom-shape `type: http` servers,
streamed and not; a dead Ollama fails over to the next target before the stream commits."""

import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.backends.servers import FlatServer, NestedServer, OllamaServer
from tests.conftest import Gateway, RoutesFile, free_port, launch

DEADLINE = 10.0
DISCOVERED = ["ollama/llama3.2:latest", "ollama/qwen3:8b"]


@pytest.fixture
def running(
    ollama: OllamaServer,
    nested: NestedServer,
    flat: FlatServer,
    routes_file: RoutesFile,
    tmp_path: Path,
) -> Iterator[Gateway]:
    path = routes_file(
        f"""
        version: 1
        settings: {{failure_threshold: 1, retries: 2}}
        backends:
          local: {{type: ollama, base_url: "{ollama.url}", discover: 100ms}}
          dead: {{type: ollama, base_url: "http://127.0.0.1:{free_port()}", discover: 100ms}}
          nested:
            type: http
            base_url: {nested.url}
            request:
              path: /v2/infer
              stream_path: /v2/infer/stream
              body: {{inputs: {{prompt: "{{{{prompt}}}}"}}, params: {{n: "{{{{max_tokens}}}}"}}}}
            response:
              text: output.text
              finish: final.stop
              usage: {{prompt_tokens: meta.tokens_in, completion_tokens: meta.tokens_out}}
              stream: {{format: ndjson, text: delta.text}}
          flat:
            type: http
            base_url: {flat.url}
            request: {{path: /generate, body: {{text: "{{{{prompt}}}}", stream: "{{{{stream}}}}"}}}}
            response: {{text: results.0.generated_text, stream: {{format: sse, text: token.text}}}}
        models:
          resilient:
            targets:
              - {{backend: dead, model: llama3.2}}
              - {{backend: local, model: llama3.2, priority: 1}}
          inhouse: {{targets: [{{backend: nested, model: inhouse-7b}}]}}
          flat: {{targets: [{{backend: flat}}]}}
          gone: {{targets: [{{backend: local, model: missing}}]}}
        """
    )
    gw = launch(path, tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


def _models(gw: Gateway) -> list[str]:
    resp = httpx.get(f"{gw.url}/v1/models", timeout=5, trust_env=False)
    assert resp.status_code == 200
    return [m["id"] for m in resp.json()["data"]]


def _until_listed(gw: Gateway, want: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while (got := _models(gw)) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"/v1/models still lists {got}, not {want}")
        time.sleep(0.05)


def _openai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=10)


def _anthropic(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0, timeout=10)


def test_discovered_models_come_and_go(running: Gateway, ollama: OllamaServer) -> None:
    _until_listed(running, ["resilient", "inhouse", "flat", "gone", *DISCOVERED])
    ollama.models = ("qwen3:8b",)
    _until_listed(running, ["resilient", "inhouse", "flat", "gone", "ollama/qwen3:8b"])
    assert "cannot list its models" in running.log_text()  # the dead one: a warning only


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ("ollama/qwen3:8b", "hello from qwen3:8b: 5"),
        ("resilient", "hello from llama3.2: 5"),  # the dead Ollama is tried first
        ("inhouse", "hello from nested: 5"),  # stops for length, streamed and not
        ("flat", "hello from flat: 5"),
    ],
)
def test_openai_sdk_streamed_and_not(running: Gateway, model: str, text: str) -> None:
    _until_listed(running, ["resilient", "inhouse", "flat", "gone", *DISCOVERED])
    client = _openai(running)
    messages = [{"role": "user", "content": "hello"}]
    whole = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
    assert whole.choices[0].message.content == text
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None
    if whole.usage is not None:
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.parametrize("model", ["ollama/qwen3:8b", "resilient", "inhouse", "flat"])
def test_anthropic_sdk_streamed_and_not(running: Gateway, model: str) -> None:
    _until_listed(running, ["resilient", "inhouse", "flat", "gone", *DISCOVERED])
    client = _anthropic(running)
    messages = [{"role": "user", "content": "hey"}]
    msg = client.messages.create(model=model, max_tokens=32, messages=messages)  # type: ignore[arg-type]
    assert msg.content[0].type == "text" and msg.content[0].text.startswith("hello from ")
    with client.messages.stream(model=model, max_tokens=32, messages=messages) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == msg.content[0].text
    assert final.stop_reason == msg.stop_reason


def test_embeddings_and_a_tool_call_over_ollama(running: Gateway, ollama: OllamaServer) -> None:
    client = _openai(running)
    emb = client.embeddings.create(model="resilient", input=["abc"], encoding_format="float")
    assert emb.data[0].embedding == [3.0, 0.5, -0.5]
    assert ollama.received[-1][0] == "/api/embed"
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    got = client.chat.completions.create(
        model="resilient",
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,  # type: ignore[arg-type]
    )
    call = got.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert got.choices[0].finish_reason == "tool_calls"


def test_a_dead_ollama_fails_over(running: Gateway) -> None:
    resp = httpx.post(
        f"{running.url}/v1/chat/completions",
        json={"model": "resilient", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
        trust_env=False,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-proxy-backend"] == "local"
    assert resp.headers["x-proxy-attempts"] == "2"


def test_upstream_errors_reach_clients_in_their_protocol(running: Gateway) -> None:
    client = _openai(running)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gone", messages=[{"role": "user", "content": "x"}])
    assert "try pulling it first" in str(err.value)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="flat",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f"}}],  # type: ignore[list-item]
        )
    assert "tools" in str(bad.value)
