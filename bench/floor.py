"""The bare stack's floor: what granian + uvloop + one pooled aiohttp session cost with no
gateway logic at all, so `python -m bench` can say how far above its own stack the gateway is.

Two servers, run by the benchmark on the gateway's cores with the gateway's granian settings:

- `bare`: one ASGI callable that forwards the raw request body to the fast upstream through
  one pooled aiohttp session and sends back the status, content type and body. No routing,
  no parsing, no headers beyond the content type, no timeouts.
- `litestar`: the same forward from a plain Litestar `@post` handler.

Both serve only non-streaming JSON (`POST /v1/chat/completions`) and `GET /health`.
Run one: `python -m bench.floor bare|litestar --port N --upstream http://127.0.0.1:M`.
"""

import argparse
import os
from typing import Any

import aiohttp

UPSTREAM_ENV = "BENCH_FLOOR_UPSTREAM"
_JSON = [(b"content-type", b"application/json")]
_session: aiohttp.ClientSession | None = None


def _pool() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        connector = aiohttp.TCPConnector(limit=2048, keepalive_timeout=60)
        _session = aiohttp.ClientSession(
            os.environ[UPSTREAM_ENV], connector=connector, auto_decompress=False
        )
    return _session


async def _read(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body = await _read(receive)
    async with _pool().post(
        scope["path"], data=body, headers={"content-type": "application/json"}
    ) as resp:
        data = await resp.read()
        status = resp.status
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": data})


def litestar() -> Any:
    from litestar import Litestar, Request, Response, get, post

    @post("/v1/chat/completions")
    async def chat(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        async with _pool().post(
            "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
        ) as resp:
            data = await resp.read()
            return Response(data, status_code=resp.status, media_type="application/json")

    @get("/health")
    async def health() -> dict[str, str]:
        return {}

    async def close() -> None:
        if _session is not None:
            await _session.close()

    return Litestar(route_handlers=[chat, health], openapi_config=None, on_shutdown=[close])


def main() -> None:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    p = argparse.ArgumentParser(prog="python -m bench.floor")
    p.add_argument("kind", choices=("bare", "litestar"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the fast upstream's base URL")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    os.environ[UPSTREAM_ENV] = args.upstream
    # The gateway's own granian settings (proxy/__main__.py), so only the app differs.
    Server(
        "bench.floor:bare" if args.kind == "bare" else "bench.floor:litestar",
        address="127.0.0.1",
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.auto,
        http=HTTPModes.auto,
        factory=args.kind == "litestar",
        backlog=4096,
        backpressure=16384,
        http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True),
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
