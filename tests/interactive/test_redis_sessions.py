"""Sessions in a real redis-server: the store contract, TTL, failing open, and two gateway
instances serving one session."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.interactive.redis_sessions import PREFIX, RedisSessions
from proxy.interactive.sessions import scope
from proxy.interactive.state import SessionState
from tests.conftest import RoutesFile, launch
from tests.interactive.store_contract import check_store
from tests.state.conftest import RedisServer, _need_redis
from tests.upstreams import FakeUpstream

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer(tmp_path)
    try:
        yield server.start()
    finally:
        server.kill()


async def test_contract_and_ttl(redis_server: RedisServer) -> None:
    store = RedisSessions(redis_server.url, ttl=90.5, timeout=1.0)
    try:
        await check_store(store)
        await store.put(scope("k", "s"), SessionState(model="m"))
        ttl = await store.client.ttl(PREFIX + scope("k", "s"))
        assert 0 < ttl <= 91  # Redis forgets an idle session by itself
        await store.client.set(PREFIX + scope("k", "junk"), b"not ours")
        assert await store.get(scope("k", "junk")) is None
    finally:
        await store.close()


async def test_an_outage_reads_as_no_session(redis_server: RedisServer) -> None:
    store = RedisSessions(redis_server.url, ttl=60, timeout=0.2)
    try:
        await store.put("a", SessionState(model="m"))
        redis_server.kill()
        assert await store.get("a") is None
        await store.put("a", SessionState())  # dropped, not raised
        assert await store.count() == 0
        assert await store.delete("a") is False
        redis_server.start()  # same port, empty (no persistence)
        await store.put("a", SessionState(model="back"))
        assert await store.get("a") == SessionState(model="back")
    finally:
        await store.close()


def test_two_instances_share_a_session(tmp_path: Path, redis_server: RedisServer) -> None:
    with FakeUpstream(models=("fast-model",)) as up:
        config = RoutesFile(tmp_path)(
            f"""
            version: 1
            settings:
              state: {redis_server.url}
            backends:
              fake: {{type: openai, base_url: "{up.url}", api_key: k}}
            models:
              fast: {{targets: [{{backend: fake, model: fast-model}}]}}
              smart: {{targets: [{{backend: fake, model: smart-model}}]}}
            """
        )
        env = {"LLM_PROXY_STATE_DIR": str(tmp_path / "state")}
        first = launch(config, tmp_path, env=env)
        try:
            second = launch(config, tmp_path, env=env)
            try:
                hello: Any = [{"role": "user", "content": "hello"}]
                for gw, text in ((first, "!/model(smart)"), (second, None)):
                    client = openai.OpenAI(
                        base_url=f"{gw.url}/v1",
                        api_key="none",
                        max_retries=0,
                        timeout=20,
                        default_headers={"x-session-id": "shared-1"},
                    )
                    messages = [{"role": "user", "content": text}] if text else hello
                    done = client.chat.completions.create(model="fast", messages=messages)
                    if text:
                        assert done.choices[0].message.content == "Model set to smart."
                assert len(up.requests) == 1  # the command went nowhere; the turn went once
                assert up.requests[0].json["model"] == "smart-model"  # via the other instance
            finally:
                second.stop()
        finally:
            first.stop()
