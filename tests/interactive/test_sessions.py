"""Session ids (header, Anthropic metadata, derived), scoping by key, and the memory store."""

import json
from typing import Any

import msgspec
import pytest

from proxy.interactive.sessions import (
    MAX_ID,
    BadSessionId,
    MemorySessions,
    SessionStore,
    scope,
    session_id,
    turn,
    view,
)
from proxy.interactive.state import SessionState, decode, encode
from tests.interactive.store_contract import check_store

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])


def fields(**body: Any) -> dict[str, msgspec.Raw]:
    body.setdefault("messages", [{"role": "user", "content": "plan a trip"}])
    return _top.decode(json.dumps({"model": "m", **body}).encode())


def test_header_first_then_metadata_then_derived() -> None:
    meta = fields(metadata={"user_id": "u-42"})
    assert session_id({b"x-session-id": b" abc "}, meta, "anthropic", "k", derive=True) == "abc"
    assert session_id({}, meta, "anthropic", "k", derive=True) == "u-42"
    # OpenAI's `metadata` is for stored completions, not sessions.
    derived = session_id({}, meta, "openai", "k", derive=True)
    assert derived is not None and derived.startswith("d-")
    assert session_id({}, meta, "openai", "k", derive=False) is None
    assert session_id({}, fields(), "anthropic", "k", derive=False) is None


def test_long_metadata_ids_are_hashed_and_bad_ones_ignored() -> None:
    long_id = "user_" + "a" * 200
    got = session_id({}, fields(metadata={"user_id": long_id}), "anthropic", "k", derive=False)
    assert got is not None and got.startswith("u-") and len(got) <= MAX_ID
    for meta in ({"user_id": 5}, [1], {"user_id": ""}, {"user_id": None}):
        assert session_id({}, fields(metadata=meta), "anthropic", "k", derive=False) is None


@pytest.mark.parametrize("value", [b"", b"  ", b"a" * (MAX_ID + 1), "caf\u00e9".encode(), b"a\x01"])
def test_unusable_header_is_refused(value: bytes) -> None:
    with pytest.raises(BadSessionId, match="x-session-id"):
        session_id({b"x-session-id": value}, fields(), "openai", "k", derive=False)


def test_derived_ids_follow_the_conversation_and_the_key() -> None:
    turn1 = fields()
    turn2 = fields(
        messages=[
            {"role": "user", "content": "plan a trip"},
            {"role": "assistant", "content": "where to?"},
            {"role": "user", "content": "Rome"},
        ]
    )
    a1 = session_id({}, turn1, "openai", "team-a", derive=True)
    assert a1 == session_id({}, turn2, "anthropic", "team-a", derive=True)
    assert a1 != session_id({}, turn1, "openai", "team-b", derive=True)
    other = fields(messages=[{"role": "user", "content": "write a poem"}])
    assert a1 != session_id({}, other, "openai", "team-a", derive=True)
    assert session_id({}, fields(messages=[]), "openai", "team-a", derive=True) is None


def test_scope_keeps_keys_apart() -> None:
    assert scope("team-a", "s1") != scope("team-b", "s1")


def test_turn_counts_and_stamps() -> None:
    first = turn(None, 100.0)
    assert (first.requests, first.created, first.updated) == (1, 100.0, 100.0)
    second = turn(msgspec.structs.replace(first, model="x"), 160.0)
    assert (second.requests, second.created, second.updated, second.model) == (2, 100.0, 160.0, "x")


def test_state_round_trips_for_any_store() -> None:
    state = SessionState(model="m", backend="b", params=(("stop", '["x"]'),), requests=3)
    assert decode(encode(state)) == state
    with pytest.raises(msgspec.DecodeError):
        decode(b'{"model": 5}')


def test_view_shows_params_as_values() -> None:
    state = SessionState(model="m", params=(("temperature", "0.2"), ("stop", '["x"]')))
    shown = view(scope("team-a", "s1"), state)
    assert shown["id"] == "s1" and shown["key"] == "team-a" and shown["model"] == "m"
    assert shown["params"] == {"temperature": 0.2, "stop": ["x"]}
    json.dumps(shown)  # the admin endpoint can send it as it is


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store_ttl_bound_and_delete() -> None:
    clock = Clock()
    store: SessionStore = MemorySessions(ttl=60.0, max=3, timer=clock)
    state = SessionState(model="m")
    await store.put("a", state)
    assert await store.get("a") == state
    assert await store.get("missing") is None
    clock.now = 59.0
    await store.put("a", state)  # a write restarts the TTL
    clock.now = 110.0
    assert await store.get("a") == state
    clock.now = 120.0
    assert await store.get("a") is None
    assert await store.count() == 0
    for name in ("b", "c", "d", "e"):
        await store.put(name, state)
    assert await store.count() == 3  # never more than max
    assert await store.get("b") is None  # the least recently used went first
    assert await store.delete("c") is True
    assert await store.delete("c") is False
    assert await store.count() == 2


async def test_memory_store_keeps_the_store_contract() -> None:
    await check_store(MemorySessions(ttl=60.0, max=100))
