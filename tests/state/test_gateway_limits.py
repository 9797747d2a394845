"""Limits, budgets and the ledger through real gateways: exact across workers and across
instances on one Redis, refusals in each front door's shape, usage equal to what the
upstream reported."""

import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Gateway, RoutesFile, launch
from tests.state.conftest import RedisServer

KEY = "sk-team-limits-0123456789"
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def config(state: str = "memory", key_extra: str = "rpm: 10") -> str:
    return f"""
        version: 1
        settings:
          state: {state}
          state_failure: closed
        backends:
          demo: {{type: mock}}
        models:
          demo:
            targets: [{{backend: demo, price: {{input: 1000, output: 2000}}}}]
          other:
            targets: [{{backend: demo}}]
        keys:
          - {{name: team, key: {KEY}, models: [demo], {key_extra}}}
        """


def post(
    url: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    try:
        with _direct.open(request, timeout=20) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def chat(model: str = "demo", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def burst(urls: list[str], n: int) -> list[tuple[int, dict[str, str], bytes]]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(post, urls[i % len(urls)], chat()) for i in range(n)]
        return [f.result(timeout=30) for f in futures]


@pytest.mark.timeout(90)
def test_rpm_is_exact_across_two_workers(
    routes_file: RoutesFile, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gw = gateway(routes_file(config()), workers=2, env={"LLM_PROXY_STATE_DIR": str(tmp_path)})
    results = burst([gw.url], 40)
    statuses = sorted(s for s, _, _ in results)
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 30
    for status, headers, body in results:
        assert headers["x-ratelimit-limit-requests"] == "10"
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert json.loads(body)["error"]["type"] == "rate_limit_error"


@pytest.mark.timeout(90)
def test_rpm_is_exact_across_two_instances_on_one_redis(
    routes_file: RoutesFile, redis_server: RedisServer, tmp_path: Path
) -> None:
    path = routes_file(config(state=redis_server.url))
    first = launch(path, tmp_path)
    try:
        second = launch(path, tmp_path)
        try:
            results = burst([first.url, second.url], 40)
        finally:
            second.stop()
    finally:
        first.stop()
    statuses = [s for s, _, _ in results]
    assert statuses.count(200) == 10, sorted(statuses)
    assert statuses.count(429) == 30


@pytest.mark.timeout(60)
def test_a_model_the_key_may_not_use_costs_no_request(
    routes_file: RoutesFile, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gw = gateway(
        routes_file(config(key_extra="rpm: 2")), env={"LLM_PROXY_STATE_DIR": str(tmp_path)}
    )
    for _ in range(5):
        assert post(gw.url, chat("other"))[0] == 403
    assert [post(gw.url, chat())[0] for _ in range(3)] == [200, 200, 429]


@pytest.mark.timeout(60)
def test_sdks_see_rate_limit_errors_with_a_usable_retry_after(
    routes_file: RoutesFile, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gw = gateway(
        routes_file(config(key_extra="rpm: 1")), env={"LLM_PROXY_STATE_DIR": str(tmp_path)}
    )
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0, timeout=10)
    client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    assert int(caught.value.response.headers["retry-after"]) >= 1
    claude = anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=10)
    with pytest.raises(anthropic.RateLimitError) as refused:
        claude.messages.create(
            model="demo", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def usage_of(body: bytes, stream: bool, anthropic_front: bool) -> tuple[int, int]:
    if not stream:
        doc = json.loads(body)
        u = doc["usage"]
        return (u["input_tokens"], u["output_tokens"]) if anthropic_front else (
            u["prompt_tokens"], u["completion_tokens"])  # fmt: skip
    found = (0, 0)
    for line in body.decode().splitlines():
        if not line.startswith("data: {"):
            continue
        doc = json.loads(line[6:])
        if anthropic_front:
            if doc.get("type") == "message_start":
                found = (doc["message"]["usage"]["input_tokens"], found[1])
            if doc.get("type") == "message_delta":  # may repeat input_tokens, final
                found = (
                    doc["usage"].get("input_tokens") or found[0],
                    doc["usage"]["output_tokens"],
                )
        elif doc.get("usage"):
            found = (doc["usage"]["prompt_tokens"], doc["usage"]["completion_tokens"])
    return found


@pytest.mark.timeout(90)
def test_ledger_equals_reported_usage_and_survives_a_restart(
    routes_file: RoutesFile, tmp_path: Path
) -> None:
    path = routes_file(config(key_extra="rpm: 100, budget: {usd: 100, period: 1d}"))
    env = {"LLM_PROXY_STATE_DIR": str(tmp_path / "state")}
    gw = launch(path, tmp_path, env=env)
    seen = [0, 0]
    try:
        for stream in (False, True):
            body = {**chat(stream=stream), "stream_options": {"include_usage": True}}
            if not stream:
                body.pop("stream_options")
            status, _, raw = post(gw.url, body)
            assert status == 200
            inp, out = usage_of(raw, stream, False)
            seen[0] += inp
            seen[1] += out
            message = {
                "model": "demo", "max_tokens": 20, "stream": stream,
                "messages": [{"role": "user", "content": "hello there"}],
            }  # fmt: skip
            status, _, raw = post(gw.url, message, "/v1/messages")
            assert status == 200
            inp, out = usage_of(raw, stream, True)
            seen[0] += inp
            seen[1] += out
        assert seen[0] > 0 and seen[1] > 0
    finally:
        gw.stop()  # the ledger's last second is flushed on shutdown
    gw = launch(path, tmp_path, env=env)
    try:
        deadline = time.monotonic() + 5
        while True:
            with _direct.open(f"{gw.url}/admin/usage?group=key&format=json", timeout=10) as r:
                rows = json.loads(r.read())
            rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        gw.stop()
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["requests"] == 4
    assert (row["input_tokens"], row["output_tokens"]) == tuple(seen)
    expected_cost = seen[0] * 1000 / 1e6 + seen[1] * 2000 / 1e6
    assert row["cost"] == pytest.approx(expected_cost)
