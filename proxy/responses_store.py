"""Responses the gateway produced, kept for `previous_response_id` continuations and for
`GET` / `DELETE /v1/responses/{id}`.

`ResponsesStore` is the interface (async, so a shared store such as Redis can stand behind it);
`MemoryStore` is the in-process one: a `cachetools.TTLCache` bounded by total bytes, each record
expiring `ttl` seconds after it was stored. Invariant: a record is immutable bytes — the
response object exactly as the client received it, and the conversation so far as a JSON array
of input items (see `proxy.translate.responses_chat.conversation`) — so what a continuation
rebuilds never depends on the config or backend of the turn that stored it. A record too large
for the whole store is not stored (and a continuation naming it gets the usual 400).
"""

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec
from cachetools import TTLCache

from proxy.translate import responses_chat
from proxy.translate.common import TranslationError
from schemas import responses as rs

_log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_response = msgspec.json.Decoder(rs.Response)


class Stored(msgspec.Struct, frozen=True):
    id: str
    response: bytes  # the response object, the body of GET /v1/responses/{id}
    conversation: bytes  # JSON array of input items: earlier turns, this input, this output


class ResponsesStore(Protocol):
    async def get(self, id: str) -> Stored | None: ...

    async def put(self, record: Stored) -> None: ...

    async def delete(self, id: str) -> bool: ...


def _size(record: Stored) -> int:
    return len(record.id) + len(record.response) + len(record.conversation)


class MemoryStore:
    def __init__(
        self,
        ttl: float,
        max_bytes: int = 64 * 2**20,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: TTLCache[str, Stored] = TTLCache(
            maxsize=max_bytes, ttl=ttl, timer=timer, getsizeof=_size
        )

    async def get(self, id: str) -> Stored | None:
        return self._cache.get(id)

    async def put(self, record: Stored) -> None:
        try:
            self._cache[record.id] = record  # evicts the oldest records to make room
        except ValueError:  # cachetools: larger than the whole cache
            _log.warning("response %s is too large to store (%d bytes)", record.id, _size(record))

    async def delete(self, id: str) -> bool:
        return self._cache.pop(id, None) is not None

    def __len__(self) -> int:
        return len(self._cache)


def record(
    request: rs.Request, history: Sequence[rs.InputItem], response: bytes | rs.Response
) -> Stored | None:
    """What to store for an answered request, or None: not with `store: false`, not for a
    failed response (nothing to continue), not for a body that is not a response object."""
    if request.store is False:
        return None
    if isinstance(response, bytes):
        try:
            decoded = _response.decode(response)
        except msgspec.DecodeError:
            return None
        body = response
    else:
        decoded, body = response, _encode(response)
    if decoded.status == "failed":
        return None
    conversation = responses_chat.conversation(request, history, decoded)
    return Stored(id=decoded.id, response=body, conversation=conversation)


def new_id() -> str:
    """A fresh response id in OpenAI's shape."""
    return "resp_" + secrets.token_hex(24)


def unknown(id: str) -> TranslationError:
    """The 400 for a `previous_response_id` this gateway does not hold."""
    return TranslationError(
        f"previous_response_id {id!r} is not stored by this gateway (it expired, was deleted, "
        "was made with store: false, or came from elsewhere); send the whole conversation "
        "in input instead",
        "previous_response_id",
    )


def deleted(id: str) -> bytes:
    """The body of a successful DELETE."""
    return _encode(rs.Deleted(id=id))
