"""Who may talk to the gateway from a browser: the Host header (DNS rebinding) and CORS.
Pure.

A page on any site can make a browser send requests to a gateway on 127.0.0.1; two things
keep it from using one. A rebinding name (`evil.example` resolving to 127.0.0.1) arrives with
its own `Host`, so a gateway listening on loopback answers only loopback names unless
`settings.allowed_hosts` says otherwise. And a cross-site browser request gets CORS headers
(preflight included) only when its `Origin` is in `settings.cors_origins`; JSON endpoints
refuse bodies that are not `application/json`, which a page can only send after a preflight.
"""

import functools

from proxy.addresses import is_loopback


def host_name(host: bytes) -> str:
    """`Host` without its port: `[::1]:8080` → `[::1]`, `localhost:80` → `localhost`."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


@functools.lru_cache(maxsize=1024)  # per request on every path: parse each Host once
def host_allowed(host: bytes | None, allowed: tuple[str, ...] | None, bind: str | None) -> bool:
    """May a request with this `Host` be answered? `allowed` None: only loopback names when
    the gateway listens on a loopback address (`bind`), any name otherwise."""
    if allowed is None:
        if bind is None or not is_loopback(bind):
            return True
        return host is None or is_loopback(host_name(host))
    if "*" in allowed:
        return True
    return host is not None and host_name(host) in allowed


def origin_allowed(origin: bytes, origins: tuple[str, ...]) -> bool:
    return "*" in origins or origin.decode("latin-1").strip().lower().rstrip("/") in origins


def preflight_headers(origin: bytes, requested: bytes | None) -> list[tuple[bytes, bytes]]:
    """The answer to an allowed origin's preflight."""
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", requested or b"authorization, content-type"),
        (b"access-control-expose-headers", EXPOSED),
        (b"access-control-max-age", b"600"),
        (b"vary", b"origin"),
    ]


# What a browser client may read of an answer: the ids, the route facts, the limits.
EXPOSED = (
    b"x-request-id, x-proxy-backend, x-proxy-model, x-proxy-attempts, x-proxy-overhead-ms, "
    b"retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "
    b"x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, "
    b"x-ratelimit-reset-tokens"
)
