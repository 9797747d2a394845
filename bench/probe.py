"""First contact with a target: one checked request of each kind, then a short warm-up.

A kind whose probe fails is marked broken on the target, with the reason, so every later
run of that kind reports the reason instead of timing error responses.
"""

import aiohttp
import msgspec

from bench.harness import Kind, Target
from bench.load import HEADERS, chat_body, closed_loop, streams
from bench.upstreams import SSE_CONTENT_CHUNKS
from bench.verify import SSESplitter, verify_stream

KINDS: tuple[Kind, ...] = ("json", "sse", "stream")
_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=5)


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    async with session.post(url, data=body, headers=HEADERS) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:300].decode(errors='replace')}")
        return data


def _payloads(data: bytes) -> list[bytes]:
    splitter = SSESplitter()
    return splitter.feed(data) + splitter.feed(b"\n\n")


async def _check(session: aiohttp.ClientSession, target: Target, kind: Kind) -> None:
    url, model = target.urls[kind], target.models[kind]
    if kind == "json":
        reply = msgspec.json.decode(await _post(session, url, chat_body(model)))
        if not isinstance(reply, dict) or reply.get("object") != "chat.completion":
            raise RuntimeError(f"not a chat.completion: {str(reply)[:200]}")
        return
    if kind == "sse":
        data = await _post(session, url, chat_body(model, stream=True))
        check = verify_stream(_payloads(data), "static", SSE_CONTENT_CHUNKS)
    else:
        body = chat_body(model, stream=True, max_tokens=3, user=f"probe-{target.name}")
        data = await _post(session, url, body)
        check = verify_stream(_payloads(data), f"probe-{target.name}", 3)
    if not check.ok:
        raise RuntimeError(f"stream not as the upstream sent it: {check}; got {data[:200]!r}")


async def probe(target: Target) -> None:
    """Mark each kind the target can't serve correctly as broken, with the reason."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        for kind in KINDS:
            if kind in target.broken:
                continue
            try:
                await _check(session, target, kind)
            except (
                aiohttp.ClientError,
                TimeoutError,
                OSError,
                RuntimeError,
                msgspec.DecodeError,
            ) as exc:
                target.broken[kind] = f"probe of {kind} failed: {type(exc).__name__}: {exc}"


async def warm_up(target: Target, seconds: float) -> list[str]:
    """A little of every kind of traffic, so pools, caches and JITs are warm; returns
    problems seen (not fatal: the probe already said what works)."""
    problems = []
    if "json" not in target.broken:
        r = await closed_loop(target.urls["json"], chat_body(target.models["json"]), 8, seconds)
        if r.errors:
            problems.append(
                f"{target.name} json warm-up: {r.errors} errors, first: {r.first_error}"
            )
    if "sse" not in target.broken:
        body = chat_body(target.models["sse"], stream=True)
        r = await closed_loop(target.urls["sse"], body, 4, seconds / 2)
        if r.errors:
            problems.append(f"{target.name} sse warm-up: {r.errors} errors, first: {r.first_error}")
    if "stream" not in target.broken:
        s = await streams(
            target.urls["stream"], target.models["stream"], 50, 5, 30, f"warm-{target.name}-"
        )
        if s.ok != 50:
            problems.append(
                f"{target.name} stream warm-up: {50 - s.ok} bad streams, first: {s.first_error}"
            )
    return problems
