"""`GET /admin/sessions`: the count, one session by id and key; admin access as elsewhere.

A Litestar app holding just this handler (the full app registers it next to the other admin
views), over a real Runtime and its memory store.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from proxy import admin
from proxy.app import _render
from proxy.config import parse
from proxy.interactive.sessions import scope
from proxy.interactive.state import SessionState
from proxy.runtime import Runtime

ADMIN = {"authorization": "Bearer adm-test-key"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient[Litestar], Runtime]]:
    config = parse(
        """
version: 1
settings: {admin_key: adm-test-key, sessions: {ttl: 10m}}
backends: {demo: {type: mock}}
models: {demo: {targets: [{backend: demo}]}}
""",
        {},
    )
    runtime = Runtime(tmp_path / "routes.yaml", config)
    app = Litestar(route_handlers=[admin.admin_sessions], exception_handlers={Exception: _render})
    app.state.runtime = runtime
    with TestClient(app) as test_client:
        yield test_client, runtime


def test_count_and_one_session(client: tuple[TestClient[Litestar], Runtime]) -> None:
    http, runtime = client
    assert http.get("/admin/sessions", headers=ADMIN).json() == {"count": 0}
    state = SessionState(model="demo", params=(("temperature", "0.2"),), requests=3)
    asyncio.run(runtime.sessions.put(scope("team-a", "s1"), state))  # memory: any loop will do
    asyncio.run(runtime.sessions.put(scope("anonymous", "s2"), SessionState()))
    assert http.get("/admin/sessions", headers=ADMIN).json() == {"count": 2}
    one = http.get("/admin/sessions", params={"id": "s1", "key": "team-a"}, headers=ADMIN).json()
    assert one["session"]["model"] == "demo" and one["session"]["requests"] == 3
    assert one["session"]["params"] == {"temperature": 0.2}
    assert one["session"]["id"] == "s1" and one["session"]["key"] == "team-a"
    anonymous = http.get("/admin/sessions", params={"id": "s2"}, headers=ADMIN).json()
    assert anonymous["session"]["key"] == "anonymous"


def test_unknown_session_and_access(client: tuple[TestClient[Litestar], Runtime]) -> None:
    http, _ = client
    missing = http.get("/admin/sessions", params={"id": "s1"}, headers=ADMIN)
    assert missing.status_code == 404 and "key=NAME" in missing.json()["error"]["message"]
    assert http.get("/admin/sessions").status_code == 401
    bad = {"authorization": "Bearer nope"}
    assert http.get("/admin/sessions", headers=bad).status_code == 401
