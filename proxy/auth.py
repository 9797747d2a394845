"""Client keys: who is calling, and which models they may use.

Keys are looked up by their SHA-256 digest: the plain key is never stored, logged or
compared as a string. With no `keys:` section every caller is anonymous and allowed.
"""

import fnmatch
import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from proxy import errors
from proxy.config import ClientKey

ANONYMOUS = ClientKey(name="anonymous", digest=b"")


class Keyring(NamedTuple):
    by_digest: dict[bytes, ClientKey] | None  # None: no client auth

    @classmethod
    def build(cls, keys: tuple[ClientKey, ...] | None) -> "Keyring":
        return cls(None if keys is None else {k.digest: k for k in keys})

    def identify(self, authorization: bytes | None, api_key: bytes | None) -> ClientKey:
        if self.by_digest is None:
            return ANONYMOUS
        presented = api_key
        if authorization is not None:
            scheme, _, value = authorization.partition(b" ")
            if scheme.lower() == b"bearer" and value.strip():
                presented = value.strip()
        if not presented:
            raise errors.Unauthorized(
                "no API key: send your gateway key as 'Authorization: Bearer KEY' "
                "or 'x-api-key: KEY'"
            )
        return self._lookup(presented)

    def identify_headers(
        self, headers: Iterable[tuple[bytes, bytes]], key_headers: Sequence[str]
    ) -> ClientKey:
        """The caller, from the first of `key_headers` (settings.key_headers) that carries a key."""
        if self.by_digest is None:
            return ANONYMOUS
        presented = pick_key(headers, key_headers)
        if not presented:
            ways = " or ".join(
                "'Authorization: Bearer KEY'" if h == "authorization" else f"'{h}: KEY'"
                for h in key_headers
            )
            raise errors.Unauthorized(f"no API key: send your gateway key as {ways}")
        return self._lookup(presented)

    def _lookup(self, presented: bytes) -> ClientKey:
        assert self.by_digest is not None
        key = self.by_digest.get(hashlib.sha256(presented).digest())
        if key is None:
            raise errors.Unauthorized(
                "the API key is not valid for this gateway: check the key you sent"
            )
        return key


def pick_key(headers: Iterable[tuple[bytes, bytes]], key_headers: Sequence[str]) -> bytes | None:
    """The client key from the first of `key_headers` (lowercase names, in order) that carries
    one. `authorization` counts only as `Bearer KEY`; any other header's value is the key
    (an optional `Bearer ` before it is dropped). Headers are ASGI's (name, value) pairs."""
    found: dict[bytes, bytes] = {}
    wanted = {h.encode("latin-1") for h in key_headers}
    for name, value in headers:
        lower = name.lower()
        if lower in wanted and lower not in found:
            found[lower] = value
    for header in key_headers:
        raw = found.get(header.encode("latin-1"))
        if raw is None:
            continue
        scheme, space, rest = raw.strip().partition(b" ")
        if space and scheme.lower() == b"bearer":
            raw = rest
        elif header == "authorization":
            continue  # `Basic ...` and the like are not our keys
        if raw.strip():
            return raw.strip()
    return None


def allowed(key: ClientKey, model: str) -> bool:
    return key.models is None or any(fnmatch.fnmatchcase(model, g) for g in key.models)


def check_model(key: ClientKey, model: str) -> None:
    if not allowed(key, model):
        raise errors.Forbidden(
            f"key '{key.name}' may not use model '{model}': ask the gateway's operator to allow it"
        )
