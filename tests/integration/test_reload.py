"""Hot reload: file edits (under load), invalid edits, POST /admin/reload, SIGHUP, workers.

Most tests share one gateway (module scope); each writes a whole config carrying a fresh
`marker-N` alias and waits until that alias is routable, so it knows its config is live.
Waits poll with a deadline; nothing sleeps "long enough".
"""

import asyncio
import http.client
import itertools
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import aiohttp
import httpx
import pytest
from aiohttp import web

from proxy.sse import Decoder, Event
from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, Recorded, rate_limited, slow_stream

pytestmark = pytest.mark.timeout(40)

HELLO = [{"role": "user", "content": "hi"}]
VISIBLE_WITHIN = 2.0  # seconds for an edit to become routable ("noticed within a second")


class PortRecordingUpstream(FakeUpstream):
    """A FakeUpstream that also records each request's client (gateway-side) port: the same
    port on two requests means the gateway reused one pooled connection."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[int, int] = {}

    def _record(self, request: web.Request, body: bytes) -> Recorded:
        rec = super()._record(request, body)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.ports[rec.index] = peer[1]
        return rec


def wait_until(check: Callable[[], Any], deadline: float, what: str) -> Any:
    """Poll `check` every 50 ms until it returns something truthy, or fail after `deadline`."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        time.sleep(0.05)


_markers = itertools.count(1)


def config_text(
    up: FakeUpstream, marker: str, extra_models: str = "", fake_headers: str = ""
) -> str:
    headers = f"\n    headers: {{{fake_headers}}}" if fake_headers else ""
    return (
        "version: 1\n"
        "settings: {failure_threshold: 100}\n"
        "backends:\n"
        "  demo: {type: mock}\n"
        "  fake:\n"
        "    type: openai\n"
        f"    base_url: {up.url}{headers}\n"
        "models:\n"
        "  demo:\n"
        "    targets: [{backend: demo}]\n"
        "  fake:\n"
        "    targets: [{backend: fake, model: fake-model}]\n"
        "  cool:\n"
        "    targets: [{backend: fake, model: cool-model}]\n"
        f"  {marker}:\n"
        "    targets: [{backend: demo}]\n"
        f"{extra_models}"
    )


class Reloadable:
    """The shared gateway, its config file, and a client."""

    def __init__(self, gw: Gateway, routes: RoutesFile, up: PortRecordingUpstream) -> None:
        self.gw = gw
        self.routes = routes
        self.up = up
        self.client = httpx.Client(base_url=gw.url, timeout=5, trust_env=False)
        self.marker = "marker-0"

    def status(self, model: str) -> int:
        body = {"model": model, "messages": HELLO}
        return self.client.post("/v1/chat/completions", json=body).status_code

    def admin(self) -> dict[str, Any]:
        resp = self.client.get("/admin/config")
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def apply(self, extra_models: str = "", fake_headers: str = "") -> str:
        """Write a valid config with a new marker alias; wait until the marker routes."""
        marker = f"marker-{next(_markers)}"
        self.routes(config_text(self.up, marker, extra_models, fake_headers))
        wait_until(lambda: self.status(marker) == 200, VISIBLE_WITHIN, f"{marker} routable")
        self.marker = marker
        return marker


@pytest.fixture(scope="module")
def up() -> Iterator[PortRecordingUpstream]:
    with PortRecordingUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def rl(tmp_path_factory: pytest.TempPathFactory, up: PortRecordingUpstream) -> Iterator[Reloadable]:
    directory = tmp_path_factory.mktemp("reload")
    routes = RoutesFile(directory)
    routes(config_text(up, "marker-0"))
    with serve(routes.path, directory) as gateway:
        r = Reloadable(gateway, routes, up)
        try:
            yield r
        finally:
            r.client.close()


# --- file edits under load ------------------------------------------------------------------


async def test_edit_under_load_new_alias_routable_and_no_request_fails(rl: Reloadable) -> None:
    rl.apply()
    url = f"{rl.gw.url}/v1/chat/completions"
    failures: list[str] = []
    done = 0
    stop = asyncio.Event()

    async def worker(session: aiohttp.ClientSession, model: str) -> None:
        nonlocal done
        while not stop.is_set():
            try:
                async with session.post(url, json={"model": model, "messages": HELLO}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures.append(f"{model}: {resp.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(f"{model}: {exc!r}")
            done += 1

    async def routable(session: aiohttp.ClientSession, model: str) -> float:
        """Seconds from now until `model` answers 200 (bounded by VISIBLE_WITHIN)."""
        start = time.monotonic()
        while time.monotonic() - start < VISIBLE_WITHIN:
            async with session.post(url, json={"model": model, "messages": HELLO}) as resp:
                await resp.read()
                if resp.status == 200:
                    return time.monotonic() - start
            await asyncio.sleep(0.05)
        raise AssertionError(f"{model} not routable within {VISIBLE_WITHIN}s")

    async def reported(session: aiohttp.ClientSession) -> None:
        """Wait until the gateway has seen (and rejected) the invalid edit."""
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            async with session.get(f"{rl.gw.url}/admin/config") as resp:
                if (await resp.json())["last_reload_error"]:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the invalid edit was never reported")

    def edit(text: str) -> Any:
        return asyncio.to_thread(rl.routes, text)

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [
            asyncio.create_task(worker(session, model))
            for model in ("demo", "fake", rl.marker, "fake")
        ]
        try:
            began = time.monotonic()
            await asyncio.sleep(0.3)  # load is running before the first edit
            extra = "  fresh-a:\n    targets: [{backend: fake, model: fresh-a-model}]\n"
            await edit(config_text(rl.up, rl.marker, extra))
            await routable(session, "fresh-a")
            await edit(config_text(rl.up, rl.marker, extra) + "  broken: [\n")  # invalid
            await reported(session)
            extra += "  fresh-b:\n    targets: [{backend: demo}]\n"
            await edit(config_text(rl.up, rl.marker, extra))
            await routable(session, "fresh-b")
            # keep the load on until ~3 s in all
            await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - began)))
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), timeout=10)
    assert failures == []
    assert done > 20, "the load never ran"
    assert rl.status("fresh-a") == 200


# --- invalid edits --------------------------------------------------------------------------


def _where(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of `needle` in `text`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in text")


def test_invalid_edit_keeps_serving_and_reports_line_and_column(rl: Reloadable) -> None:
    marker = rl.apply()
    generation = rl.admin()["generation"]
    path = str(rl.routes.path)

    # a reference error: the problem points at the unknown backend's name
    bad = config_text(rl.up, marker, "  typo:\n    targets: [{backend: nosuch-backend}]\n")
    rl.routes(bad)
    line, col = _where(bad, "nosuch-backend")
    errors = wait_until(
        lambda: rl.admin()["last_reload_error"], 3.0, "last_reload_error after a bad edit"
    )
    assert any(e.startswith(f"{path}:{line}:{col}: ") and "nosuch-backend" in e for e in errors), (
        errors,
        (line, col),
    )
    assert rl.status(marker) == 200  # the last good config keeps serving
    assert rl.status("typo") == 404
    assert rl.admin()["generation"] == generation
    log = wait_until(lambda: f"{path}:{line}:{col}: " in rl.gw.log_text(), 2.0, "error in the log")
    assert log

    # a YAML syntax error: still PATH:LINE:COL
    broken = config_text(rl.up, marker) + "  unclosed: [{backend: demo}\n"
    rl.routes(broken)
    errors = wait_until(
        lambda: [e for e in rl.admin()["last_reload_error"] or () if "nosuch" not in e],
        3.0,
        "the syntax error reported",
    )
    assert all(re.match(rf"{re.escape(path)}:\d+:\d+: \S", e) for e in errors), errors
    assert rl.status(marker) == 200
    assert rl.admin()["generation"] == generation

    # POST /admin/reload says the same, and keeps the old config
    resp = rl.client.post("/admin/reload")
    assert resp.status_code == 422, resp.text
    assert resp.json()["ok"] is False
    assert resp.json()["generation"] == generation
    assert all(p.startswith(f"{path}:") for p in resp.json()["problems"])

    rl.apply()  # a good edit clears the error
    assert rl.admin()["last_reload_error"] is None
    assert rl.admin()["reloads"]["failed"] >= 2


# --- admin reload and SIGHUP ----------------------------------------------------------------


def test_admin_reload_on_loopback_without_admin_key(rl: Reloadable) -> None:
    before = rl.admin()["generation"]
    resp = rl.client.post("/admin/reload")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True
    assert body["generation"] > before
    assert body["problems"] == []
    assert rl.admin()["generation"] >= body["generation"]


def test_sighup_reloads(rl: Reloadable) -> None:
    marker = rl.marker
    before = rl.admin()["generation"]
    os.kill(rl.gw.proc.pid, signal.SIGHUP)
    wait_until(lambda: rl.admin()["generation"] > before, 3.0, "a reload after SIGHUP")
    assert rl.gw.proc.poll() is None  # reloaded in place, not restarted
    assert rl.status(marker) == 200


# --- connection pools -----------------------------------------------------------------------


def test_connection_pool_of_unchanged_backend_survives_reload(rl: Reloadable) -> None:
    rl.apply()
    up = rl.up

    def ports_of_next(count: int) -> set[int]:
        """Client ports of the next `count` sequential requests to the `fake` backend (the
        pool may hold several idle connections and hand them out in turn)."""
        n = len(up.requests)
        for _ in range(count):
            assert rl.status("fake") == 200
        up.wait_for_requests(n + count)
        return {up.ports[i] for i in range(n, n + count)}

    pool = ports_of_next(8)
    if not ports_of_next(8) <= pool:
        pytest.skip("the gateway did not reuse its upstream connections even without a reload")
    rl.apply()  # a new alias; backend `fake` unchanged
    assert ports_of_next(8) <= pool, "an unchanged backend's connection pool was replaced"
    rl.apply(fake_headers="X-Changed: yes")  # backend `fake` changed: a new pool is right
    n = len(up.requests)
    after = ports_of_next(4)
    assert up.requests[n].headers.get("x-changed") == "yes"
    assert not after & pool


def test_circuit_state_of_unchanged_target_survives_reload(rl: Reloadable) -> None:
    rl.apply()
    rl.up.script(rate_limited(retry_after="120"))  # cools target fake/cool-model for 120 s
    assert rl.status("cool") == 429
    assert rl.status("cool") == 503  # every target of `cool` is cooling down
    rl.apply()  # backend `fake` unchanged: its targets' circuits are kept
    assert rl.status("cool") == 503, "an unchanged target's open circuit was reset by a reload"
    rl.apply(fake_headers="X-Changed: circuit")  # backend changed: its circuits start afresh
    assert rl.status("cool") == 200


def test_in_flight_stream_finishes_on_the_config_it_started_with(rl: Reloadable) -> None:
    rl.apply()
    rl.up.script(slow_stream(interval=0.15, chunks=6))
    without_fake = (
        "version: 1\n"
        "backends: {demo: {type: mock}}\n"
        "models:\n"
        "  demo: {targets: [{backend: demo}]}\n"
        "  gone-marker: {targets: [{backend: demo}]}\n"
    )
    decoder = Decoder()
    events: list[Event] = []
    body = {"model": "fake", "messages": HELLO, "stream": True}
    with rl.client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        chunks = resp.iter_raw()
        while not any(e.data.startswith("{") and "w0" in e.data for e in events):
            events.extend(decoder.feed(next(chunks)))
        rl.routes(without_fake)  # the stream's backend and alias disappear mid-stream
        wait_until(lambda: rl.status("gone-marker") == 200, VISIBLE_WITHIN, "the new config")
        assert rl.status("fake") == 404
        for raw in chunks:
            events.extend(decoder.feed(raw))
    assert events[-1].data == "[DONE]"
    assert not any('"error"' in e.data for e in events)
    text = "".join(
        c["delta"].get("content") or "" for e in events[:-1] for c in json.loads(e.data)["choices"]
    )
    assert text == "w0 w1 w2 w3 w4 w5"


# --- the admin key --------------------------------------------------------------------------


def test_admin_key_guards_admin_endpoints(
    gateway: Callable[..., Gateway], routes_file: RoutesFile
) -> None:
    key = "rl-admin-key-9a7c31"
    path = routes_file(
        """
        version: 1
        settings: {admin_key: "${RL_TEST_ADMIN_KEY}"}
        backends: {demo: {type: mock}}
        models: {demo: {targets: [{backend: demo}]}}
        """
    )
    gw = gateway(path, env={"RL_TEST_ADMIN_KEY": key})
    with httpx.Client(base_url=gw.url, timeout=5, trust_env=False) as c:
        for headers in ({}, {"authorization": "Bearer not-the-key"}, {"authorization": key}):
            assert c.get("/admin/config", headers=headers).status_code == 401, headers
            assert c.post("/admin/reload", headers=headers).status_code == 401, headers
        good = {"authorization": f"Bearer {key}"}
        resp = c.get("/admin/config", headers=good)
        assert resp.status_code == 200
        assert key not in resp.text
        before = resp.json()["generation"]
        reload = c.post("/admin/reload", headers=good)
        assert reload.status_code == 200, reload.text
        assert reload.json()["ok"] is True
        assert reload.json()["generation"] > before
        assert c.get("/admin/backends", headers=good).status_code == 200


# --- several workers ------------------------------------------------------------------------


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _fresh(gw: Gateway, method: str, path: str, body: Any = None) -> Answer:
    """One request on a new connection, so that any worker may take it."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def _worker_of(resp: Answer) -> str:
    """The answering worker: request ids start with a random per-process prefix."""
    rid = resp.headers["x-request-id"]
    match = re.match(r"(req_[0-9a-f]{12})", rid)
    assert match, rid
    return match.group(1)


def _fresh_batch(gw: Gateway, count: int, method: str, path: str, body: Any = None) -> list[Answer]:
    """`count` requests at once, each on its own new connection. Concurrency matters: an idle
    worker that just went back to waiting tends to win every accept, so sequential requests
    may all land on one worker."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: _fresh(gw, method, path, body), range(count)))


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, up: PortRecordingUpstream
) -> Iterator[tuple[Gateway, RoutesFile, set[str]]]:
    directory = tmp_path_factory.mktemp("workers")
    routes = RoutesFile(directory)
    routes(config_text(up, "marker-0"))
    with serve(routes.path, directory, workers=2) as gateway:
        seen: set[str] = set()
        # The second worker may still be starting (the health wait sees the first): keep
        # asking, bounded by a deadline rather than a count.
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            seen.update(_worker_of(a) for a in _fresh_batch(gateway, 16, "GET", "/health"))
            if len(seen) < 2:
                time.sleep(0.1)
        assert len(seen) == 2, "only one of two workers ever answered"
        yield gateway, routes, seen


def test_workers_an_edit_reaches_both(
    two_workers: tuple[Gateway, RoutesFile, set[str]], up: PortRecordingUpstream
) -> None:
    gw, routes, workers = two_workers
    extra = "  fresh:\n    targets: [{backend: demo}]\n"
    routes(config_text(up, "marker-0", extra))
    served: set[str] = set()
    body = {"model": "fresh", "messages": HELLO}

    def both_serve_it() -> bool:
        for answer in _fresh_batch(gw, 8, "POST", "/v1/chat/completions", body):
            if answer.status == 200:
                served.add(_worker_of(answer))
        return served == workers

    wait_until(both_serve_it, 4.0, "both workers route the new alias")
    answers = _fresh_batch(gw, 40, "POST", "/v1/chat/completions", body)
    assert [a.status for a in answers] == [200] * 40


def test_workers_admin_reload_and_sighup_reach_both(
    two_workers: tuple[Gateway, RoutesFile, set[str]],
) -> None:
    gw, _, workers = two_workers

    def generations() -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {}
        for _ in range(20):  # bounded
            for answer in _fresh_batch(gw, 16, "GET", "/admin/config"):
                seen.setdefault(_worker_of(answer), []).append(answer.json()["generation"])
            if set(seen) == workers:
                return seen
        raise AssertionError("could not reach both workers")

    def all_past(before: dict[str, list[int]]) -> bool:
        return all(min(g) > max(before[w]) for w, g in generations().items())

    before = generations()
    resp = _fresh(gw, "POST", "/admin/reload")
    assert resp.status == 200 and resp.json()["ok"] is True
    wait_until(lambda: all_past(before), 4.0, "every worker reloaded after POST /admin/reload")

    before = generations()
    os.kill(gw.proc.pid, signal.SIGHUP)
    wait_until(lambda: all_past(before), 4.0, "every worker reloaded after SIGHUP")
    assert gw.proc.poll() is None
