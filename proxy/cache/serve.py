"""The cache on the request path: look up, replay a hit, follow a leader, or lead and store.

`respond` stands in for `core.forward.run` when the route's cache is on. The rule for what is
stored: a 200 answer that reached the client whole — a non-streamed body, or a stream that
ended cleanly (`[DONE]` / `message_stop`, no error event) — from a request that did not say
`cache-control: no-store`. Errors, non-200 answers, partial, errored or cancelled streams are
never stored. A hit is replayed in the client's protocol and form (a stream from a whole
entry through `synthesize`, a whole answer from a streamed one through `assemble`), with
`x-proxy-cache: hit` and `age`; the record says `cache: hit` and costs nothing.
"""

import logging

from proxy import errors, synthesize
from proxy.cache import assemble
from proxy.cache.entry import Entry
from proxy.cache.flight import Flight
from proxy.cache.key import control, key_of
from proxy.cache.store import Cache
from proxy.core import forward
from proxy.routing import Route

log = logging.getLogger("llm_proxy.cache")

HIT = (b"x-proxy-cache", b"hit")
MISS = (b"x-proxy-cache", b"miss")
BYPASS = (b"x-proxy-cache", b"bypass")
MAX_FOLLOW = 3  # leaders in a row a request waits on before it asks the backend itself


async def respond(
    cache: Cache, call: forward.Call, route: Route, namespace: str, cache_control: bytes | None
) -> None:
    """Answer `call` from the cache, a leader, or the route (storing a clean answer)."""
    assert route.cache is not None
    ex, req = call.ex, call.req
    rec = ex.record
    ctl = control(cache_control)
    if ctl == "no-store":
        rec.cache = "bypass"
        ex.extra.append(BYPASS)
        await forward.run(call, route)
        return
    key = key_of(req.fields, req.endpoint, route.alias, None if route.cache.shared else namespace)
    if ctl == "use":
        entry = await cache.get(key, route.alias)
        if entry is not None and _serves(entry, call):
            await replay(call, entry, cache.clock())
            return
        for _ in range(MAX_FOLLOW):
            flight = cache.flights.get(key)
            if flight is None:
                break
            if await follow(call, flight):
                return
    rec.cache = "miss"
    ex.extra.append(MISS)
    await lead(cache, call, route, key)


async def lead(cache: Cache, call: forward.Call, route: Route, key: str) -> None:
    """Ask the route, letting identical requests follow; store the answer if it is clean."""
    assert route.cache is not None
    ex, req = call.ex, call.req
    flight = Flight(req.stream, req.include_usage)
    if ex.started:  # a keepalive sent the stream's head while this request was following
        flight.head(200)
    mine = key not in cache.flights
    if mine:
        cache.flights[key] = flight
    ex.tap = flight
    entry: Entry | None = None
    try:
        await forward.run(call, route)
        entry = _entry_of(call, flight, route.alias, cache.clock())
    finally:
        ex.tap = None
        if mine and cache.flights.get(key) is flight:
            del cache.flights[key]
        flight.finish(entry)
    if entry is not None:
        await cache.put(key, entry, route.cache.ttl)


def _entry_of(call: forward.Call, flight: Flight, alias: str, now: float) -> Entry | None:
    """The entry a finished answer makes, or None when it must not be stored."""
    ex, req = call.ex, call.req
    rec = ex.record
    if not ex.closed or flight.status != 200 or rec.status != 200 or rec.error_type is not None:
        return None
    body = flight.body()
    usage = True
    if req.stream and req.front == "openai":
        counted = None
        if rec.tokens_in is not None and rec.tokens_out is not None:
            counted = (rec.tokens_in, rec.tokens_out)
        whole = assemble.openai(body, counted)
        usage = req.include_usage or counted is not None
    elif req.stream:
        whole = assemble.anthropic(body)
    else:
        whole = body
    if whole is None:
        return None
    return Entry(whole, now, alias, rec.backend or "", rec.provider_model or "", usage)


def _serves(entry: Entry, call: forward.Call) -> bool:
    """An entry without usage does not answer a client that gets usage (a whole OpenAI
    answer, or a stream that asked for the usage chunk): that is a miss, and its answer
    replaces the entry."""
    req = call.req
    return entry.usage or req.front != "openai" or (req.stream and not req.include_usage)


async def replay(call: forward.Call, entry: Entry, now: float) -> None:
    """A stored answer to the client, in the form it asked for."""
    ex, req = call.ex, call.req
    rec = ex.record
    rec.cache = "hit"
    rec.backend, rec.provider_model = entry.backend or None, entry.provider_model or None
    rec.cost = 0.0
    age = (b"age", str(int(max(0.0, now - entry.created))).encode())
    backend = (entry.backend, entry.provider_model)
    if req.stream:
        body = (
            synthesize.openai_stream(entry.body, req.include_usage)
            if req.front == "openai"
            else synthesize.anthropic_stream(entry.body)
        )
        ex.extra += [HIT, age]
        ex.committed = True
        await ex.stream_head(backend)
        await ex.end(body)
        return
    headers = [
        (b"content-type", b"application/json"),
        (b"x-proxy-backend", backend[0].encode()),
        (b"x-proxy-model", backend[1].encode()),
        HIT,
        age,
    ]
    await ex.answer(200, headers, entry.body)


async def follow(call: forward.Call, flight: Flight) -> bool:
    """Take the leader's answer; False when the leader failed before this request sent
    anything (the caller then asks again). A streaming follower that asked for the same
    usage chunk relays the leader's chunks as they arrive."""
    ex, req = call.ex, call.req
    if not (req.stream and flight.stream and req.include_usage == flight.include_usage):
        await flight.finished()
        if flight.entry is None or not _serves(flight.entry, call):
            return False
        await replay(call, flight.entry, flight.entry.created)
        return True
    ex.keepalive(call.snapshot.settings.keepalive)  # while the leader's backend thinks
    try:
        return await _relay(call, flight)
    finally:
        await ex.quiet()


async def _relay(call: forward.Call, flight: Flight) -> bool:
    """A streaming follower relays the leader's chunks as they come."""
    ex = call.ex
    rec = ex.record
    sent = 0
    while True:
        while sent < len(flight.chunks):
            if not ex.committed:
                await ex.quiet()
                rec.cache = "hit"
                rec.cost = 0.0
                ex.extra += [HIT, (b"age", b"0")]
                ex.committed = True
                await ex.stream_head()
            await ex.chunk(flight.chunks[sent])
            sent += 1
        if flight.done:
            break
        await flight.changed()
    entry = flight.entry
    if entry is not None:
        await ex.quiet()
        rec.cache = "hit"
        rec.cost = 0.0
        rec.backend, rec.provider_model = entry.backend or None, entry.provider_model or None
        if not ex.committed:
            ex.extra += [HIT, (b"age", b"0")]
            ex.committed = True
            await ex.stream_head((entry.backend, entry.provider_model))
        await ex.end(flight.tail or b"")
        return True
    if not ex.committed:
        return False  # nothing relayed yet (keepalives at most): this request asks itself
    await ex.fail(errors.BadGateway("the answer this request was sharing failed; retry"))
    return True
