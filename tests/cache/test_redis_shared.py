"""Two gateways sharing one real redis-server share cache entries: what one stored, the other
serves (in either form), with no upstream call."""

import uuid
from pathlib import Path

import httpx

from tests.conftest import RoutesFile, serve
from tests.state.conftest import RedisServer
from tests.upstreams import FakeUpstream


def test_two_gateways_share_entries_through_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with FakeUpstream(wire="openai", models=("fake-model",)) as up:
        config = RoutesFile(tmp_path)(
            f"""
            version: 1
            settings:
              state: {redis_server.url}
              state_timeout: 2s
              cache: {{ttl: 10m}}
            backends:
              oa: {{type: openai, base_url: "{up.url}", api_key: sk-up}}
            models:
              gpt: {{targets: [{{backend: oa, model: fake-model}}]}}
            """
        )
        body = {"model": "gpt", "messages": [{"role": "user", "content": str(uuid.uuid4())}]}
        with serve(config, tmp_path) as one, serve(config, tmp_path) as two:
            first = httpx.post(one.url + "/v1/chat/completions", json=body, timeout=20)
            assert first.status_code == 200 and first.headers["x-proxy-cache"] == "miss"
            second = httpx.post(two.url + "/v1/chat/completions", json=body, timeout=20)
            assert second.headers["x-proxy-cache"] == "hit"
            assert second.json() == first.json()
            streamed = httpx.post(
                two.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=20
            )
            assert streamed.headers["x-proxy-cache"] == "hit" and b"[DONE]" in streamed.content
            assert len(up.requests) == 1
