"""The gateway's own Python work per request, without network, server or upstream.

`python -m bench.micro [--requests N] [--profile]` drives the `/v1/chat/completions` ASGI
handler in-process with a canned body and a stub transport that answers at once, so the
time per request is routing, parsing, failover bookkeeping, headers, metrics and the
access line — nothing of granian or aiohttp. Use it to see what a hot-path change costs;
`--profile` prints the top functions by own time (cProfile inflates every number ~3x).
The governor (usage ledger) and the access line are on, as `serve` runs them.
"""

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from proxy import accesslog
from proxy.front.api import Api
from proxy.runtime import Runtime, read_config
from proxy.state.governor import Governor

BODY = b'{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":'
    b'0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
)
CONFIG = """
version: 1
backends:
  up: {type: openai, base_url: "http://127.0.0.1:9/v1", api_key: bench-key}
models:
  bench: {targets: [{backend: up}]}
"""
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "headers": [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"user-agent", b"bench"),
    ],
    "client": ("127.0.0.1", 40000),
}


class _Answer:
    status = 200
    headers: Mapping[str, str] = {"content-type": "application/json"}

    async def read(self, limit: int) -> bytes:
        return ANSWER

    async def read_chunk(self) -> bytes:
        return b""

    def release(self) -> None:
        return None


class _Stub:
    in_flight = 0

    async def send(self, request: object) -> _Answer:
        return _Answer()

    async def close(self) -> None:
        return None


async def stub_api() -> Api:
    """The `/v1/*` handlers on `CONFIG`, their one backend answering through `_Stub`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "routes.yaml"
        path.write_text(CONFIG)
        runtime = Runtime(path, read_config(path, {}))
    state = runtime.snapshot.backends["up"]
    await state.transport.close()
    runtime.snapshot.backends["up"] = state._replace(transport=_Stub())  # type: ignore[index]
    api = Api()
    api.runtime = runtime
    return api


async def _run(requests: int, profile: cProfile.Profile | None) -> float:
    """Per request, what the served app does: the governor (usage ledger) and the access
    line (to stderr, pointed at /dev/null) included."""
    api = await stub_api()
    assert api.runtime is not None
    state = tempfile.TemporaryDirectory()
    api.governor = await Governor.start(api.runtime.snapshot.settings, 1, Path(state.name), {})
    accesslog.configure({accesslog.ENV: "stderr"})
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115, ASYNC230 (closed below)
    try:
        return await _loop(api, requests, profile)
    finally:
        accesslog.flush()
        sys.stderr.close()
        sys.stderr = stderr
        await api.governor.close()
        state.cleanup()


async def _loop(api: Api, requests: int, profile: cProfile.Profile | None) -> float:

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        return None

    for _ in range(500):  # warm up caches and the allocator
        await api.chat(SCOPE, receive, send)
    if profile is not None:
        profile.enable()
    start = time.perf_counter()
    for _ in range(requests):
        await api.chat(SCOPE, receive, send)
    elapsed = time.perf_counter() - start
    if profile is not None:
        profile.disable()
    return elapsed / requests


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    try:
        import uvloop

        per_request = uvloop.run(_run(args.requests, profile))
    except ImportError:
        per_request = asyncio.run(_run(args.requests, profile))
    print(f"{per_request * 1e6:.1f} us of gateway work per request ({args.requests} requests)")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
