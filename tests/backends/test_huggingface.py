"""`type: huggingface` (OpenAI-compatible router / TGI / TEI) and `discover: true` on an
OpenAI-compatible server, through a running gateway against the fake OpenAI upstream."""

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from proxy.config import parse
from proxy.providers import adapter
from tests.conftest import Gateway, RoutesFile
from tests.upstreams import FakeUpstream

DEADLINE = 10.0


def test_the_preset_builds_openai_requests_with_the_hf_token() -> None:
    c = parse("version: 1\nbackends: {hf: {type: huggingface}}\nmodels: {}\n", {"HF_TOKEN": "t"})
    req = adapter(c.backends[0]).build("chat", b"{}", "meta-llama/Llama-3.1-8B-Instruct", True)
    assert req.url == "https://router.huggingface.co/v1/chat/completions"
    assert ("authorization", "Bearer t") in req.headers
    emb = adapter(c.backends[0]).build("embeddings", b"{}", "BAAI/bge-m3", False)
    assert emb.url == "https://router.huggingface.co/v1/embeddings"


def test_a_discovering_hf_endpoint_serves_both_kinds_of_request(
    make_upstream: Callable[..., FakeUpstream],
    routes_file: RoutesFile,
    gateway: Callable[..., Gateway],
    tmp_path: Path,
) -> None:
    up = make_upstream(models=("meta-llama/Llama-3.1-8B-Instruct", "BAAI/bge-m3"))
    path = routes_file(
        f"""
        version: 1
        backends:
          tgi: {{type: huggingface, base_url: "{up.url}", discover: true, prefix: hf}}
        models: {{}}
        """
    )
    gw = gateway(path, env={"HF_TOKEN": "hf_test_token"})
    want = ["hf/meta-llama/Llama-3.1-8B-Instruct", "hf/BAAI/bge-m3"]
    deadline = time.monotonic() + DEADLINE
    while (
        got := [m["id"] for m in httpx.get(f"{gw.url}/v1/models", trust_env=False).json()["data"]]
    ) != want:
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=10)
    answer = client.chat.completions.create(
        model="hf/meta-llama/Llama-3.1-8B-Instruct",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert answer.choices[0].message.content
    sent = [r for r in up.requests if r.method == "POST"][-1]
    assert sent.json["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert sent.headers["authorization"] == "Bearer hf_test_token"
    listing = next(r for r in up.requests if r.method == "GET")
    assert listing.path == "/v1/models"
    assert listing.headers["authorization"] == "Bearer hf_test_token"
    with client.chat.completions.stream(
        model="hf/meta-llama/Llama-3.1-8B-Instruct", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == answer.choices[0].message.content
