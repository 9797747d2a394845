"""`steer` end to end over a real config, route table and memory store (no server needed)."""

import json
from typing import Any

import msgspec
import pytest

from proxy import errors
from proxy.auth import ANONYMOUS
from proxy.config import ClientKey, parse
from proxy.interactive.sessions import MemorySessions, scope
from proxy.interactive.steer import (
    Reply,
    Steered,
    allowed_for,
    count_loop,
    loops_for,
    only_backend,
    steer,
)
from proxy.routing import RouteTable

CONFIG = parse(
    """
version: 1
settings:
  sessions: {derive: false}
  loop_detection: {enabled: false}
backends:
  a: {type: mock}
  b: {type: mock}
models:
  demo: {targets: [{backend: a}, {backend: b, priority: 1}]}
  big: {targets: [{backend: a}], loop_detection: {min_repeats: 3}}
  secret: {targets: [{backend: b}]}
""",
    {},
)
TABLE = RouteTable(CONFIG)
KEY = ClientKey(name="team-a", digest=b"x", models=("demo", "big"))
_top = msgspec.json.Decoder(dict[str, msgspec.Raw])


async def go(
    store: MemorySessions,
    content: Any,
    *,
    sid: str | None = "s1",
    stream: bool = False,
    front: str = "openai",
    key: ClientKey = KEY,
    **extra: Any,
) -> Reply | Steered:
    body = {"model": "demo", "messages": [{"role": "user", "content": content}], **extra}
    headers = {b"x-session-id": sid.encode()} if sid is not None else {}
    return await steer(
        store,
        CONFIG.settings,
        headers=headers,
        fields=_top.decode(json.dumps(body).encode()),
        front=front,  # type: ignore[arg-type]
        endpoint="messages" if front == "anthropic" else "chat",
        model="demo",
        stream=stream,
        include_usage=False,
        key=key,
        allowed=allowed_for(key, TABLE, CONFIG),
        request_id="r1",
        now=1000.0,
    )


async def test_switch_model_then_forward_with_overrides() -> None:
    store = MemorySessions(ttl=60, max=10)
    reply = await go(store, "!/model(big)\n!/set(temperature=0.2)")
    assert isinstance(reply, Reply)
    assert json.loads(reply.body)["choices"][0]["message"]["content"].startswith("Model set")
    steered = await go(store, "hello", temperature=1, top_p=0.5)
    assert isinstance(steered, Steered)
    assert steered.model == "big" and steered.session == "s1"
    assert steered.body is not None
    sent = json.loads(steered.body)
    assert sent["model"] == "big" and sent["temperature"] == 0.2 and sent["top_p"] == 0.5
    state = await store.get(scope("team-a", "s1"))
    assert state is not None and state.requests == 2 and state.commands == 2


async def test_commands_then_text_are_applied_and_stripped() -> None:
    store = MemorySessions(ttl=60, max=10)
    steered = await go(
        store,
        [{"type": "text", "text": "!/set(max_tokens=7) Hi"}],
        front="anthropic",
        max_tokens=100,
    )
    assert isinstance(steered, Steered) and steered.body is not None
    sent = json.loads(steered.body)
    assert sent["max_tokens"] == 7
    assert sent["messages"][-1]["content"] == [{"type": "text", "text": "Hi"}]


async def test_a_key_cannot_escape_its_models() -> None:
    store = MemorySessions(ttl=60, max=10)
    reply = await go(store, "!/model(secret)", stream=True)
    assert isinstance(reply, Reply) and reply.content_type.startswith(b"text/event-stream")
    assert b"may not use model 'secret'" in reply.body and reply.body.endswith(b"[DONE]\n\n")
    steered = await go(store, "hello")
    assert isinstance(steered, Steered) and steered.model == "demo" and steered.body is None


async def test_sessions_are_per_key() -> None:
    store = MemorySessions(ttl=60, max=10)
    other = ClientKey(name="team-b", digest=b"y")
    await go(store, "!/model(big)", key=other)
    steered = await go(store, "hello")  # same id, other key: untouched
    assert isinstance(steered, Steered) and steered.model == "demo"


async def test_no_session_no_state() -> None:
    store = MemorySessions(ttl=60, max=10)
    reply = await go(store, "!/model(big)", sid=None)
    assert isinstance(reply, Reply) and b"x-session-id" in reply.body
    steered = await go(store, "hi", sid=None, key=ANONYMOUS)
    assert steered == Steered(steered.fields, None, "demo", None, None)  # type: ignore[union-attr]
    assert await store.count() == 0


async def test_backend_pin_and_bad_session_id() -> None:
    store = MemorySessions(ttl=60, max=10)
    await go(store, "!/backend(b)")
    steered = await go(store, "hi")
    assert isinstance(steered, Steered) and steered.backend == "b" and steered.body is None
    route = TABLE.resolve("demo")
    assert route is not None
    pinned = only_backend(route, "b")
    assert pinned is not None and [[c.key.backend for c in t] for t in pinned.tiers] == [["b"]]
    assert only_backend(route, "zzz") is None
    with pytest.raises(errors.BadRequest, match="x-session-id"):
        await go(store, "hi", sid="caf\u00e9".encode().decode("latin-1"))


def test_loops_for_each_model() -> None:
    assert loops_for(CONFIG, "big").min_repeats == 3 and loops_for(CONFIG, "big").enabled
    assert not loops_for(CONFIG, "demo").enabled
    assert loops_for(CONFIG, "unknown") == CONFIG.settings.loop_detection


async def test_count_loop() -> None:
    store = MemorySessions(ttl=60, max=10)
    await count_loop(store, KEY, None)  # no session: nothing to count
    await count_loop(store, KEY, "s1")  # no such session: nothing created
    assert await store.count() == 0
    await go(store, "hello")
    await count_loop(store, KEY, "s1")
    state = await store.get(scope("team-a", "s1"))
    assert state is not None and state.loops == 1 and state.requests == 1
