"""`settings.metrics_key` protects /metrics; /admin/config shows the state settings masked."""

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from tests.conftest import Gateway, RoutesFile

METRICS_KEY = "metrics-planted-key-4c1d"
REDIS_PASSWORD = "redis-planted-pw-90ab"
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with _direct.open(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.timeout(60)
def test_metrics_needs_the_metrics_key_when_set(
    routes_file: RoutesFile, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    path = routes_file(
        f"""
        version: 1
        settings:
          metrics_key: {METRICS_KEY}
          state: redis://:{REDIS_PASSWORD}@127.0.0.1:9/0
          state_failure: closed
        backends:
          demo: {{type: mock}}
        models:
          demo:
            targets: [{{backend: demo, price: {{input: 1, output: 2}}}}]
        keys:
          - {{name: team, key: k-1, max_parallel: 2, budget: {{usd: 5, period: 1d}}}}
        """
    )
    gw = gateway(path, env={"LLM_PROXY_STATE_DIR": str(tmp_path)})
    status, body = _get(f"{gw.url}/metrics")
    assert status == 401 and b"metrics_key" in body and METRICS_KEY.encode() not in body
    assert _get(f"{gw.url}/metrics", "wrong")[0] == 401
    status, body = _get(f"{gw.url}/metrics", METRICS_KEY)
    assert status == 200 and b"llm_proxy_state_failures_total" in body
    status, body = _get(f"{gw.url}/admin/config")  # loopback: no admin key configured
    assert status == 200
    settings = msgspec.json.decode(body)["config"]["settings"]
    assert settings["state"] == "redis://***@127.0.0.1:9/0"
    assert (settings["state_failure"], settings["metrics_key"]) == ("closed", "***")
    assert REDIS_PASSWORD.encode() not in body and METRICS_KEY.encode() not in body
    key = msgspec.json.decode(body)["config"]["keys"][0]
    assert (key["max_parallel"], key["budget"]) == (2, {"usd": 5.0, "period": "1d"})
