"""What every `SessionStore` must do, for the memory store here and any shared (Redis) one.

`await check_store(store)` on an empty store: a Redis implementation's tests call it too.
TTL and eviction are the implementation's own tests (the memory store's use a fake clock).
"""

from proxy.interactive.sessions import SessionStore, scope
from proxy.interactive.state import SessionState

FULL = SessionState(
    model="smart",
    backend="openai",
    params=(("temperature", "0.2"), ("stop", '["a", "\\u00e9"]'), ("x", "null")),
    requests=7,
    commands=3,
    loops=1,
    created=1700000000.5,
    updated=1700000100.25,
)


async def check_store(store: SessionStore) -> None:
    a, b = scope("team-a", "s1"), scope("team-b", "s1")
    assert await store.count() == 0
    assert await store.get(a) is None
    await store.put(a, FULL)
    assert await store.get(a) == FULL  # every field survives, exactly
    assert await store.get(b) is None  # scoped by key
    await store.put(b, SessionState())
    assert await store.count() == 2
    await store.put(a, SessionState(model="fast"))  # a write replaces the whole state
    assert await store.get(a) == SessionState(model="fast")
    assert await store.delete(a) is True
    assert await store.delete(a) is False
    assert await store.get(a) is None
    assert await store.count() == 1
