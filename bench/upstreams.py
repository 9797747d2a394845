"""Mock OpenAI upstreams for the benchmark, and the nginx config that serves the fast one.

The fast upstream answers from pre-encoded bytes (so it costs next to nothing): POST
/v1/chat/completions gives a chat.completion, POST /sse/v1/chat/completions a static SSE
stream. The delayed upstream streams `max_tokens` content events, the first after
`first_ms` and then one every `gap_ms` on an absolute schedule (no drift), each carrying
verify.expected_content(user, seq) so the client can check every event it received.

Run one as a process: `python -m bench.upstreams fast|slow --port N`.
"""

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from bench.verify import expected_content, stream_id

CREATED = 1700000000
MAX_CHUNKS = 10_000
SSE_CONTENT_CHUNKS = 16
_encode = msgspec.json.encode
_decode_body = msgspec.json.Decoder(dict[str, Any]).decode

CHAT_JSON: bytes = _encode(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": "bench",
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! This is a static answer from the benchmark upstream, "
                    "about as long as a short real reply to a short real question.",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 24, "total_tokens": 36},
    }
)


def _event(obj: object) -> bytes:
    return b"data: " + _encode(obj) + b"\n\n"


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def content_event(nonce: str, model: str, seq: int) -> bytes:
    delta: dict[str, Any] = {"content": expected_content(nonce, seq)}
    if seq == 0:
        delta = {"role": "assistant", **delta}
    return _event(_chunk(stream_id(nonce), model, delta, None))


def finish_event(nonce: str, model: str) -> bytes:
    return _event(_chunk(stream_id(nonce), model, {}, "stop"))


def usage_event(nonce: str, model: str, chunks: int) -> bytes:
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    body = {"id": stream_id(nonce), "object": "chat.completion.chunk", "created": CREATED}
    return _event({**body, "model": model, "choices": [], "usage": usage})


DONE_EVENT = b"data: [DONE]\n\n"


def static_sse(nonce: str = "static", chunks: int = SSE_CONTENT_CHUNKS) -> bytes:
    """The fast upstream's fixed stream: `chunks` content events, finish, [DONE]."""
    body = b"".join(content_event(nonce, "bench", seq) for seq in range(chunks))
    return body + finish_event(nonce, "bench") + DONE_EVENT


SSE_BODY = static_sse()


async def _health(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def _fast_json(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=CHAT_JSON, content_type="application/json")


async def _fast_sse(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=SSE_BODY, headers={"Content-Type": "text/event-stream"})


def fast_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_post("/v1/chat/completions", _fast_json)
    app.router.add_post("/sse/v1/chat/completions", _fast_sse)
    return app


def _pace(body: dict[str, Any], first_s: float, gap_s: float) -> tuple[float, float]:
    """metadata.bench_first_ms / bench_gap_ms (strings, as OpenAI metadata values are)
    override the schedule for one request, within 0..10 s."""
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        return first_s, gap_s

    def read(key: str, default: float) -> float:
        try:
            return min(max(float(meta[key]) / 1000, 0.0), 10.0)
        except (KeyError, TypeError, ValueError):
            return default

    return read("bench_first_ms", first_s), read("bench_gap_ms", gap_s)


async def _stream(
    request: web.Request, body: dict[str, Any], first_s: float, gap_s: float
) -> web.StreamResponse:
    first_s, gap_s = _pace(body, first_s, gap_s)
    nonce = str(body.get("user") or "anon")
    model = str(body.get("model") or "bench-stream")
    chunks = max(1, min(int(body.get("max_tokens") or 20), MAX_CHUNKS))
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    start = loop.time()
    # A client gone mid-stream makes write() raise; that ends this stream and nothing else.
    with contextlib.suppress(ConnectionResetError):
        for seq in range(chunks):
            delay = start + first_s + seq * gap_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await resp.write(content_event(nonce, model, seq))
        tail = finish_event(nonce, model)
        if with_usage:
            tail += usage_event(nonce, model, chunks)
        await resp.write(tail + DONE_EVENT)
        await resp.write_eof()
    return resp


def slow_app(first_ms: float = 50.0, gap_ms: float = 10.0) -> web.Application:
    first_s, gap_s = first_ms / 1000, gap_ms / 1000

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            body = _decode_body(await request.read())
        except msgspec.DecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        if body.get("stream"):
            return await _stream(request, body, first_s, gap_s)
        await asyncio.sleep(first_s)
        return web.Response(body=CHAT_JSON, content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def nginx_quote(text: bytes) -> str:
    """text as an nginx double-quoted string: `\\` and `"` escaped, newlines as `\\n`."""
    decoded = text.decode()
    if "$" in decoded:
        raise ValueError("nginx would expand `$` in a return body")
    escaped = decoded.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def nginx_conf(port: int, workdir: Path) -> str:
    """A one-process nginx (no daemon, no master) serving the fast upstream's bytes."""
    w = workdir.resolve()
    temps = "\n".join(
        f"  {name}_temp_path {w}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
{temps}
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_max_body_size 16m;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /health {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 {nginx_quote(CHAT_JSON)};
    }}
    location = /sse/v1/chat/completions {{
      default_type text/event-stream;
      return 200 {nginx_quote(SSE_BODY)};
    }}
  }}
}}
"""


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT; a large backlog so 1000 simultaneous connects don't
    wait on SYN retries."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, shutdown_timeout=1.0)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstreams")
    parser.add_argument("kind", choices=["fast", "slow"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-ms", type=float, default=50.0)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    app = fast_app() if args.kind == "fast" else slow_app(args.first_ms, args.gap_ms)
    try:
        import uvloop  # optional speed-up

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
