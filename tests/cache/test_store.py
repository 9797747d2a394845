"""The cache's tiers: expiry on an injected clock, the entry and byte bounds, clearing, and
the Redis tier against a real redis-server (and an unreachable one: a miss, never an error)."""

from proxy.cache.entry import Entry
from proxy.cache.store import OVERHEAD, Cache
from proxy.config.cache import CacheSettings
from proxy.observe.metrics.registry import REGISTRY
from tests.conftest import free_port
from tests.state.conftest import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(alias: str = "m", size: int = 10) -> Entry:
    return Entry(b"x" * size, 1000.0, alias, "b", "pm")


async def test_an_entry_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = Cache(CacheSettings(), clock=clock)
    await cache.put("k", entry(), ttl=60)
    clock.now += 59
    assert await cache.get("k", "m") == entry()
    clock.now += 2
    assert await cache.get("k", "m") is None


async def test_the_byte_bound_evicts_the_least_recently_used() -> None:
    evictions = REGISTRY.scalars["llm_proxy_cache_evictions_total"]
    before = evictions.get((), 0.0)
    cache = Cache(CacheSettings(max_bytes=3 * (100 + OVERHEAD)), clock=Clock())
    for k in "abc":
        await cache.put(k, entry(size=100), ttl=60)
    assert await cache.get("a", "m") is not None  # a is now the most recently used
    await cache.put("d", entry(size=100), ttl=60)
    assert await cache.get("b", "m") is None
    assert all([await cache.get(k, "m") for k in "acd"])
    assert cache.memory.currsize <= 3 * (100 + OVERHEAD)
    assert evictions[()] == before + 1
    assert REGISTRY.scalars["llm_proxy_cache_stored_bytes"][()] == cache.memory.currsize


async def test_the_entry_bound_evicts_and_a_too_big_answer_is_not_kept() -> None:
    cache = Cache(CacheSettings(max_entries=2, max_bytes=1000), clock=Clock())
    for k in "abc":
        await cache.put(k, entry(), ttl=60)
    assert len(cache.memory) == 2 and await cache.get("a", "m") is None
    await cache.put("big", entry(size=2000), ttl=60)
    assert await cache.get("big", "m") is None


async def test_clear_by_alias_and_all() -> None:
    cache = Cache(CacheSettings(), clock=Clock())
    await cache.put("a1", entry("a"), ttl=60)
    await cache.put("a2", entry("a"), ttl=60)
    await cache.put("b1", entry("b"), ttl=60)
    assert await cache.clear("a") == 2
    assert await cache.get("a1", "a") is None and await cache.get("b1", "b") is not None
    assert await cache.clear() == 1
    assert len(cache.memory) == 0


async def test_two_caches_share_entries_through_redis(redis_server: RedisServer) -> None:
    one = Cache(CacheSettings(), redis_server.url, timeout=2.0)
    two = Cache(CacheSettings(), redis_server.url, timeout=2.0)
    try:
        await one.put("k", entry("a"), ttl=60)
        assert await two.get("k", "a") == entry("a")
        assert "k" in two.memory  # copied into the reader's memory tier
        await one.put("k2", entry("b"), ttl=60)
        await two.clear("b")
        one.memory.clear()
        assert await one.get("k2", "b") is None
        assert await one.get("k", "a") == entry("a")
    finally:
        await one.close()
        await two.close()


async def test_an_unreachable_redis_is_a_miss() -> None:
    cache = Cache(CacheSettings(), f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    try:
        await cache.put("k", entry(), ttl=60)  # kept in memory; the Redis write is lost
        cache.memory.clear()
        assert await cache.get("k", "m") is None
        assert await cache.clear() == 0
    finally:
        await cache.close()
