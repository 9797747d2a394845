"""The cache key of a request, and what the client's `cache-control` header asks. Pure.

Key = sha256 of (namespace, endpoint, route alias, the request's fields in canonical form).
Canonical: every object's keys sorted, no insignificant whitespace, numbers and strings as
msgspec writes them. Transport-only fields (`stream`, `stream_options`) are left out, so a
streamed and a whole request for the same thing share one entry. The namespace is the client
key's name unless the route's cache is shared. The key never contains prompt text.
"""

import hashlib
from typing import Any, Literal

import msgspec

TRANSPORT_ONLY = frozenset(("stream", "stream_options"))
_decode = msgspec.json.Decoder(Any).decode
_canonical = msgspec.json.Encoder(order="sorted").encode

Control = Literal["use", "no-cache", "no-store"]


def canonical(fields: dict[str, msgspec.Raw]) -> bytes:
    """The fields' values in canonical form, transport-only fields left out."""
    kept = {k: _decode(v) for k, v in fields.items() if k not in TRANSPORT_ONLY}
    return _canonical(kept)


def key_of(fields: dict[str, msgspec.Raw], endpoint: str, alias: str, namespace: str | None) -> str:
    """The entry's key: hex sha256; `namespace` None for a shared cache."""
    h = hashlib.sha256()
    for part in (namespace or "", "\0", endpoint, "\0", alias, "\0"):
        h.update(part.encode())
    h.update(canonical(fields))
    return h.hexdigest()


def control(header: bytes | None) -> Control:
    """The request's `cache-control`: `no-store` (neither read nor write) beats `no-cache`
    (skip the lookup, store the answer); anything else uses the cache."""
    if not header:
        return "use"
    directives = {d.strip().split(b"=", 1)[0].lower() for d in header.split(b",")}
    if b"no-store" in directives:
        return "no-store"
    if b"no-cache" in directives:
        return "no-cache"
    return "use"
