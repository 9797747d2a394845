"""One request's pass through the session layer: load, run commands, override, store.

The front doors call `steer` once, after the body is parsed and before the model is checked
against the key and routed. It answers commands-only (or failed-command) messages itself with
a `Reply`, or hands back a `Steered` request: the body with commands stripped and the
session's overrides applied, the model to route, and the backend the session is pinned to.
Invariant: the session is written at most once per request, after its commands are applied,
and a key only ever sees and changes sessions scoped to its own name.
"""

from collections.abc import Callable, Mapping
from typing import Literal, NamedTuple

import msgspec

from proxy import auth, errors
from proxy.config import ClientKey, Config, LoopDetection, Settings
from proxy.interactive import commands, replies, rewrite, sessions
from proxy.interactive.commands import Allowed
from proxy.interactive.sessions import SessionStore
from proxy.interactive.state import SessionState
from proxy.routing import Route, RouteTable

__all__ = [
    "Reply",
    "Steered",
    "allowed_for",
    "count_loop",
    "loops_for",
    "only_backend",
    "steer",
]

Front = Literal["openai", "anthropic"]
_STEERABLE = ("chat", "messages")  # the endpoints whose bodies carry `messages`


class Reply(NamedTuple):
    """The gateway answers: 200 with this body and content type; no backend is called."""

    body: bytes
    content_type: bytes
    session: str | None  # the unscoped id, for the access log and spans


class Steered(NamedTuple):
    fields: rewrite.Fields
    body: bytes | None  # the re-encoded body; None: the client's bytes go as they came
    model: str  # what to check against the key and route
    backend: str | None  # try only this backend's targets
    session: str | None


def allowed_for(key: ClientKey, table: RouteTable, config: Config) -> Allowed:
    enabled = tuple(b.name for b in config.backends if b.enabled)
    return Allowed(
        may_use=lambda model: auth.allowed(key, model),
        routed=lambda model: table.resolve(model) is not None,
        backends=enabled,
    )


def only_backend(route: Route, backend: str) -> Route | None:
    """`route` with only `backend`'s targets; None when it has none there."""
    tiers = tuple(
        kept for tier in route.tiers if (kept := tuple(c for c in tier if c.key.backend == backend))
    )
    return route._replace(tiers=tiers) if tiers else None


def loops_for(config: Config, alias: str) -> LoopDetection:
    """Loop detection for the model `alias` (as `Route.alias` names it)."""
    for model in config.models:
        if model.alias == alias:
            return model.loop_detection
    return config.settings.loop_detection


async def steer(
    store: SessionStore,
    settings: Settings,
    *,
    headers: Mapping[bytes, bytes],
    fields: rewrite.Fields,
    front: Front,
    endpoint: str,
    model: str,
    stream: bool,
    include_usage: bool,
    key: ClientKey,
    allowed: Allowed | Callable[[], Allowed],  # a callable: built only for a command
    request_id: str,
    now: float,
) -> Reply | Steered:
    if endpoint not in _STEERABLE:
        return Steered(fields, None, model, None, None)
    try:
        sid = sessions.session_id(headers, fields, front, key.name, derive=settings.sessions.derive)
    except sessions.BadSessionId as err:
        raise errors.BadRequest(str(err)) from err
    scoped = sessions.scope(key.name, sid) if sid is not None else None
    state: SessionState | None = None
    if scoped is not None:
        state = await store.get(scoped) or SessionState(created=now, updated=now)
    prefix = settings.commands.prefix
    found = rewrite.find(fields, prefix) if settings.commands.enabled else None
    changed = False
    if found is not None:
        if not isinstance(allowed, Allowed):
            allowed = allowed()
        outcome = commands.apply(state, found.commands, allowed, prefix=prefix, session_id=sid)
        if found.only or not outcome.ok:
            if scoped is not None and outcome.state is not None:
                await store.put(scoped, sessions.turn(outcome.state, now))
            body = replies.render(
                front,
                outcome.reply,
                model=model,
                reply_id=request_id,
                created=int(now),
                stream=stream,
                include_usage=include_usage,
            )
            return Reply(body, replies.CONTENT_TYPE[stream], sid)
        state, fields, changed = outcome.state, found.fields, True
    if scoped is None or state is None:
        return Steered(fields, rewrite.encode(fields) if changed else None, model, None, sid)
    state = sessions.turn(state, now)
    await store.put(scoped, state)
    if state.model is not None or state.params:
        fields, changed = rewrite.with_overrides(fields, state), True
    return Steered(
        fields,
        rewrite.encode(fields) if changed else None,
        state.model or model,
        state.backend,
        sid,
    )


async def count_loop(store: SessionStore, key: ClientKey, session: str | None) -> None:
    """One more stream of this session cut as a loop (for `!/session` and the admin view)."""
    if session is None:
        return
    scoped = sessions.scope(key.name, session)
    state = await store.get(scoped)
    if state is not None:
        await store.put(scoped, msgspec.structs.replace(state, loops=state.loops + 1))
