"""Issue 20 item 1: a half-written routes.yaml never turns client auth off.

The file is written in place in two parts, with a pause longer than the watcher's debounce
and settle time between them; the first part is a valid config that ends before `keys:`.
Unauthenticated requests run all along: none may succeed. Then the whole file is served
(keys included), and a file that says `keys: false` does turn auth off, on purpose.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy import watch
from tests.conftest import Gateway

pytestmark = pytest.mark.timeout(60)

KEY = "sk-team-a-0123456789"
HELLO = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
PREFIX = """\
version: 1
settings:
  failure_threshold: 100
backends:
  demo: {type: mock}
models:
  demo:
    targets: [{backend: demo}]
"""
REST = f"""\
keys:
  - name: team-a
    key: {KEY}
"""
PAUSE = 4 * watch.POLL + 2 * watch.SETTLE  # well past debounce and settle: the prefix is seen


def wait_until(check: Callable[[], Any], deadline: float, what: str) -> Any:
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        time.sleep(0.05)


class Prober:
    """Unauthenticated requests in a loop on a thread; records every status it gets."""

    def __init__(self, url: str) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=url, timeout=5, trust_env=False)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.statuses.append(
                    self._client.post("/v1/chat/completions", json=HELLO).status_code
                )
            except httpx.HTTPError:
                self.statuses.append(0)
            time.sleep(0.01)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()


def write_in_two_parts(path: Path, first: str, rest: str, pause: float) -> None:
    """An in-place write (truncate, then append) with a pause in the middle, as a slow
    editor, `cat > routes.yaml` or a config-management tool would leave it."""
    with path.open("w", encoding="utf-8") as f:
        f.write(first)
        f.flush()
        time.sleep(pause)
        f.write(rest)
        f.flush()


@pytest.mark.parametrize("workers", [1, 2])
def test_half_written_file_never_lets_an_unauthenticated_request_through(
    gateway: Callable[..., Gateway], tmp_path: Path, workers: int
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(PREFIX + REST)
    gw = gateway(routes, workers=workers)
    authed = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=gw.url, timeout=5, trust_env=False) as client:
        assert client.post("/v1/chat/completions", json=HELLO).status_code == 401
        assert client.post("/v1/chat/completions", json=HELLO, headers=authed).status_code == 200
        before = client.get("/admin/config").json()
        assert before["auth"]["client_auth"] == "on"
        with Prober(gw.url) as prober:
            # Rewrite with a new alias so we can tell when the complete file is live.
            marked = PREFIX + "  marker:\n    targets: [{backend: demo}]\n"
            write_in_two_parts(routes, marked, REST, PAUSE)
            wait_until(
                lambda: (
                    client.post(
                        "/v1/chat/completions", json={**HELLO, "model": "marker"}, headers=authed
                    ).status_code
                    == 200
                ),
                10,
                "the complete file live",
            )
            time.sleep(3 * watch.POLL)  # probes keep running a little past the swap
        assert prober.statuses, "the prober sent nothing"
        assert 200 not in prober.statuses, f"unauthenticated 200s: {prober.statuses.count(200)}"
        assert set(prober.statuses) == {401}, sorted(set(prober.statuses))
        after = client.get("/admin/config").json()
        assert after["auth"] == {"client_keys": 1, "client_auth": "on", "admin_key": "absent"}
        assert after["reloads"]["failed"] >= 1  # the prefix was seen, and refused
    log = gw.log_text()
    assert "CRITICAL" in log and "reload refused" in log and "keys: false" in log


def test_refused_reload_is_reported_and_keys_false_turns_auth_off_on_purpose(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(PREFIX + REST)
    gw = gateway(routes)
    with httpx.Client(base_url=gw.url, timeout=5, trust_env=False) as client:
        routes.write_text(PREFIX)  # no keys: section
        resp = client.post("/admin/reload")
        assert resp.status_code == 422, resp.text
        assert any("reload refused" in p and "keys: false" in p for p in resp.json()["problems"])
        shown = client.get("/admin/config").json()
        assert shown["auth"]["client_auth"] == "on"
        assert any("reload refused" in p for p in shown["last_reload_error"])
        assert client.post("/v1/chat/completions", json=HELLO).status_code == 401

        routes.write_text(PREFIX + "keys: false\n")
        resp = client.post("/admin/reload")
        assert resp.status_code == 200, resp.text
        assert client.get("/admin/config").json()["auth"]["client_auth"] == "off"
        assert client.post("/v1/chat/completions", json=HELLO).status_code == 200
