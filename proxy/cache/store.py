"""Where cached answers live: an in-process tier, and a Redis tier shared by every instance.

`Entry` is one whole answer in the front door's protocol (a streamed answer is stored
assembled, see `assemble`), with what the access log and `age` need. The memory tier is a
cachetools TLRU cache bounded by entries and by bytes, each entry with its own expiry; the
Redis tier (when `settings.state` is Redis) holds the same entries under `llmp:c:`, expiring
on their own. Invariant: a Redis failure is a miss (or a lost write), never an error.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import cachetools
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.cache.entry import Entry, pack, unpack
from proxy.cache.flight import Flight
from proxy.config import Settings
from proxy.config.cache import CacheSettings
from proxy.observe import metrics
from proxy.state.connect import is_redis

log = logging.getLogger("llm_proxy.cache")

PREFIX = "llmp:c:"
OVERHEAD = 256  # bytes counted per entry beyond its body
T = TypeVar("T")


class _Held(msgspec.Struct, gc=False):
    entry: Entry
    expires: float
    size: int


class _Memory(cachetools.TLRUCache[str, _Held]):
    """A TLRU cache that counts what it pushes out to make room (not what expires)."""

    evictions = 0

    def popitem(self) -> tuple[str, _Held]:
        item = super().popitem()
        self.evictions += 1
        metrics.cache_evicted(1)
        return item


def alias_tag(alias: str) -> str:
    """The alias's part of a Redis key (hashed: aliases may hold glob characters)."""
    return hashlib.sha256(alias.encode()).hexdigest()[:16]


class Cache:
    """This worker's cache: memory first, then Redis when configured."""

    def __init__(
        self,
        settings: CacheSettings | None,
        redis_url: str | None = None,
        timeout: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        s = settings or CacheSettings()
        self.settings = s
        self.clock = clock
        self.memory = _Memory(
            s.max_bytes, lambda _k, held, _now: held.expires, clock, lambda held: held.size
        )
        self.timeout = timeout
        self.flights: dict[str, Flight] = {}  # key -> the request now asking the backend
        self.redis: aioredis.Redis | None = None
        if redis_url is not None:
            pool = aioredis.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=64,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
            self.redis = aioredis.Redis(connection_pool=pool)

    # -- reads and writes ------------------------------------------------------------------

    async def get(self, key: str, alias: str) -> Entry | None:
        held = self.memory.get(key)
        if held is not None:
            return held.entry
        if self.redis is None:
            return None
        raw = await self._call(self.redis.get(PREFIX + alias_tag(alias) + ":" + key))
        if not isinstance(raw, bytes):
            return None
        try:
            entry = unpack(raw)
        except msgspec.DecodeError:
            return None
        ttl = await self._call(self.redis.pttl(PREFIX + alias_tag(alias) + ":" + key))
        if isinstance(ttl, int) and ttl > 0:
            self._remember(key, entry, ttl / 1000)
        return entry

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        self._remember(key, entry, ttl)
        if self.redis is not None:
            name = PREFIX + alias_tag(entry.alias) + ":" + key
            await self._call(self.redis.set(name, pack(entry), px=max(1, int(ttl * 1000))))

    def _remember(self, key: str, entry: Entry, ttl: float) -> None:
        size = len(entry.body) + OVERHEAD
        if size > self.settings.max_bytes:
            return
        memory = self.memory
        memory.pop(key, None)
        memory.expire()  # what expired makes room first: only live entries are evicted
        while len(memory) >= self.settings.max_entries:
            memory.popitem()
        memory[key] = _Held(entry, self.clock() + ttl, size)
        metrics.cache_stored(memory.currsize)

    async def clear(self, alias: str | None = None) -> int:
        """Drop every entry (of `alias` only, when given); how many this worker's memory held
        (Redis entries are dropped too, uncounted)."""
        memory = self.memory
        doomed = [k for k, held in memory.items() if alias is None or held.entry.alias == alias]
        for k in doomed:
            memory.pop(k, None)
        metrics.cache_stored(memory.currsize)
        if self.redis is not None:
            pattern = PREFIX + ("*" if alias is None else alias_tag(alias) + ":*")
            await self._call(self._drop(pattern), limit=30.0)
        return len(doomed)

    async def _drop(self, pattern: str) -> None:
        assert self.redis is not None
        batch: list[Any] = []
        async for name in self.redis.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            await self.redis.unlink(*batch)

    async def _call(self, work: Awaitable[T], limit: float | None = None) -> T | None:
        try:
            async with asyncio.timeout(limit or self.timeout * 2):  # connect, then the command
                return await work
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.state_failed("cache")
            log.debug("cache: redis %s: %s", type(exc).__name__, exc)
            return None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose(close_connection_pool=True)


def for_settings(settings: Settings) -> Cache:
    """This worker's cache for the settings it started with (the Redis tier when
    `settings.state` is Redis); its bounds and tier change with a restart, not a reload."""
    url = settings.state if is_redis(settings.state) else None
    return Cache(settings.cache, url, settings.state_timeout)
