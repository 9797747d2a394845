"""Health, readiness, admin views, metrics and the UI page; admin output never shows a secret.

Distinctive secrets are planted through the environment (backend keys, a header token, the
admin key, a client key); every admin, metrics and error output, and the gateway's log, is
searched for them.
"""

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, refused_url

pytestmark = pytest.mark.timeout(30)

SECRETS = {
    "ADM_T_OPENAI_KEY": "sk-planted-openai-7f3a9c61",
    "ADM_T_AZURE_KEY": "az-planted-azure-0d92e4b7",
    "ADM_T_HDR_TOKEN": "tok-planted-header-5521aa",
    "ADM_T_HDR_SECRET": "planted-shared-secret-3b8e",
    "ADM_T_ADMIN_KEY": "adm-planted-admin-4471fe",
    "ADM_T_TEAM_KEY": "team-planted-client-8820cd",
}
OTHER_TEAM_KEY = "team-planted-digest-only-61e0"  # configured only as its sha256
LIMITED_KEY = "team-c-limited-key-5e5e"  # may use models matching fa* only
BEARER_IN_HEADER = "sk-planted-bearer-9911bd"  # a secret-looking value under a plain name
ADMIN = {"authorization": f"Bearer {SECRETS['ADM_T_ADMIN_KEY']}"}
CLIENT = {"authorization": f"Bearer {SECRETS['ADM_T_TEAM_KEY']}"}
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("admin")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          admin_key: ${{ADM_T_ADMIN_KEY}}
          failure_threshold: 2
        backends:
          fake:
            type: openai
            base_url: {up.url}
            api_key: ${{ADM_T_OPENAI_KEY}}
            headers:
              X-Auth-Token: ${{ADM_T_HDR_TOKEN}}
              X-Shared-Secret: ${{ADM_T_HDR_SECRET}}
              X-Team: team-blue
          az:
            type: azure
            base_url: http://127.0.0.1:9
            api_key: ${{ADM_T_AZURE_KEY}}
          routed:
            type: openai
            base_url: {up.url}
            headers: {{X-Route-Via: "Bearer {BEARER_IN_HEADER}"}}
          dead: {{type: openai, base_url: "{refused_url()}"}}
        models:
          fake:
            targets: [{{backend: fake, model: fake-model}}]
          az:
            targets: [{{backend: az}}]
          routed:
            targets: [{{backend: routed}}]
          dead:
            targets: [{{backend: dead}}]
        keys:
          - name: team-a
            key: ${{ADM_T_TEAM_KEY}}
            models: ["*"]
          - name: team-b
            sha256: {hashlib.sha256(OTHER_TEAM_KEY.encode()).hexdigest()}
          - name: team-c
            key: {LIMITED_KEY}
            models: ["fa*"]
        """
    )
    with serve(config, directory, env=SECRETS) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10, trust_env=False) as c:
        # some traffic: two good requests, one to a refused upstream
        for model in ("fake", "fake", "dead"):
            c.post("/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=CLIENT)
        yield c


def assert_no_secret(text: str, where: str, also: tuple[str, ...] = ()) -> None:
    for secret in (*SECRETS.values(), OTHER_TEAM_KEY, *also):
        assert secret not in text, f"{where} shows a secret"


# --- liveness and readiness -----------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert resp.headers.get("x-request-id")


def test_ready_after_traffic(client: httpx.Client) -> None:
    resp = client.get("/ready")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ready"


def _dead_only(directory: Path) -> Path:
    return RoutesFile(directory)(
        f"""
        version: 1
        settings: {{failure_threshold: 2, cooldown: 600s}}
        backends:
          dead: {{type: openai, base_url: "{refused_url()}"}}
        models:
          dead:
            targets: [{{backend: dead}}]
        """
    )


def test_ready_is_503_once_every_target_is_circuit_open(tmp_path: Path) -> None:
    with (
        serve(_dead_only(tmp_path), tmp_path) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10, trust_env=False) as c,
    ):
        body = {"model": "dead", "messages": HELLO}
        assert c.post("/v1/chat/completions", json=body).status_code == 502
        assert c.get("/ready").status_code == 200  # one failure: the circuit is still closed
        assert c.post("/v1/chat/completions", json=body).status_code == 502  # now open
        resp = c.get("/ready")
        assert resp.status_code == 503, resp.text
        assert resp.json()["status"] != "ready"
        assert c.get("/health").status_code == 200  # alive all the same


def test_ready_before_any_traffic(tmp_path: Path) -> None:
    with (
        serve(_dead_only(tmp_path), tmp_path) as gateway,
        httpx.Client(base_url=gateway.url, timeout=10, trust_env=False) as c,
    ):
        resp = c.get("/ready")
        assert resp.status_code == 200, resp.text


# --- admin views ----------------------------------------------------------------------------


def test_admin_config_masks_every_secret(client: httpx.Client, gw: Gateway) -> None:
    resp = client.get("/admin/config", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert_no_secret(resp.text, "/admin/config")
    view = resp.json()
    assert view["path"] == str(gw.config_path)
    assert view["generation"] >= 1
    config = view["config"]
    assert config["settings"]["admin_key"] == "***"
    fake = config["backends"]["fake"]
    assert fake["api_key"] == "***"
    assert fake["headers"]["X-Auth-Token"] == "***"
    assert fake["headers"]["X-Shared-Secret"] == "***"
    assert fake["headers"]["X-Team"] == "team-blue"  # not a secret: shown
    assert config["backends"]["az"]["api_key"] == "***"
    assert [k["key"] for k in config["keys"]] == ["***", "***", "***"]
    assert LIMITED_KEY not in resp.text
    assert hashlib.sha256(OTHER_TEAM_KEY.encode()).hexdigest() not in resp.text
    assert set(config["models"]) == {"fake", "az", "routed", "dead"}


def test_admin_config_masks_secret_looking_header_values(client: httpx.Client) -> None:
    resp = client.get("/admin/config", headers=ADMIN)
    assert resp.status_code == 200
    assert BEARER_IN_HEADER not in resp.text
    assert resp.json()["config"]["backends"]["routed"]["headers"]["X-Route-Via"] == "***"


def test_admin_backends_after_traffic(client: httpx.Client) -> None:
    resp = client.get("/admin/backends", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert_no_secret(resp.text, "/admin/backends")
    view = resp.json()
    assert view["backends"]["fake"] == {"type": "openai", "enabled": True, "in_flight": 0}
    targets = {(t["backend"], t["model"]): t for t in view["targets"]}
    good = targets[("fake", "fake-model")]
    assert good["state"] == "closed"
    assert good["consecutive_failures"] == 0
    assert good["in_flight"] == 0
    assert good["ttfb_ewma_ms"] is not None and good["ttfb_ewma_ms"] >= 0
    bad = targets[("dead", "dead")]
    assert bad["consecutive_failures"] >= 1
    assert bad["last_error"]
    assert bad["state"] in ("closed", "open")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/admin/config"), ("GET", "/admin/backends"), ("POST", "/admin/reload")],
)
def test_admin_needs_the_admin_key(client: httpx.Client, method: str, path: str) -> None:
    for headers in ({}, CLIENT, {"authorization": "Bearer wrong-planted-guess-77"}):
        resp = client.request(method, path, headers=headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
        assert_no_secret(resp.text, path, also=("wrong-planted-guess-77",))


def test_client_auth_errors_never_echo_the_key(client: httpx.Client) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-planted-guess-77"}):
        resp = client.post(
            "/v1/chat/completions", json={"model": "fake", "messages": HELLO}, headers=headers
        )
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "authentication_error"
        assert_no_secret(resp.text, "401", also=("wrong-planted-guess-77",))
    digest_key = {"x-api-key": OTHER_TEAM_KEY}  # sha256-configured keys work too
    resp = client.post(
        "/v1/chat/completions", json={"model": "fake", "messages": HELLO}, headers=digest_key
    )
    assert resp.status_code == 200, resp.text


def test_key_limited_to_some_models(client: httpx.Client) -> None:
    limited = {"x-api-key": LIMITED_KEY}
    ok = client.post(
        "/v1/chat/completions", json={"model": "fake", "messages": HELLO}, headers=limited
    )
    assert ok.status_code == 200, ok.text
    resp = client.post(
        "/v1/chat/completions", json={"model": "az", "messages": HELLO}, headers=limited
    )
    assert resp.status_code == 403, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "permission_error"
    assert "team-c" in err["message"]
    assert LIMITED_KEY not in resp.text
    listed = client.get("/v1/models", headers={"authorization": f"Bearer {LIMITED_KEY}"})
    assert [m["id"] for m in listed.json()["data"]] == ["fake"]


def test_admin_reload_with_the_key(client: httpx.Client) -> None:
    before = client.get("/admin/config", headers=ADMIN).json()["generation"]
    resp = client.post("/admin/reload", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True
    assert resp.json()["generation"] > before
    assert_no_secret(resp.text, "/admin/reload")


# --- metrics and UI -------------------------------------------------------------------------

_SAMPLE = re.compile(
    r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*)\})?'
    r" (?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)( -?\d+)?"
)


def test_metrics_is_prometheus_text(client: httpx.Client) -> None:
    resp = client.get("/metrics")  # no key needed
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "version=0.0.4" in resp.headers["content-type"]
    assert_no_secret(resp.text, "/metrics")
    typed: dict[str, str] = {}
    samples: list[re.Match[str]] = []
    for line in resp.text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            typed[name] = kind
        elif line.startswith("#"):
            assert line.startswith("# HELP "), line
        else:
            match = _SAMPLE.fullmatch(line)
            assert match, f"not a Prometheus sample line: {line!r}"
            base = re.sub(r"_(total|count|sum|bucket|created)$", "", match["name"])
            assert match["name"] in typed or base in typed, f"no # TYPE before {line!r}"
            samples.append(match)
    names = {m["name"] for m in samples}
    assert "llm_proxy_config_generation" in names
    circuit = [m for m in samples if m["name"] == "llm_proxy_circuit_state"]
    assert any('backend="fake"' in (m["labels"] or "") for m in circuit)


def test_ui_is_html(client: httpx.Client) -> None:
    resp = client.get("/ui")  # no key needed
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "<html" in resp.text.lower()
    assert 'src="/ui/app.js"' in resp.text  # the page's code is in its own modules
    assert_no_secret(resp.text, "/ui")


def test_ui_content_type_names_one_charset(client: httpx.Client) -> None:
    ctype = client.get("/ui").headers["content-type"]
    assert ctype.lower().count("charset") == 1, ctype


def test_open_endpoints_need_no_key_and_v1_does(client: httpx.Client) -> None:
    for path in ("/health", "/ready", "/metrics", "/ui"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v1/models").status_code == 401
    listed = client.get("/v1/models", headers=CLIENT)
    assert listed.status_code == 200
    assert {m["id"] for m in listed.json()["data"]} == {"fake", "az", "routed", "dead"}


def test_gateway_log_shows_no_secret(client: httpx.Client, gw: Gateway) -> None:
    client.post("/admin/reload", headers=ADMIN)
    client.get("/admin/config", headers={"authorization": "Bearer wrong-planted-guess-77"})
    assert_no_secret(gw.log_text(), "the gateway log", also=("wrong-planted-guess-77",))


def _all_admin_text(client: httpx.Client) -> dict[str, Any]:
    return {
        path: client.get(path, headers=ADMIN).text
        for path in ("/admin/config", "/admin/backends", "/metrics", "/ready", "/v1/models")
    }


def test_no_output_anywhere_shows_a_secret(client: httpx.Client) -> None:
    for path, text in _all_admin_text(client).items():
        assert_no_secret(text, path)
