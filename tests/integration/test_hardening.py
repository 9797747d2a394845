"""Issue 20's defects, one regression test each, against real gateway processes and real
upstreams that misbehave the way the adversarial pass found: endless frames, error frames
that quote keys, compressed answers, secret-looking rate-limit headers."""

import asyncio
import gzip
import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Gateway, RoutesFile, launch
from tests.integration.observability_support import access_lines

KEY_IN_ERROR = "sk-proj-planted0123456789abcdef"
CONTENT = (
    b'data: {"id":"c1","object":"chat.completion.chunk",'
    b'"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
)
DONE = b"data: [DONE]\n\n"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Misbehaving:
    """An aiohttp upstream in its own thread whose one route the test writes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((dict(request.headers), await request.read()))
        return await self.handler(request)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> "Misbehaving":
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._runner is not None
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def routes(upstream_url: str, extra_settings: str = "", keys: str = "") -> str:
    return f"""
        version: 1
        settings:
          timeouts: {{connect: 1s, first_byte: 5s, idle: 5s, total: 20s, client_body: 0.5s}}
          max_body: 1MiB
          {extra_settings}
        backends:
          up: {{type: openai, base_url: "{upstream_url}", api_key: sk-upstream-0123456789}}
          demo: {{type: mock}}
        models:
          m: {{targets: [{{backend: up, model: up-model}}]}}
          demo: {{targets: [{{backend: demo}}]}}
          "up/*": {{targets: [{{backend: up, model: "*"}}]}}
        {keys}
        """


def request(
    gw: Gateway,
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request(method, path, raw, {"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def chat(model: str = "m", stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


@pytest.fixture
def start(routes_file: RoutesFile, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def go(text: str) -> Gateway:
        gw = launch(routes_file(text), tmp_path)
        started.append(gw)
        return gw

    try:
        yield go
    finally:
        for gw in started:
            gw.stop()


# --- item 2: an endless frame is bounded and fails the attempt -----------------------------


async def endless_frame(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(CONTENT)
    piece = b"x" * 65536
    try:
        for _ in range(400):  # 26 MB, more than the 16 MiB bound, never a frame end
            await resp.write(piece)
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


@pytest.mark.timeout(60)
def test_endless_frame_after_commit_ends_the_stream_with_an_error(
    start: Callable[..., Gateway],
) -> None:
    with Misbehaving(endless_frame) as up:
        gw = start(routes(up.url))
        status, _, body = request(gw, chat(stream=True))
        assert status == 200
        assert body.startswith(CONTENT)
        assert b"over 16777216 bytes" in body and b'"error"' in body
        assert not body.rstrip().endswith(DONE.strip())
        assert request(gw, chat("demo"))[0] == 200, "the worker still answers others"


# --- item 3 --------------------------------------------------------------------------------


async def openai_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(
        CONTENT
        + b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        + DONE
    )
    return resp


def test_null_stream_options_with_stream_is_served(start: Callable[..., Gateway]) -> None:
    with Misbehaving(openai_stream) as up:
        gw = start(routes(up.url))
        status, _, body = request(gw, chat(stream=True, stream_options=None))
        assert status == 200 and body.rstrip().endswith(b"[DONE]")
        sent = json.loads(up.seen[-1][1])
        assert sent["stream_options"] == {"include_usage": True}


# --- item 6 --------------------------------------------------------------------------------


def test_control_characters_in_a_glob_model_never_reach_the_upstream(
    start: Callable[..., Gateway],
) -> None:
    with Misbehaving(openai_stream) as up:
        gw = start(routes(up.url))
        status, _, body = request(gw, chat("up/a\r\nx-evil: 1"))
        assert status == 400
        assert json.loads(body)["error"]["param"] == "model"
        assert up.seen == []


# --- item 4: a body that never arrives -----------------------------------------------------


@pytest.mark.timeout(30)
def test_a_body_that_stalls_gets_408(start: Callable[..., Gateway]) -> None:
    gw = start(routes("http://127.0.0.1:9/v1"))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b'content-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":'
        )
        t0 = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"client_body" in answer
    assert time.monotonic() - t0 < 8


# --- item 5: cross-site requests, rebinding, CORS -------------------------------------------


def test_non_json_bodies_get_415(start: Callable[..., Gateway]) -> None:
    gw = start(routes("http://127.0.0.1:9/v1"))
    status, _, body = request(gw, chat("demo"), {"content-type": "text/plain"})
    assert status == 415
    assert "application/json" in json.loads(body)["error"]["message"]


def test_a_rebinding_host_is_refused_everywhere(start: Callable[..., Gateway]) -> None:
    gw = start(routes("http://127.0.0.1:9/v1"))
    for path, method, body in (
        ("/v1/chat/completions", "POST", chat("demo")),
        ("/admin/config", "GET", b""),
    ):
        status, _, raw = request(gw, body, {"host": "evil.example:8080"}, path, method)
        assert status == 403, path
        assert "allowed_hosts" in json.loads(raw)["error"]["message"]
    assert request(gw, chat("demo"), {"host": "localhost:8080"})[0] == 200
    assert request(gw, b"", {"host": "127.0.0.1"}, "/admin/config", "GET")[0] == 200


def test_allowed_hosts_and_cors_origins(start: Callable[..., Gateway]) -> None:
    extra = 'allowed_hosts: ["gw.internal"]\n          cors_origins: ["https://app.example"]'
    gw = start(routes("http://127.0.0.1:9/v1", extra))
    assert request(gw, chat("demo"), {"host": "gw.internal:8080"})[0] == 200
    assert request(gw, chat("demo"), {"host": "localhost"})[0] == 403
    good = {"host": "gw.internal", "origin": "https://app.example"}
    pre = {**good, "access-control-request-method": "POST",
           "access-control-request-headers": "content-type, authorization"}  # fmt: skip
    status, headers, _ = request(gw, b"", pre, method="OPTIONS")
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-allow-headers"] == "content-type, authorization"
    status, headers, _ = request(gw, chat("demo"), good)
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in headers["access-control-expose-headers"]
    bad = {"host": "gw.internal", "origin": "https://evil.example"}
    status, _, _ = request(
        gw, b"", {**bad, "access-control-request-method": "POST"}, method="OPTIONS"
    )
    assert status == 403
    status, headers, _ = request(gw, chat("demo"), bad)
    assert "access-control-allow-origin" not in headers


# --- item 7: secrets in error frames and headers --------------------------------------------


async def error_after_commit(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "content-type": "text/event-stream",
            "x-ratelimit-remaining-requests": "99",
            "x-ratelimit-token": KEY_IN_ERROR,
        }
    )
    await resp.prepare(request)
    error = {"error": {"message": f"Incorrect API key provided: {KEY_IN_ERROR}", "type": "x"}}
    await resp.write(CONTENT + b"data: " + json.dumps(error).encode() + b"\n\n")
    return resp


async def escaped_key_error(request: web.Request) -> web.Response:
    escaped = KEY_IN_ERROR.replace("s", "\\u0073").replace("a", "\\u0061")
    body = '{"error": {"message": "bad key ' + escaped + '", "type": "invalid_request_error"}}'
    return web.Response(status=400, body=body.encode(), content_type="application/json",
                        headers={"x-ratelimit-limit-requests": "100",
                                 "x-ratelimit-reset-requests": KEY_IN_ERROR})  # fmt: skip


def test_an_error_frame_after_commit_is_scrubbed(start: Callable[..., Gateway]) -> None:
    with Misbehaving(error_after_commit) as up:
        gw = start(routes(up.url))
        status, _, body = request(gw, chat(stream=True))
        assert status == 200
        assert b"Incorrect API key provided" in body
        assert KEY_IN_ERROR.encode() not in body


def test_escaped_keys_and_secret_looking_headers_never_reach_the_client(
    start: Callable[..., Gateway],
) -> None:
    with Misbehaving(escaped_key_error) as up:
        gw = start(routes(up.url))
        status, headers, body = request(gw, chat())
        assert status == 400
        decoded = json.loads(body)["error"]["message"]
        assert "bad key" in decoded and KEY_IN_ERROR not in decoded
        assert headers["x-ratelimit-limit-requests"] == "100"
        assert "x-ratelimit-reset-requests" not in headers


# --- item 9: expect, compressed bodies both ways --------------------------------------------


async def gzip_answer(request: web.Request) -> web.Response:
    answer = {"id": "c", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "zipped"},
         "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}}  # fmt: skip
    return web.Response(body=gzip.compress(json.dumps(answer).encode()),
                        headers={"content-type": "application/json",
                                 "content-encoding": "gzip"})  # fmt: skip


def test_expect_and_encodings(start: Callable[..., Gateway]) -> None:
    with Misbehaving(gzip_answer) as up:
        gw = start(routes(up.url))
        status, _, body = request(gw, chat(), {"expect": "100-continue"})
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "zipped"
        sent_headers = {k.lower() for k in up.seen[-1][0]}
        assert "expect" not in sent_headers and "content-encoding" not in sent_headers
        for encoding, packed in (
            ("gzip", gzip.compress(json.dumps(chat()).encode())),
            ("deflate", zlib.compress(json.dumps(chat()).encode())),
        ):
            status, _, _ = request(gw, packed, {"content-encoding": encoding})
            assert status == 200, encoding
            assert json.loads(up.seen[-1][1])["model"] == "up-model"
        status, _, body = request(gw, b"\x00", {"content-encoding": "br"})
        assert status == 415 and b"content-encoding" in body
        bomb = gzip.compress(b"{" + b" " * (4 * 2**20) + b"}")
        assert request(gw, bomb, {"content-encoding": "gzip"})[0] == 413


# --- item 10 -------------------------------------------------------------------------------


def test_duplicate_model_key_reaches_the_upstream_once(start: Callable[..., Gateway]) -> None:
    with Misbehaving(gzip_answer) as up:
        keys = 'keys:\n          - {name: t, key: sk-client-key-0123456789, models: ["m"]}'
        gw = start(routes(up.url, keys=keys))
        body = b'{"model": "up/expensive", "messages": [], "model": "m"}'
        status, _, _ = request(gw, body, {"authorization": "Bearer sk-client-key-0123456789"})
        assert status == 200
        sent = up.seen[-1][1]
        assert sent.count(b'"model"') == 1 and json.loads(sent)["model"] == "up-model"


# --- item 11: the 413 is read, not a reset -------------------------------------------------


def test_oversized_uploads_get_the_413(start: Callable[..., Gateway]) -> None:
    gw = start(routes("http://127.0.0.1:9/v1"))
    big = b'{"model": "demo", "messages": [], "pad": "' + b"x" * (2 * 2**20) + b'"}'
    for _ in range(10):
        status, _, body = request(gw, big)
        assert status == 413
        assert json.loads(body)["error"]["code"] == "request_too_large"


# --- item 14 and 15: the access log and 404s -----------------------------------------------


def test_every_request_is_logged_once_and_404s_name_only_allowed_models(
    start: Callable[..., Gateway],
) -> None:
    keys = 'keys:\n          - {name: t, key: sk-client-key-0123456789, models: ["demo", "no*"]}'
    gw = start(routes("http://127.0.0.1:9/v1", keys=keys))
    auth = {"authorization": "Bearer sk-client-key-0123456789"}
    status, _, body = request(gw, chat("nope"), auth)
    assert status == 404
    message = json.loads(body)["error"]["message"]
    assert "demo" in message and "'m'" not in message and ", m" not in message
    ids = []
    for path, method in (("/v1/responses-unknown", "POST"), ("/", "HEAD"), ("/health", "GET")):
        status, headers, _ = request(gw, b"{}", auth, path, method)
        ids.append((headers["x-request-id"], status))
    deadline = time.monotonic() + 5
    while True:
        lines = {d["request_id"]: d for d in access_lines(gw)}
        if all(rid in lines for rid, _ in ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for rid, status in ids:
        assert lines[rid]["status"] == status
    assert "transport error" not in gw.log_text().lower()


# --- item 8: streams longer than --grace end with an error event, and are logged -------------


@pytest.mark.timeout(60)
def test_a_stream_outliving_grace_ends_with_an_error_event(
    routes_file: RoutesFile, tmp_path: Path
) -> None:
    path = routes_file(
        """
        version: 1
        backends:
          slow: {type: mock, interval: 300ms, tokens: 200}
        models:
          slow: {targets: [{backend: slow}]}
        """
    )
    gw = launch(path, tmp_path, args=["--grace", "3"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        conn.request(
            "POST", "/v1/chat/completions", json.dumps(chat("slow", stream=True)),
            {"content-type": "application/json"},
        )  # fmt: skip
        resp = conn.getresponse()
        first = resp.read1(65536)
        assert first.startswith(b"data: ")
        gw.proc.terminate()  # SIGTERM to `serve`: grace begins
        rest = resp.read()
        conn.close()
        assert gw.proc.wait(timeout=15) == 0
    finally:
        gw.stop()
    body = first + rest
    assert b'"code":"shutting_down"' in body
    assert b"[DONE]" not in body
    line = next(d for d in access_lines(gw) if d.get("endpoint") == "chat")
    assert line["error_type"] == "shutting_down" and line["stream"] is True
    assert "refused to gracefully stop" not in gw.log_text()
