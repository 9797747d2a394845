"""How `/v1/*` should reach its handlers: the one-dict dispatcher in front of Litestar, or
Litestar's own low-level `@asgi` route handlers. Measured in-process, same run, same handler.

`python -m bench.front_door [--requests N] [--rounds R]` drives a chat completion through
each full ASGI app (the gateway's `Gateway` dispatcher; a Litestar app whose
`/v1/chat/completions` is an `@asgi` handler calling the same `Api.chat`) with the stub
upstream of `bench.micro`, and prints microseconds per request for each (median of rounds)
and their ratio. No network, so this is the routing layer's CPU cost and nothing else;
the decision and its numbers are recorded in bench/README.md and proxy/app.py.
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar import Litestar, asgi
from litestar.types import Receive, Scope, Send

from bench.micro import BODY, SCOPE, stub_api
from proxy import accesslog
from proxy.app import Gateway
from proxy.front.api import Api

App = Callable[[Any, Any, Any], Awaitable[None]]


def _apps(api: Api) -> dict[str, App]:
    @asgi("/v1/chat/completions", copy_scope=False)
    async def chat(scope: Scope, receive: Receive, send: Send) -> None:
        await api.chat(scope, receive, send)  # type: ignore[arg-type]

    routed = Litestar(route_handlers=[chat], openapi_config=None)
    dispatched = Gateway(Litestar(route_handlers=[], openapi_config=None), {
        "/v1/chat/completions": api.chat,
    })  # fmt: skip
    dispatched.runtime = api.runtime
    dispatched._bind = "127.0.0.1"  # as `serve` runs it by default: the Host check is on
    return {"dispatcher": dispatched, "litestar @asgi": routed}


async def _measure(requests: int, rounds: int) -> dict[str, float]:
    accesslog.configure({accesslog.ENV: "off"})  # the routing layer only, not log I/O
    api = await stub_api()
    apps = _apps(api)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    statuses: list[int] = []

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    results: dict[str, list[float]] = {name: [] for name in apps}
    for name, app in apps.items():  # warm up, and check both answer 200
        for _ in range(500):
            await app({**SCOPE}, receive, send)
        assert set(statuses) == {200}, (name, set(statuses))
    for r in range(rounds):
        order = list(apps.items())[r % 2 :] + list(apps.items())[: r % 2]
        for name, app in order:
            start = time.perf_counter()
            for _ in range(requests):
                await app({**SCOPE}, receive, send)
            results[name].append((time.perf_counter() - start) / requests)
    return {name: statistics.median(times) for name, times in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.front_door", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import uvloop

        found = uvloop.run(_measure(args.requests, args.rounds))
    except ImportError:
        found = asyncio.run(_measure(args.requests, args.rounds))
    base = found["dispatcher"]
    for name, per in found.items():
        print(f"{name:>16}: {per * 1e6:6.1f} us per request ({per / base:.3f}x the dispatcher)")


if __name__ == "__main__":
    main()
