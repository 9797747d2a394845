"""A running gateway with `type: ollama` backends: discovered models appear in `/v1/models`
with no alias written and go when the server stops listing them; requests route to them;
a dead Ollama fails over to the next target. (Streams from NDJSON upstreams need the
request-path core to decode lines; see the branch report.)"""

import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.backends.servers import OllamaServer
from tests.conftest import Gateway, RoutesFile, free_port, launch

DEADLINE = 10.0


@pytest.fixture
def running(ollama: OllamaServer, routes_file: RoutesFile, tmp_path: Path) -> Iterator[Gateway]:
    path = routes_file(
        f"""
        version: 1
        settings: {{failure_threshold: 1, retries: 2}}
        backends:
          local: {{type: ollama, base_url: "{ollama.url}", discover: 100ms}}
          dead: {{type: ollama, base_url: "http://127.0.0.1:{free_port()}", discover: 100ms}}
        models:
          resilient:
            targets:
              - {{backend: dead, model: llama3.2}}
              - {{backend: local, model: llama3.2, priority: 1}}
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


def test_discovered_models_come_and_go(running: Gateway, ollama: OllamaServer) -> None:
    _until_listed(running, ["resilient", "ollama/llama3.2:latest", "ollama/qwen3:8b"])
    ollama.models = ("qwen3:8b",)
    _until_listed(running, ["resilient", "ollama/qwen3:8b"])
    assert "cannot list its models" in running.log_text()  # the dead one: a warning, no failure


def test_both_sdks_reach_a_discovered_model(running: Gateway, ollama: OllamaServer) -> None:
    _until_listed(running, ["resilient", "ollama/llama3.2:latest", "ollama/qwen3:8b"])
    oa = openai.OpenAI(base_url=f"{running.url}/v1", api_key="x", max_retries=0, timeout=10)
    got = oa.chat.completions.create(
        model="ollama/qwen3:8b", messages=[{"role": "user", "content": "hello"}]
    )
    assert got.choices[0].message.content == "hello from qwen3:8b: 5"
    assert got.usage is not None and got.usage.prompt_tokens == 7
    assert ollama.received[-1][0] == "/api/chat"
    an = anthropic.Anthropic(base_url=running.url, api_key="x", max_retries=0, timeout=10)
    msg = an.messages.create(
        model="ollama/qwen3:8b", max_tokens=32, messages=[{"role": "user", "content": "hey"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "hello from qwen3:8b: 3"
    emb = oa.embeddings.create(model="ollama/qwen3:8b", input=["abc"], encoding_format="float")
    assert emb.data[0].embedding == [3.0, 0.5, -0.5]


def test_a_dead_ollama_fails_over(running: Gateway, ollama: OllamaServer) -> None:
    resp = httpx.post(
        f"{running.url}/v1/chat/completions",
        json={"model": "resilient", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
        trust_env=False,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-proxy-backend"] == "local"
    assert resp.headers["x-proxy-attempts"] == "2"
    assert resp.json()["choices"][0]["message"]["content"] == "hello from llama3.2: 2"
