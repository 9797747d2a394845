"""`RequestRecord`: one request's facts, filled in over its life and reported once at its end.

A leaf: the front doors and the core write it, `proxy.telemetry.finish` hands it to the
metrics, the server span and the access log, so they never disagree. It names the client key,
never holds it.
"""

import msgspec


class RequestRecord(msgspec.Struct, gc=False):
    """One request's facts; `telemetry.finish` reports them."""

    request_id: str
    endpoint: str
    front: str
    stream: bool
    started: float  # time.time() at arrival
    key_name: str | None = None  # the client key's configured name, never the key
    alias: str | None = None  # the route's alias (or glob), not the client's raw model text
    backend: str | None = None
    backend_type: str | None = None
    provider_model: str | None = None
    status: int = 0
    attempts: int = 0
    overhead_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float = 0.0
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None  # None: price unknown (filled from LLM_PROXY_PRICES if set)
    cache: str | None = None  # "hit" | "miss" | "bypass" ...; None: no cache involved
    error_type: str | None = None
    prompt: str | None = None  # only when log_prompts != "none" (see accesslog.prompt_text)
    session: str | None = None  # the session id (x-session-id, metadata.user_id or derived)
