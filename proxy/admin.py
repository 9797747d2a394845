"""Everything off the hot path: health, readiness, models, metrics and `/admin/*`.

Admin output never shows a secret: keys, tokens and secret-looking header values read `***`.
`/admin/*` needs `Authorization: Bearer <admin_key>` when one is set, and a loopback client
when not.
"""

import asyncio
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State

from proxy import addresses, auth, errors
from proxy.config import ClientKey, Secret
from proxy.front.views import auth_view, config_view
from proxy.interactive import sessions
from proxy.observe import metrics
from proxy.runtime import Runtime, Snapshot
from proxy.state.store import StateUnavailable


def runtime_of(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def _is_loopback(request: Request[Any, Any, Any]) -> bool:
    client = request.client
    return client is not None and addresses.is_loopback(client.host)


def _check_admin(request: Request[Any, Any, Any], snapshot: Snapshot) -> None:
    admin_key = snapshot.settings.admin_key
    if admin_key is None:
        if not _is_loopback(request):
            raise errors.Forbidden(
                "admin endpoints answer only loopback clients when settings.admin_key is not set"
            )
        return
    if not _bearer_is(request, admin_key):
        raise errors.Unauthorized("admin endpoints need 'Authorization: Bearer <admin_key>'")


def _bearer_is(request: Request[Any, Any, Any], secret: Secret) -> bool:
    """The request's `Authorization: Bearer` is `secret` (compared as digests)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    given = hashlib.sha256(value.strip().encode()).digest()
    wanted = hashlib.sha256(secret.reveal().encode()).digest()
    return scheme.lower() == "bearer" and hmac.compare_digest(given, wanted)


def _caller(request: Request[Any, Any, Any], snapshot: Snapshot) -> ClientKey:
    """The caller's key, from the headers settings.key_headers names."""
    headers = request.scope["headers"]
    return snapshot.keyring.identify_headers(headers, snapshot.settings.key_headers)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", sync_to_thread=False)
def ready(state: State) -> Response[dict[str, Any]]:
    runtime = runtime_of(state)
    snapshot = runtime.snapshot
    now = time.monotonic()
    circuits = runtime.circuits
    live = [
        cand.key
        for alias in snapshot.table.aliases
        if (route := snapshot.table.resolve(alias)) is not None
        for tier in route.tiers
        for cand in tier
        if (c := circuits.get(cand.key)) is None or c.usable(now)
    ]
    ok = bool(live)
    body = {"status": "ready" if ok else "unavailable", "generation": snapshot.generation}
    return Response(body, status_code=200 if ok else 503)


def _anthropic_shape(request: Request[Any, Any, Any]) -> bool:
    return "anthropic-version" in request.headers or (
        "x-api-key" in request.headers and "authorization" not in request.headers
    )


def _model_entry(alias: str, created: int, anthropic: bool) -> dict[str, Any]:
    if anthropic:
        return {
            "id": alias,
            "type": "model",
            "display_name": alias,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        }
    return {"id": alias, "object": "model", "created": created, "owned_by": "llm-proxy"}


@get("/v1/models", sync_to_thread=False)
def list_models(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    snapshot = runtime_of(state).snapshot
    caller = _caller(request, snapshot)
    created = int(snapshot.loaded_at)
    anthropic = _anthropic_shape(request)
    aliases = [a for a in snapshot.table.aliases if auth.allowed(caller, a)]
    data = [_model_entry(a, created, anthropic) for a in aliases]
    if anthropic:
        return {
            "data": data,
            "has_more": False,
            "first_id": aliases[0] if aliases else None,
            "last_id": aliases[-1] if aliases else None,
        }
    return {"object": "list", "data": data}


@get("/v1/models/{model_id:path}", sync_to_thread=False)
def get_model(model_id: str, request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    snapshot = runtime_of(state).snapshot
    caller = _caller(request, snapshot)
    alias = model_id.lstrip("/")
    if alias not in snapshot.table.aliases or not auth.allowed(caller, alias):
        known = ", ".join(snapshot.table.suggestions(allowed=caller.models)) or "none"
        raise errors.UnknownModel(
            f"model '{alias}' is not routed here; known: {known}", param="model"
        )
    return _model_entry(alias, int(snapshot.loaded_at), _anthropic_shape(request))


@get("/admin/config", sync_to_thread=False)
def admin_config(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    runtime = runtime_of(state)
    snapshot = runtime.snapshot
    _check_admin(request, snapshot)
    return {
        "path": str(runtime.path),
        "generation": snapshot.generation,
        "loaded_at": snapshot.loaded_at,
        "last_reload_error": list(runtime.last_error) or None,
        "reloads": {"ok": runtime.reloads_ok, "failed": runtime.reloads_failed},
        "auth": auth_view(snapshot.config),
        "config": config_view(snapshot.config),
    }


@get("/admin/backends", sync_to_thread=False)
def admin_backends(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    runtime = runtime_of(state)
    snapshot = runtime.snapshot
    _check_admin(request, snapshot)
    now = time.monotonic()
    wall = time.time()
    targets = []
    for key, c in sorted(runtime.circuits.items()):
        st = c.state(now)
        targets.append(
            {
                "backend": key.backend,
                "model": key.model,
                "state": st,
                "consecutive_failures": c.failures,
                "reopens_at": wall + (c.open_until - now) if st == "open" else None,
                "last_error": c.last_error,
                "in_flight": c.in_flight,
                "ttfb_ewma_ms": None if c.ttfb is None else round(c.ttfb * 1000, 3),
            }
        )
    backends = {
        name: {
            "type": s.config.type,
            "enabled": s.config.enabled,
            "in_flight": s.transport.in_flight,
        }
        for name, s in snapshot.backends.items()
    }
    return {"generation": snapshot.generation, "backends": backends, "targets": targets}


@post("/admin/reload", status_code=200)
async def admin_reload(request: Request[Any, Any, Any], state: State) -> Response[dict[str, Any]]:
    runtime = runtime_of(state)
    _check_admin(request, runtime.snapshot)
    result = await runtime.reload("POST /admin/reload")
    if result.ok:
        runtime.broadcast()
    body = {"ok": result.ok, "generation": result.generation, "problems": list(result.problems)}
    return Response(body, status_code=200 if result.ok else 422)


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics_endpoint(request: Request[Any, Any, Any], state: State) -> str:
    """The whole gateway's metrics, every worker's included (see proxy/observe/metrics/)."""
    runtime = runtime_of(state)
    metrics_key = runtime.snapshot.settings.metrics_key
    if metrics_key is not None and not _bearer_is(request, metrics_key):
        raise errors.Unauthorized("/metrics needs 'Authorization: Bearer <metrics_key>'")
    return await metrics.scrape(runtime.metrics_info())


@get("/admin/usage")
async def admin_usage(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """The usage ledger (see proxy/state/report.py); registered once a Governor is built."""
    from proxy.state import report

    runtime = runtime_of(state)
    _check_admin(request, runtime.snapshot)
    governor = getattr(state, "governor", None)
    if governor is None:
        raise errors.NoTarget(
            "the usage ledger is not running in this gateway", code="state_unavailable"
        )
    try:
        query = report.parse_query(dict(request.query_params))
    except ValueError as err:
        raise errors.BadRequest(str(err)) from None
    try:
        rows = await governor.usage(query.where)
    except StateUnavailable as err:
        raise errors.NoTarget(
            f"the state store did not answer: {err}", code="state_unavailable"
        ) from None
    media, body = report.render(rows, query)
    return Response(body, media_type=media)


@delete("/admin/cache", status_code=200)
async def admin_cache_clear(
    request: Request[Any, Any, Any], state: State, model: str | None = None
) -> dict[str, Any]:
    """Empty the response cache (only `model`'s entries, by alias, when given): this worker's
    memory and the shared Redis tier; other workers' memory tiers keep theirs until expiry."""
    runtime = runtime_of(state)
    _check_admin(request, runtime.snapshot)
    cache = getattr(state, "cache", None)
    if cache is None:
        return {"cleared": 0, "model": model}
    alias = model
    if model is not None:
        route = runtime.snapshot.table.resolve(model)
        alias = route.alias if route is not None else model
    return {"cleared": await cache.clear(alias), "model": alias}


_UI_DIR = Path(__file__).parent / "ui"
_UI_TYPES = {  # Litestar adds "; charset=utf-8" to text/* itself
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# the page's files, by name: a fixed set read at import, so no request names a path
_UI_FILES = {
    p.name: (p, _UI_TYPES[p.suffix])
    for p in sorted(_UI_DIR.iterdir())
    if p.is_file() and p.suffix in _UI_TYPES
}


@get(["/ui", "/ui/{name:str}"])
async def ui(name: str = "index.html") -> Response[bytes]:
    """The playground page and its static files (`proxy/ui/`); nothing else under /ui."""
    found = _UI_FILES.get(name)
    if found is None:
        raise errors.NotFound(f"no such page file: {name!r}")
    path, media_type = found
    body = await asyncio.to_thread(path.read_bytes)
    return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})


@get("/admin/sessions")
async def admin_sessions(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    """How many sessions this worker holds; with `id` (and `key`, the client key's name, when
    the gateway has keys), that session's state."""
    runtime = runtime_of(state)
    _check_admin(request, runtime.snapshot)
    session_id, key = request.query_params.get("id"), request.query_params.get("key")
    store = runtime.sessions
    body: dict[str, Any] = {"count": await store.count()}
    if session_id is not None:
        owner = key or auth.ANONYMOUS.name
        scoped = sessions.scope(owner, session_id)
        found = await store.get(scoped)
        if found is None:
            ttl = runtime.snapshot.settings.sessions.ttl
            raise errors.NotFound(
                f"no session {session_id!r} for key {owner!r}: it never existed or was idle "
                f"over {ttl:g}s (pass key=NAME for a keyed client's session)"
            )
        body["session"] = sessions.view(scoped, found)
    return body
