"""Which session a request belongs to, and where sessions are kept between turns.

A session is named by the `x-session-id` header, else (on `/v1/messages`) the Anthropic
`metadata.user_id`, else, with `settings.sessions.derive`, a hash of the client key's name
and the conversation's first user message (the same on every turn of one conversation).
Every name is scoped by the client key (`scope`), so one key can never read or steer
another key's session, whatever id it sends.

`SessionStore` is the interface any store satisfies (async, so a Redis store fits);
`MemorySessions` keeps them in this worker's memory, bounded in count and time.
Invariant: the memory store never holds more than `max` sessions, and a session not
written for `ttl` seconds is gone.
"""

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec
from cachetools import TTLCache

from proxy.interactive import rewrite
from proxy.interactive.state import SessionState

__all__ = [
    "MAX_ID",
    "BadSessionId",
    "MemorySessions",
    "SessionStore",
    "scope",
    "session_id",
    "turn",
    "view",
]

MAX_ID = 128  # characters of a session id a client may send
_SEPARATOR = "\x1f"  # ASCII unit separator: never in a key name from YAML or a visible id


class _Metadata(msgspec.Struct):
    user_id: str | None = None


_metadata = msgspec.json.Decoder(_Metadata)


class BadSessionId(ValueError):
    """The client sent a session id the gateway can't use (answer 400 with this message)."""


def _valid(sid: str) -> bool:
    return 0 < len(sid) <= MAX_ID and sid.isascii() and sid.isprintable()


def session_id(
    headers: Mapping[bytes, bytes],
    fields: rewrite.Fields,
    front: Literal["openai", "anthropic"],
    key_name: str,
    *,
    derive: bool,
) -> str | None:
    """The request's session id, unscoped; None when it names none and none is derived."""
    raw = headers.get(b"x-session-id")
    if raw is not None:
        sid = raw.decode("latin-1").strip()
        if not _valid(sid):
            raise BadSessionId(
                f"x-session-id must be 1 to {MAX_ID} visible ASCII characters (a UUID will do)"
            )
        return sid
    meta = fields.get("metadata")
    if front == "anthropic" and meta is not None:
        try:
            user_id = _metadata.decode(meta).user_id
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            user_id = None  # the upstream says what is wrong with the field
        if user_id:
            # Long ids (Claude Code sends ~150 characters) are hashed rather than refused.
            return user_id if _valid(user_id) else "u-" + _digest(user_id)
    if derive:
        first = rewrite.first_user_text(fields)
        if first is not None:
            return "d-" + _digest(key_name + _SEPARATOR + first)
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def scope(key_name: str, sid: str) -> str:
    """The store's name for session `sid` of the client key `key_name`."""
    return key_name + _SEPARATOR + sid


def turn(state: SessionState | None, now: float) -> SessionState:
    """The state after one more request (a new session if there was none)."""
    if state is None:
        return SessionState(requests=1, created=now, updated=now)
    return msgspec.structs.replace(state, requests=state.requests + 1, updated=now)


def view(scoped: str, state: SessionState) -> dict[str, Any]:
    """One session as `/admin/sessions` shows it."""
    key_name, _, sid = scoped.partition(_SEPARATOR)
    out: dict[str, Any] = {"id": sid, "key": key_name}
    out.update(msgspec.to_builtins(state))
    out["params"] = {name: msgspec.json.decode(value) for name, value in state.params}
    return out


class SessionStore(Protocol):
    """Where sessions live between turns. Names are `scope()`d; a write restarts the TTL."""

    async def get(self, scoped: str) -> SessionState | None: ...

    async def put(self, scoped: str, state: SessionState) -> None: ...

    async def delete(self, scoped: str) -> bool: ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


class MemorySessions:
    """This worker's sessions; the least recently used go first once `max` are kept."""

    def __init__(self, ttl: float, max: int, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max = max
        self._cache: TTLCache[str, SessionState] = TTLCache(maxsize=max, ttl=ttl, timer=timer)

    async def get(self, scoped: str) -> SessionState | None:
        return self._cache.get(scoped)

    async def put(self, scoped: str, state: SessionState) -> None:
        self._cache[scoped] = state  # restarts its TTL; reads and writes refresh its LRU place

    async def delete(self, scoped: str) -> bool:
        return self._cache.pop(scoped, None) is not None

    async def count(self) -> int:
        self._cache.expire()
        return len(self._cache)

    async def close(self) -> None:
        self._cache.clear()
