"""Client keys: who is calling, and which models they may use.

Keys are looked up by their SHA-256 digest: the plain key is never stored, logged or
compared as a string. With no `keys:` section every caller is anonymous and allowed.
"""

import fnmatch
import hashlib
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
        key = self.by_digest.get(hashlib.sha256(presented).digest())
        if key is None:
            raise errors.Unauthorized(
                "the API key is not valid for this gateway: check the key you sent"
            )
        return key


def allowed(key: ClientKey, model: str) -> bool:
    return key.models is None or any(fnmatch.fnmatchcase(model, g) for g in key.models)


def check_model(key: ClientKey, model: str) -> None:
    if not allowed(key, model):
        raise errors.Forbidden(
            f"key '{key.name}' may not use model '{model}': ask the gateway's operator to allow it"
        )
