"""One session's state: the overrides its commands set, and its counters.

A leaf value type shared by the command logic, the body rewrite and every session store.
Invariant: a `SessionState` is immutable and round-trips through `encode`/`decode`
unchanged, so a Redis store can hold the very bytes a memory store would.
"""

import msgspec

__all__ = ["SessionState", "decode", "encode"]


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    model: str | None = None  # the alias every turn is sent to instead of the client's
    backend: str | None = None  # only this backend's targets are tried
    params: tuple[tuple[str, str], ...] = ()  # body field → its JSON text, in `set` order
    requests: int = 0  # turns this session has made through the gateway
    commands: int = 0  # commands applied
    loops: int = 0  # streams cut as loops
    created: float = 0.0  # epoch seconds
    updated: float = 0.0

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def overrides(self) -> bool:
        """Whether a request of this session is rewritten at all."""
        return self.model is not None or self.backend is not None or bool(self.params)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(SessionState).decode


def encode(state: SessionState) -> bytes:
    return _encode(state)


def decode(data: bytes) -> SessionState:
    """Raises msgspec.DecodeError / ValidationError on bytes no store of ours wrote."""
    return _decode(data)
