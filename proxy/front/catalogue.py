"""The model catalogue: `GET /v1/llm/models` and `GET /models`.

Every alias and glob the caller's key may use, with its targets (backend, backend type,
provider model, priority, weight), whether each streams, its circuit state, and prices when
the config has them. Invariant: built from one snapshot (a reload never mixes two configs
into one answer), and nothing in it is a secret: no keys, base URLs or upstream headers.
"""

import time
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State

from proxy import auth
from proxy.config import Backend, ClientKey, Model, Target
from proxy.resilience import Circuit
from proxy.routing import TargetKey
from proxy.runtime import Runtime, Snapshot


def _runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def caller(request: Request[Any, Any, Any], snapshot: Snapshot) -> ClientKey:
    """The caller's key, from the headers `settings.key_headers` names."""
    headers = request.scope["headers"]
    return snapshot.keyring.identify_headers(headers, snapshot.settings.key_headers)


def _target(
    alias: str,
    t: Target,
    backends: dict[str, Backend],
    circuits: dict[TargetKey, Circuit],
    now: float,
) -> dict[str, Any]:
    backend = backends[t.backend]
    model = alias if t.model is None else t.model
    circuit = circuits.get(TargetKey(t.backend, model))
    entry: dict[str, Any] = {
        "backend": t.backend,
        "type": backend.type,
        "model": model,
        "priority": t.priority,
        "weight": t.weight,
        "stream": backend.stream,
        "enabled": backend.enabled,
        "circuit": "closed" if circuit is None else circuit.state(now),
    }
    price = getattr(t, "price", None)  # per-target prices, where the config has them
    if price is not None:
        entry["price"] = msgspec.to_builtins(price)
    return entry


def entry(
    model: Model, snapshot: Snapshot, circuits: dict[TargetKey, Circuit], now: float
) -> dict[str, Any]:
    backends = {b.name: b for b in snapshot.config.backends}
    targets = [_target(model.alias, t, backends, circuits, now) for t in model.targets]
    live = [t for t in targets if t["enabled"] and t["circuit"] != "open"]
    return {
        "id": model.alias,
        "object": "model",
        "glob": "*" in model.alias,
        "strategy": model.strategy,
        "available": bool(live),
        "stream": any(t["stream"] for t in live),
        "targets": targets,
    }


def listing(
    snapshot: Snapshot,
    key: ClientKey,
    circuits: dict[TargetKey, Circuit],
    now: float,
    discovered: Sequence[Model] = (),
) -> dict[str, Any]:
    """The configured aliases, then the discovered ones this snapshot routes (`discover:`)."""
    configured = {m.alias for m in snapshot.config.models}
    routed = set(snapshot.table.aliases)
    found = [m for m in discovered if m.alias in routed and m.alias not in configured]
    models = [m for m in (*snapshot.config.models, *found) if auth.allowed(key, m.alias)]
    return {
        "object": "list",
        "generation": snapshot.generation,
        "data": [entry(m, snapshot, circuits, now) for m in models],
    }


@get(["/v1/llm/models", "/models"], sync_to_thread=False)
def catalogue(request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
    runtime = _runtime(state)
    snapshot = runtime.snapshot
    key = caller(request, snapshot)
    return listing(snapshot, key, runtime.circuits, time.monotonic(), runtime.discovered)
