"""Sessions in Redis, when `settings.state` names one: every worker and instance shares them.

One key per session, `llmp:sess:<key name>\\x1f<id>`, holding `state.encode(state)` with the
TTL restarted on every write (`SET ... EX`), so Redis itself forgets idle sessions. Sessions
fail open: a Redis error or timeout reads as "no session" and a write is dropped (logged once
until Redis answers again), so an outage costs the overrides, never a request. Invariant: a
session is only ever read back as the very `SessionState` written, or not at all.
"""

import asyncio
import logging
import math
from collections.abc import Awaitable
from typing import TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.config import Settings
from proxy.interactive import state as codec
from proxy.interactive.sessions import MemorySessions, SessionStore
from proxy.interactive.state import SessionState
from proxy.state.connect import is_redis

__all__ = ["PREFIX", "RedisSessions", "open_sessions"]

log = logging.getLogger("llm_proxy.sessions")

PREFIX = "llmp:sess:"
MAX_CONNECTIONS = 16  # per worker; each call holds one for a single round trip
T = TypeVar("T")


class RedisSessions:
    def __init__(self, url: str, ttl: float, timeout: float = 0.25) -> None:
        self.ttl = max(1, math.ceil(ttl))
        self.timeout = timeout
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # fail open at once rather than retry on the hot path
            health_check_interval=0,
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._down = False

    async def _call(self, work: Awaitable[T], default: T, limit: float | None = None) -> T:
        try:
            async with asyncio.timeout(limit or self.timeout * 2):  # connect, then the command
                result = await work
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._down:
                log.warning("sessions: redis unavailable, serving without sessions: %s", exc)
            self._down = True
            return default
        if self._down:
            log.warning("sessions: redis answers again")
            self._down = False
        return result

    async def get(self, scoped: str) -> SessionState | None:
        data = await self._call(self.client.get(PREFIX + scoped), None)
        if data is None:
            return None
        try:
            return codec.decode(data.encode() if isinstance(data, str) else data)
        except msgspec.DecodeError:
            return None  # not written by us: as good as absent

    async def put(self, scoped: str, state: SessionState) -> None:
        await self._call(self.client.set(PREFIX + scoped, codec.encode(state), ex=self.ttl), None)

    async def delete(self, scoped: str) -> bool:
        return bool(await self._call(self.client.delete(PREFIX + scoped), 0))

    async def count(self) -> int:
        async def scan() -> int:
            return sum([1 async for _ in self.client.scan_iter(match=PREFIX + "*", count=1000)])

        return await self._call(scan(), 0, limit=5.0)  # admin only: a scan may take a while

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)


def open_sessions(settings: Settings) -> SessionStore:
    """Redis when `settings.state` names a Redis server, else this worker's memory."""
    if is_redis(settings.state):
        return RedisSessions(settings.state, settings.sessions.ttl, settings.state_timeout)
    return MemorySessions(settings.sessions.ttl, settings.sessions.max)
