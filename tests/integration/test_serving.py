"""`serve` options at the socket: a busy port refuses to start, `--host ::` treats IPv4
loopback clients as loopback, and HTTP/2 with prior knowledge works beside HTTP/1.1
(issue 20 items 13 and 15)."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Gateway

pytestmark = pytest.mark.timeout(60)

CONFIG = """\
version: 1
backends:
  demo: {type: mock, tokens: 8, chunks: 4}
models:
  demo:
    targets: [{backend: demo}]
"""
HELLO = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(CONFIG)
    return path


def test_a_second_gateway_on_a_busy_port_refuses_to_start(
    gateway: Callable[..., Gateway], routes: Path
) -> None:
    first = gateway(routes)
    command = [sys.executable, "-m", "proxy", "serve", "--config", str(routes),
               "--host", "127.0.0.1", "--port", str(first.port)]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 2, out.decode(errors="replace")
    assert b"already in use" in out and str(first.port).encode() in out
    with httpx.Client(base_url=first.url, timeout=5, trust_env=False) as client:
        assert client.post("/v1/chat/completions", json=HELLO).status_code == 200


def test_admin_answers_ipv4_loopback_clients_on_a_dual_stack_socket(
    gateway: Callable[..., Gateway], routes: Path
) -> None:
    gw = gateway(routes, args=("--host", "::"))  # no admin_key: loopback clients only
    with httpx.Client(base_url=gw.url, timeout=5, trust_env=False) as client:  # via 127.0.0.1
        resp = client.get("/admin/config")
    assert resp.status_code == 200, resp.text
    assert "without client keys" in gw.log_text()  # `::` is every interface: still warned


def test_http2_with_prior_knowledge_and_http1_on_the_same_port(
    gateway: Callable[..., Gateway], routes: Path
) -> None:
    gw = gateway(routes)
    with httpx.Client(base_url=gw.url, http1=False, http2=True, timeout=10, trust_env=False) as h2:
        resp = h2.post("/v1/chat/completions", json=HELLO)
        assert resp.http_version == "HTTP/2"
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
        with h2.stream("POST", "/v1/chat/completions", json={**HELLO, "stream": True}) as stream:
            assert stream.http_version == "HTTP/2"
            assert stream.status_code == 200
            lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[6:]) for line in lines[:-1]]
        assert "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
    with httpx.Client(base_url=gw.url, timeout=5, trust_env=False) as h1:
        resp = h1.post("/v1/chat/completions", json=HELLO)
        assert resp.http_version == "HTTP/1.1" and resp.status_code == 200


def test_http_1_only_when_asked(gateway: Callable[..., Gateway], routes: Path) -> None:
    gw = gateway(routes, args=("--http", "1"))
    h2 = httpx.Client(base_url=gw.url, http1=False, http2=True, timeout=5, trust_env=False)
    with h2, pytest.raises(httpx.HTTPError):
        h2.get("/health")
