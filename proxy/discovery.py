"""Model discovery, the IO half: list every discovering backend's models at start, on each
reload (`update`), and every `discover` interval, and report the routes they make.

The mapping from listing to routes is `listing.py`'s; this module only fetches and keeps the
last result per backend. Invariant: an unreachable or garbled server is a warning (logged
once per outage, not per poll) and an empty list for that backend, never an exception out
of `update` and never a failed start; `on_change` is called only when the routes changed.
Every task this module starts is cancelled and awaited by `update` or `close`.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import aiohttp

from proxy.config import Backend, Model
from proxy.listing import discovered_routes, listing_request, parse_listing

log = logging.getLogger("llm_proxy.discovery")

TIMEOUT = 5.0  # seconds for one listing request, connect included (reloads wait for it)
MAX_LISTING = 8 * 2**20  # bytes: a listing larger than this is refused


class Discovery:
    def __init__(
        self, on_change: Callable[[tuple[Model, ...]], None], timeout: float = TIMEOUT
    ) -> None:
        self._on_change = on_change
        self._timeout = timeout
        self._backends: tuple[Backend, ...] = ()
        self._found: dict[str, tuple[Model, ...]] = {}
        self._down: set[str] = set()  # backends whose last listing failed (warned once)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def models(self) -> tuple[Model, ...]:
        """Every discovered model, backends in config order."""
        return tuple(m for b in self._backends for m in self._found.get(b.name, ()))

    async def update(self, backends: Sequence[Backend]) -> None:
        """Start over with these backends (at start and on each reload): list every
        discovering one now, then keep polling each at its own interval."""
        await self._stop()
        self._backends = tuple(b for b in backends if b.discover > 0 and b.enabled)
        before = self.models
        self._found = {}
        results = await asyncio.gather(*(self._list(b) for b in self._backends))
        for backend, models in zip(self._backends, results, strict=True):
            self._found[backend.name] = models
        self._report(before)
        self._tasks = [asyncio.create_task(self._poll(b)) for b in self._backends]

    async def close(self) -> None:
        await self._stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self, backend: Backend) -> None:
        while True:
            await asyncio.sleep(backend.discover)
            models = await self._list(backend)
            if models != self._found.get(backend.name):
                before = self.models
                self._found[backend.name] = models
                self._report(before)

    def _report(self, before: tuple[Model, ...]) -> None:
        after = self.models
        if after != before:
            log.info("discovered models changed: %d routable", len(after))
            self._on_change(after)

    async def _list(self, backend: Backend) -> tuple[Model, ...]:
        request = listing_request(backend)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # listings carry keys, never cookies
            )
        try:
            async with self._session.get(request.url, headers=list(request.headers)) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                body = await resp.content.read(MAX_LISTING + 1)
                if len(body) > MAX_LISTING:
                    raise ValueError("listing is too large")
            names = parse_listing(backend, body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if backend.name not in self._down:
                self._down.add(backend.name)
                log.warning(
                    "backend %r: cannot list its models (%s); none discovered until it answers",
                    backend.name,
                    str(exc) or type(exc).__name__,
                )
            return ()
        if backend.name in self._down:
            self._down.discard(backend.name)
            log.info("backend %r lists its models again", backend.name)
        return discovered_routes(backend, names)
