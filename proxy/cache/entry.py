"""One cached answer, and its bytes in the Redis tier (msgpack)."""

import msgspec


class Entry(msgspec.Struct, array_like=True, gc=False):
    """One cached answer: the whole response body (200, JSON) in the entry's protocol."""

    body: bytes
    created: float  # wall clock when it was stored (for `age`)
    alias: str
    backend: str = ""
    provider_model: str = ""
    usage: bool = True  # False: assembled from an OpenAI stream sent without its usage chunk


pack = msgspec.msgpack.Encoder().encode
unpack = msgspec.msgpack.Decoder(Entry).decode
