"""Single flight: the first of concurrent identical requests (the leader) asks the backend;
the others (followers) wait for its answer instead.

A `Flight` is the leader's `Exchange.tap`: it sees every byte the leader's client gets, in
order — the head's status, each chunk (keepalive comments left out), the last part — and
wakes the followers at each one, so a streaming follower relays the leader's chunks as they
arrive. `finish` says how it ended: with the entry to store (a clean 200), or None (error,
non-200, cancelled), in which case followers that have sent nothing make their own attempt.
Invariant: the chunks list only grows, and the last part is never relayed unless clean.
"""

import asyncio

from proxy import sse
from proxy.cache.entry import Entry


class Flight:
    """One leader's answer, as it goes out."""

    __slots__ = ("_changed", "chunks", "done", "entry", "include_usage", "status", "stream", "tail")

    def __init__(self, stream: bool, include_usage: bool) -> None:
        self.stream = stream  # the leader's client asked for a stream
        self.include_usage = include_usage
        self.status = 0
        self.chunks: list[bytes] = []  # body parts sent before the last one
        self.tail: bytes | None = None  # the last part, once sent
        self.done = False
        self.entry: Entry | None = None  # set by finish when the answer was clean
        self._changed = asyncio.Event()

    # -- the tap (called by the leader's Exchange) ---------------------------------------

    def head(self, status: int) -> None:
        self.status = status

    def chunk(self, data: bytes) -> None:
        if data and data != sse.KEEPALIVE:
            self.chunks.append(data)
            self._notify()

    def end(self, data: bytes) -> None:
        self.tail = data

    # -- the outcome -----------------------------------------------------------------------

    def body(self) -> bytes:
        return b"".join(self.chunks) + (self.tail or b"")

    def finish(self, entry: Entry | None) -> None:
        self.entry = entry
        self.done = True
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed(self) -> None:
        """Until the next chunk or the end."""
        await self._changed.wait()

    async def finished(self) -> None:
        while not self.done:
            await self._changed.wait()
