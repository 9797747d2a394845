"""The seed surfaces over real HTTP: the model catalogue, /openapi.json and /docs, key
headers (x-internal-auth), and LLM_PROXY__ environment overrides in a running gateway."""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, refused_url

pytestmark = pytest.mark.timeout(60)

OPENAI_KEY = "sk-surface-planted-31c9f0"
TEAM_KEY = "team-surface-key-77aa01"
SERVICE_KEY = "svc-internal-secret-e4b2"
ADMIN_KEY = "adm-surface-key-0c3d"
ENV = {
    "SURF_OPENAI_KEY": OPENAI_KEY,
    "SURF_TEAM_KEY": TEAM_KEY,
    "SURF_SERVICE_KEY": SERVICE_KEY,
    "LLM_PROXY__SETTINGS__ADMIN_KEY": ADMIN_KEY,
    "LLM_PROXY__SETTINGS__KEY_HEADERS": "[authorization, x-api-key, x-internal-auth]",
    "LLM_PROXY__SETTINGS__RETRIES": "0",
}
TEAM = {"authorization": f"Bearer {TEAM_KEY}"}
SERVICE = {"x-internal-auth": SERVICE_KEY}
SERVICE_BEARER = {"authorization": f"Bearer {SERVICE_KEY}"}  # for doors not yet on key_headers
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CONFIG = """
version: 1
settings:
  failure_threshold: 1
  retries: 2
backends:
  demo: {{type: mock}}
  dead:
    type: openai
    base_url: "{dead}"
    api_key: ${{SURF_OPENAI_KEY}}
  off: {{type: openai, api_key: "${{SURF_UNSET_KEY:-}}"}}
  local: {{type: openai, base_url: "{local}", discover: true}}
models:
  demo: {{targets: [{{backend: demo}}]}}
  gpt-4o:
    targets:
      - {{backend: dead, model: gpt-4o-2024-08-06}}
      - {{backend: demo, model: stand-in, priority: 1, weight: 2,
         price: {{input: 2.5, output: 10}}}}
  ghost: {{targets: [{{backend: off}}]}}
  "dead/*": {{targets: [{{backend: dead, model: "*"}}]}}
keys:
  - {{name: team, key: "${{SURF_TEAM_KEY}}", models: ["gpt-*", demo]}}
  - {{name: service, key: "${{SURF_SERVICE_KEY}}"}}
"""


@pytest.fixture(scope="module")
def local() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=("qwen3", "llama3.2")) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, local: FakeUpstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("surfaces")
    config = RoutesFile(directory)(CONFIG.format(dead=refused_url(), local=local.url))
    with serve(config, directory, env=ENV) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as c:
        yield c


def _by_id(body: dict[str, object]) -> dict[str, dict[str, object]]:
    data = body["data"]
    assert isinstance(data, list)
    return {m["id"]: m for m in data}


def test_catalogue_lists_what_the_key_may_use(client: httpx.Client) -> None:
    resp = client.get("/v1/llm/models", headers=TEAM)
    assert resp.status_code == 200, resp.text
    models = _by_id(resp.json())
    assert set(models) == {"demo", "gpt-4o"}
    gpt = models["gpt-4o"]
    assert gpt["glob"] is False and gpt["stream"] is True
    assert gpt["targets"] == [
        {"backend": "dead", "type": "openai", "model": "gpt-4o-2024-08-06", "priority": 0,
         "weight": 1, "stream": True, "enabled": True, "circuit": gpt["targets"][0]["circuit"]},
        {"backend": "demo", "type": "mock", "model": "stand-in", "priority": 1, "weight": 2,
         "stream": True, "enabled": True, "circuit": "closed",
         "price": {"input": 2.5, "output": 10.0, "cached_input": None}},
    ]  # fmt: skip


def test_catalogue_at_models_with_the_internal_auth_header(client: httpx.Client) -> None:
    resp = client.get("/models", headers=SERVICE)
    assert resp.status_code == 200, resp.text
    models = _by_id(resp.json())
    assert set(models) == {"demo", "gpt-4o", "ghost", "dead/*", "local/qwen3", "local/llama3.2"}
    assert models["local/qwen3"]["targets"][0]["model"] == "qwen3"  # discovered (discover: true)
    assert models["ghost"]["available"] is False
    assert models["ghost"]["targets"][0]["enabled"] is False
    assert models["dead/*"]["glob"] is True
    for secret in (OPENAI_KEY, TEAM_KEY, SERVICE_KEY, ADMIN_KEY, "127.0.0.1"):
        assert secret not in resp.text


def test_catalogue_shows_an_open_circuit(client: httpx.Client) -> None:
    body = {"model": "dead/m1", "messages": [{"role": "user", "content": "hi"}]}
    failed = client.post("/v1/chat/completions", json=body, headers=SERVICE_BEARER)
    assert failed.status_code in (502, 503)
    models = _by_id(client.get("/models", headers=SERVICE).json())
    # the glob's target names "*", the circuit is per concrete model: not shown as open
    assert models["dead/*"]["targets"][0]["circuit"] == "closed"
    client.post(
        "/v1/chat/completions", json={**body, "model": "gpt-4o"}, headers=SERVICE_BEARER
    )  # dead fails (threshold 1), demo answers
    gpt = _by_id(client.get("/models", headers=SERVICE).json())["gpt-4o"]
    assert gpt["targets"][0]["circuit"] == "open"
    assert gpt["available"] is True  # the demo tier still serves


def test_catalogue_needs_a_key(client: httpx.Client) -> None:
    resp = client.get("/v1/llm/models")
    assert resp.status_code == 401
    assert "x-internal-auth" in resp.json()["error"]["message"]
    assert client.get("/models", headers={"x-internal-auth": "wrong"}).status_code == 401


def test_v1_models_reads_the_key_headers_too(client: httpx.Client) -> None:
    resp = client.get("/v1/models", headers=SERVICE)
    assert resp.status_code == 200, resp.text
    listed = {m["id"] for m in resp.json()["data"]}
    assert listed == {"demo", "gpt-4o", "local/qwen3", "local/llama3.2"}  # ghost is disabled


def test_openapi_validates_as_3_1(client: httpx.Client) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    validate(doc)  # raises on an invalid document
    assert doc["openapi"].startswith("3.1")
    for path in ("/v1/chat/completions", "/v1/messages", "/chat", "/v1/llm/models", "/models"):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["x-internal-auth"] == {
        "type": "apiKey", "in": "header", "name": "x-internal-auth",
    }  # fmt: skip
    chat = doc["paths"]["/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = chat["$ref"].rsplit("/", 1)[1]
    assert {"provider", "model", "prompt", "messages", "stream"} <= set(
        doc["components"]["schemas"][name]["properties"]
    )


def test_docs_page_is_self_contained(client: httpx.Client) -> None:
    resp = client.get("/docs")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in resp.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", resp.text)  # no CDN


def test_env_overrides_show_in_admin_config(client: httpx.Client) -> None:
    resp = client.get("/admin/config", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    config = resp.json()["config"]
    assert config["settings"]["retries"] == 0
    assert config["settings"]["key_headers"] == ["authorization", "x-api-key", "x-internal-auth"]
    assert config["from_env"] == {
        "settings.admin_key": "LLM_PROXY__SETTINGS__ADMIN_KEY",
        "settings.key_headers": "LLM_PROXY__SETTINGS__KEY_HEADERS",
        "settings.retries": "LLM_PROXY__SETTINGS__RETRIES",
    }
    assert ADMIN_KEY not in resp.text


def test_check_names_a_bad_variable_and_serve_refuses(tmp_path: Path) -> None:
    config = RoutesFile(tmp_path)(CONFIG.format(dead=refused_url(), local=refused_url()))
    env = {**ENV, "PATH": "", "LLM_PROXY__SETTINGS__RETRIES": "many"}
    for command in (["check", str(config)], ["serve", "--config", str(config), "--port", "9"]):
        done = subprocess.run(
            [sys.executable, "-m", "proxy", *command],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode != 0
        assert "LLM_PROXY__SETTINGS__RETRIES: expected an integer" in done.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "proxy", "check", str(config)],
        capture_output=True, text=True, timeout=60, env={**ENV, "PATH": ""},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "settings.retries: from the environment (LLM_PROXY__SETTINGS__RETRIES)" in ok.stdout
