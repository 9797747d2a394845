"""The store several gateway instances share: a Redis server, through server-side Lua.

`admit` and `settle` are one script call each (one round trip): the script reads the
counters, decides and writes inside Redis, so no other client's read-modify-write can
interleave. The rules are those of `proxy.state.limits`, written again in Lua; tests run
the same scenarios against both. Clocks: `now` comes from the calling instance (keep
instances on NTP); buckets expire once they would be full again anyway.

Keys (prefix `llmp:`): `r:{scope}`/`t:{scope}` request/token buckets (hash l, a);
`p:{scope}` parallel slots (sorted set, score = expiry); `s:{key}:{day}` spend (USD);
ledger rows `u:{day}:{row}` (hash of counts), `ud:{day}` (set of rows), `days` (sorted set).
Any Redis error or timeout raises `StateUnavailable`; the caller decides (see `guard`).
"""

import asyncio
import os
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.state import limits
from proxy.state.store import (
    Ask,
    BudgetState,
    Quota,
    Reason,
    Reservation,
    StateUnavailable,
    UsageFilter,
    UsageRow,
    Verdict,
)

PREFIX = "llmp:"
MAX_CONNECTIONS = 64  # per worker
SPEND_TTL = 40 * 86400  # seconds: longer than any budget period
T = TypeVar("T")

_ADMIT = """
local now, n, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, rid = tonumber(ARGV[4]), ARGV[5]
local budget, resets_at = tonumber(ARGV[6 + 3 * n]), tonumber(ARGV[7 + 3 * n])
local function level(key, cap)
  local v = redis.call('HMGET', key, 'l', 'a')
  if not v[1] then return cap end
  local l = tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * cap / 60
  if l > cap then return cap end
  return l
end
local reason, wait = '', 0
local function refuse(why, w)
  if reason == '' or w > wait then reason, wait = why, w end
end
local rl, tl = {}, {}
for i = 1, n do
  local b = 6 + 3 * (i - 1)
  local rpm, tpm, mp = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  if rpm > 0 then
    rl[i] = level(KEYS[3 * i - 2], rpm)
    if rl[i] < 1 then refuse('rpm', (1 - rl[i]) * 60 / rpm) end
  end
  if tpm > 0 then
    tl[i] = level(KEYS[3 * i - 1], tpm)
    local need = math.max(1, math.min(est, tpm))
    if tl[i] < need then refuse('tpm', (need - tl[i]) * 60 / tpm) end
  end
  if mp > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3 * i], '-inf', ARGV[1])
    if redis.call('ZCARD', KEYS[3 * i]) >= mp then refuse('max_parallel', 1) end
  end
end
local spent = 0
if budget >= 0 then
  for j = 3 * n + 1, #KEYS do
    local v = redis.call('GET', KEYS[j])
    if v then spent = spent + tonumber(v) end
  end
  if spent >= budget then refuse('budget', resets_at - now) end
end
local ok = reason == ''
local out = {ok and 1 or 0, reason, string.format('%.17g', wait), string.format('%.17g', spent)}
for i = 1, n do
  local b = 6 + 3 * (i - 1)
  local r, t = rl[i], tl[i]
  if r then
    if ok then r = r - 1 end
    if ok then redis.call('HSET', KEYS[3 * i - 2], 'l', string.format('%.17g', r), 'a', ARGV[1]) end
    if ok then redis.call('EXPIRE', KEYS[3 * i - 2], 61) end
    out[#out + 1] = string.format('%.17g', r)
  else
    out[#out + 1] = ''
  end
  if t then
    if ok then t = t - est end
    if ok then redis.call('HSET', KEYS[3 * i - 1], 'l', string.format('%.17g', t), 'a', ARGV[1]) end
    if ok then redis.call('EXPIRE', KEYS[3 * i - 1], 121) end
    out[#out + 1] = string.format('%.17g', t)
  else
    out[#out + 1] = ''
  end
  if ok and tonumber(ARGV[b + 2]) > 0 then
    redis.call('ZADD', KEYS[3 * i], string.format('%.17g', now + lease), rid)
    redis.call('EXPIRE', KEYS[3 * i], math.ceil(lease) + 60)
  end
end
return out
"""

_SETTLE = """
local now, est, used, rid = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local cost, nt = tonumber(ARGV[5]), tonumber(ARGV[6])
for i = 1, nt do
  local tpm = tonumber(ARGV[6 + i])
  local v = redis.call('HMGET', KEYS[i], 'l', 'a')
  local l = tpm
  if v[1] then l = math.min(tpm, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * tpm / 60) end
  l = math.max(-tpm, math.min(tpm, l + est - used))
  redis.call('HSET', KEYS[i], 'l', string.format('%.17g', l), 'a', ARGV[1])
  redis.call('EXPIRE', KEYS[i], 121)
end
for j = nt + 1, #KEYS - 1 do redis.call('ZREM', KEYS[j], rid) end
if cost > 0 then
  redis.call('INCRBYFLOAT', KEYS[#KEYS], ARGV[5])
  redis.call('EXPIRE', KEYS[#KEYS], tonumber(ARGV[7 + nt]))
end
return 1
"""

_FIELDS = ("requests", "input_tokens", "output_tokens", "cached_tokens", "errors")
_row_id = msgspec.json.Encoder().encode
_row_of = msgspec.json.Decoder(tuple[str, str, str]).decode


def _num(v: float) -> str:
    return repr(float(v))


class RedisStore:
    def __init__(self, url: str, timeout: float = 0.25) -> None:
        self.timeout = timeout
        # A bounded pool: a burst waits (at most `timeout`) for a connection instead of
        # opening thousands; each call holds one for a single round trip.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # our caller decides what a failure means, at once
            health_check_interval=0,
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._admit = self.client.register_script(_ADMIT)
        self._settle = self.client.register_script(_SETTLE)
        self._ids = 0

    async def _call(self, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout * 2):  # connect, then the command
                return await work
        except (RedisError, OSError, TimeoutError) as exc:
            raise StateUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    def _rid(self) -> str:
        self._ids += 1
        return f"{os.getpid()}-{id(self):x}-{self._ids}"

    async def admit(self, ask: Ask, now: float) -> Verdict:
        keys: list[str] = []
        args: list[Any] = [_num(now), len(ask.scopes), ask.estimate, _num(ask.lease), self._rid()]
        for scope in ask.scopes:
            keys += [f"{PREFIX}{k}:{scope.id}" for k in ("r", "t", "p")]
            lim = scope.limits
            args += [lim.rpm or 0, lim.tpm or 0, lim.max_parallel or 0]
        resets_at = 0.0
        if ask.budget is not None:
            first, end = limits.period_days(ask.budget.period, now)
            keys += [f"{PREFIX}s:{ask.key}:{d}" for d in range(first, end)]
            resets_at = end * float(limits.DAY)
            args += [_num(ask.budget.usd), _num(resets_at)]
        else:
            args += [-1, 0]
        out = await self._call(self._admit(keys=keys, args=args))
        return self._verdict(ask, [x.decode() if isinstance(x, bytes) else x for x in out],
                             resets_at, args[4])  # fmt: skip

    @staticmethod
    def _verdict(ask: Ask, out: list[Any], resets_at: float, rid: str) -> Verdict:
        allowed = int(out[0]) == 1
        reason: Reason = out[1]
        requests: Quota | None = None
        tokens: Quota | None = None
        for i, scope in enumerate(ask.scopes):
            r, t = out[4 + 2 * i], out[5 + 2 * i]
            if scope.limits.rpm is not None and r != "":
                requests = limits.tighter(requests, limits.quota(scope.limits.rpm, float(r)))
            if scope.limits.tpm is not None and t != "":
                tokens = limits.tighter(tokens, limits.quota(scope.limits.tpm, float(t)))
        budget = None
        if ask.budget is not None:
            budget = BudgetState(ask.budget.usd, float(out[3]), resets_at)
        reservation = None
        if allowed:
            reservation = Reservation(
                id=rid,
                key=ask.key,
                token_scopes=tuple(
                    (s.id, s.limits.tpm) for s in ask.scopes if s.limits.tpm is not None
                ),
                parallel_scopes=tuple(
                    s.id for s in ask.scopes if s.limits.max_parallel is not None
                ),
                estimate=ask.estimate,
            )
        return Verdict(allowed, reason, float(out[2]), requests, tokens, budget, reservation)

    async def settle(self, reservation: Reservation, tokens: int, cost: float, now: float) -> None:
        keys = [f"{PREFIX}t:{scope}" for scope, _ in reservation.token_scopes]
        keys += [f"{PREFIX}p:{scope}" for scope in reservation.parallel_scopes]
        keys.append(f"{PREFIX}s:{reservation.key}:{limits.day_number(now)}")
        args: list[Any] = [
            _num(now), reservation.estimate, tokens, reservation.id, _num(cost),
            len(reservation.token_scopes), *(tpm for _, tpm in reservation.token_scopes),
            SPEND_TTL,
        ]  # fmt: skip
        await self._call(self._settle(keys=keys, args=args))

    async def record(self, rows: list[UsageRow]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for row in rows:
            member = _row_id((row.key, row.alias, row.backend)).decode()
            hkey = f"{PREFIX}u:{row.day}:{member}"
            for field in _FIELDS:
                value = getattr(row, field)
                if value:
                    pipe.hincrby(hkey, field, value)
            if row.cost:
                pipe.hincrbyfloat(hkey, "cost", row.cost)
            pipe.sadd(f"{PREFIX}ud:{row.day}", member)
            pipe.zadd(f"{PREFIX}days", {row.day: limits.day_of(row.day)})
        await self._call(pipe.execute())

    async def usage(self, where: UsageFilter) -> list[UsageRow]:
        low = "-inf" if where.first is None else limits.day_of(where.first)
        high = "+inf" if where.last is None else limits.day_of(where.last)
        found_days = await self._call(self.client.zrangebyscore(f"{PREFIX}days", low, high))
        days = [d.decode() if isinstance(d, bytes) else str(d) for d in found_days]
        pipe = self.client.pipeline(transaction=False)
        for day in days:
            pipe.smembers(f"{PREFIX}ud:{day}")
        members = await self._call(pipe.execute())
        wanted: list[tuple[str, str, str, str]] = []
        for day, found in zip(days, members, strict=True):
            for raw in sorted(found):
                key, alias, backend = _row_of(raw)
                if where.key not in (None, key) or where.alias not in (None, alias):
                    continue
                wanted.append((key, alias, backend, day))
        pipe = self.client.pipeline(transaction=False)
        for key, alias, backend, day in wanted:
            pipe.hgetall(f"{PREFIX}u:{day}:{_row_id((key, alias, backend)).decode()}")
        counts = await self._call(pipe.execute())
        rows = []
        for (key, alias, backend, day), h in zip(wanted, counts, strict=True):
            fields = {k.decode(): v for k, v in h.items()}
            rows.append(
                UsageRow(
                    key=key,
                    alias=alias,
                    backend=backend,
                    day=day,
                    cost=float(fields.get("cost", 0)),
                    **{f: int(fields.get(f, 0)) for f in _FIELDS},
                )
            )
        return rows

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)
