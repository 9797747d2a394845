"""docs/scale-out.md for real, without containers: three gateways on the deploy config, one Redis.

The three replicas run `deploy/conf/routes.yaml` itself (only the Redis address is this test's
server, and a client key with a limit is switched on, as the file's comment says to), all
reading one ConfigMap-style directory, as the Compose and Kubernetes deployments do. A key's
`rpm` holds across the replicas together, and a config change swapped into the directory
becomes live on every replica.
"""

import concurrent.futures
import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Gateway, launch
from tests.deploy.support import ConfigMapVolume, wait_until
from tests.state.conftest import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, shared with tests/state

pytestmark = pytest.mark.timeout(90)

KEY = "sk-scale-out-test-0123456789"
RPM = 6
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def deploy_config(redis_url: str, extra_models: str = "") -> str:
    text = (REPO / "deploy" / "conf" / "routes.yaml").read_text()
    assert "redis://redis:6379/0" in text
    text = text.replace("redis://redis:6379/0", redis_url)
    keys = text.index("# keys:")
    uncommented = "\n".join(line.removeprefix("# ") for line in text[keys:].splitlines())
    uncommented = uncommented.replace("rpm: 600", f"rpm: {RPM}")
    return text[:keys].replace("models:\n", f"models:\n{extra_models}", 1) + uncommented + "\n"


def post(url: str) -> int:
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(
        url + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    try:
        with _direct.open(request, timeout=20) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def models(url: str) -> set[str]:
    request = urllib.request.Request(url + "/v1/models", headers={"authorization": f"Bearer {KEY}"})
    with _direct.open(request, timeout=5) as resp:
        return {m["id"] for m in json.loads(resp.read())["data"]}


@pytest.fixture
def replicas(
    tmp_path: Path, redis_server: RedisServer
) -> Iterator[tuple[ConfigMapVolume, list[Gateway]]]:
    volume = ConfigMapVolume(tmp_path / "etc-llm-proxy")
    volume.root.mkdir()
    path = volume.create(deploy_config(redis_server.url))
    started: list[Gateway] = []
    try:
        for _ in range(3):
            started.append(launch(path, tmp_path, env={"TEAM_A_KEY": KEY}))
        yield volume, started
    finally:
        for gw in started:
            gw.stop()


def test_three_replicas_share_one_limit_and_one_config(
    replicas: tuple[ConfigMapVolume, list[Gateway]], redis_server: RedisServer
) -> None:
    volume, gateways = replicas
    targets = list(itertools.islice(itertools.cycle(g.url for g in gateways), 3 * RPM))
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(post, targets))
    # one key, one minute: RPM answers in total across the three, not RPM on each
    assert statuses.count(200) == RPM, statuses
    assert statuses.count(429) == 2 * RPM, statuses

    marker = "  rolled-out:\n    targets: [{backend: demo}]\n"
    volume.update(deploy_config(redis_server.url, extra_models=marker))
    for gw in gateways:
        wait_until(lambda gw=gw: "rolled-out" in models(gw.url), f"{gw} has the new config")
