"""Python load generators: closed loop (wrk's fallback), paced at a fixed rate (wrk2's
stand-in), and many concurrent streams whose every event is verified.

Every loop is bounded by a deadline and a count; latencies of the paced sender are taken
from each request's *scheduled* start, so a stalled target can't hide its queueing
(coordinated omission).
"""

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
import msgspec

from bench.report import percentile, summarize
from bench.verify import SSESplitter, verify_stream

HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
_CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def chat_body(
    model: str,
    stream: bool = False,
    max_tokens: int = 32,
    user: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    if user is not None:
        body["user"] = user
    if metadata:
        body["metadata"] = dict(metadata)
    return msgspec.json.encode(body)


def _session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=_REQUEST_TIMEOUT)


def _describe(status: int, body: bytes) -> str:
    return f"HTTP {status}: {body[:200].decode(errors='replace')}"


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    header_values: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    elapsed_s: float = 0.0

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message

    def metrics(self) -> dict[str, float]:
        out = summarize(self.latencies_ms)
        out["rps"] = len(self.latencies_ms) / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out["errors"] = float(self.errors)
        if self.header_values:
            out["header_p50"] = percentile(self.header_values, 50) or 0.0
            out["header_p99"] = percentile(self.header_values, 99) or 0.0
        return out


async def closed_loop(
    url: str,
    body: bytes,
    connections: int,
    duration_s: float,
    header: str | None = None,
    max_requests: int = 2_000_000,
) -> LoadResult:
    """`connections` workers each send a request as soon as the last one finished."""
    result = LoadResult()
    sent = 0

    async def worker(session: aiohttp.ClientSession, end: float) -> None:
        nonlocal sent
        while time.perf_counter() < end and sent < max_requests:
            sent += 1
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=HEADERS) as resp:
                    data = await resp.read()
                    value = resp.headers.get(header) if header else None
            except _CLIENT_ERRORS as exc:
                result.fail(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)  # a dead target must not become a busy loop
                continue
            if resp.status != 200:
                result.fail(_describe(resp.status, data))
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if value is not None:
                try:
                    result.header_values.append(float(value))
                except ValueError:
                    result.fail(f"{header} is not a number: {value[:50]!r}")

    async with _session(connections) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, start + duration_s) for _ in range(connections)))
        result.elapsed_s = time.perf_counter() - start
    return result


@dataclass
class PacedResult:
    rate: float
    scheduled: int
    latencies_ms: list[float] = field(default_factory=list)  # from the scheduled start
    lag_ms: list[float] = field(default_factory=list)  # actual send - scheduled send
    dropped: int = 0  # not sent: too many already in flight
    errors: int = 0
    first_error: str | None = None
    elapsed_s: float = 0.0

    @property
    def achieved_rps(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def held(self) -> bool:
        """Every scheduled request was sent on time and answered, at ≥ 95% of the rate."""
        lag99 = percentile(self.lag_ms, 99) or 0.0
        return (
            self.dropped == 0
            and self.errors == 0
            and len(self.latencies_ms) == self.scheduled
            and lag99 <= 10.0
            and self.achieved_rps >= 0.95 * self.rate
        )

    def metrics(self) -> dict[str, float]:
        out = summarize(self.latencies_ms)
        out.update(
            rps=self.achieved_rps,
            held=1.0 if self.held else 0.0,
            lag_p99=percentile(self.lag_ms, 99) or 0.0,
            dropped=float(self.dropped),
            errors=float(self.errors),
        )
        return out


async def paced(
    url: str, body: bytes, rate: float, duration_s: float, max_inflight: int = 2000
) -> PacedResult:
    """Open loop: request i is due at start + i/rate whether or not earlier ones finished.
    Times come from perf_counter: uvloop's loop.time() only has millisecond resolution."""
    clock = time.perf_counter
    result = PacedResult(rate=rate, scheduled=max(1, int(rate * duration_s)))
    tasks: set[asyncio.Task[None]] = set()
    last_end = 0.0

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        nonlocal last_end
        try:
            async with session.post(url, data=body, headers=HEADERS) as resp:
                data = await resp.read()
        except _CLIENT_ERRORS as exc:
            result.errors += 1
            result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
            return
        if resp.status != 200:
            result.errors += 1
            result.first_error = result.first_error or _describe(resp.status, data)
            return
        last_end = clock()
        result.latencies_ms.append((last_end - due) * 1000)

    async with _session(max_inflight) as session:
        start = clock() + 0.02
        i = 0
        try:
            while i < result.scheduled:
                now = clock()
                while i < result.scheduled and start + i / rate <= now:
                    due = start + i / rate
                    i += 1
                    if len(tasks) >= max_inflight:
                        result.dropped += 1
                        continue
                    result.lag_ms.append((now - due) * 1000)
                    task = asyncio.create_task(one(session, due))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if i < result.scheduled:
                    # ≥ 1 ms: uvloop timers have ms resolution, shorter sleeps would spin
                    await asyncio.sleep(max(0.001, start + i / rate - clock()))
            if tasks:
                _, pending = await asyncio.wait(set(tasks), timeout=35)
                result.errors += len(pending)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        result.elapsed_s = (last_end if result.latencies_ms else clock()) - start
    return result


@dataclass
class StreamsResult:
    count: int
    chunks: int
    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)  # arrival - upstream's schedule
    ok: int = 0
    lost: int = 0  # streams that lost an event (failed ones included)
    reordered: int = 0  # streams with an event out of order or twice
    garbled: int = 0  # streams with an event that isn't what the upstream sent
    failed: int = 0  # HTTP error, connection error or timeout
    max_open: int = 0
    first_error: str | None = None

    def metrics(self) -> dict[str, float]:
        return {
            "ttft_p50": percentile(self.ttft_ms, 50) or 0.0,
            "ttft_p99": percentile(self.ttft_ms, 99) or 0.0,
            "gap_p50": percentile(self.gaps_ms, 50) or 0.0,
            "gap_p99": percentile(self.gaps_ms, 99) or 0.0,
            "gap_max": max(self.gaps_ms, default=0.0),
            "late_p50": percentile(self.late_ms, 50) or 0.0,
            "late_p99": percentile(self.late_ms, 99) or 0.0,
            "ok": float(self.ok),
            "lost": float(self.lost),
            "reordered": float(self.reordered),
            "garbled": float(self.garbled),
            "failed": float(self.failed),
            "max_open": float(self.max_open),
        }


@dataclass(frozen=True)
class Pace:
    """The delayed upstream's schedule: first event after first_ms, then one every gap_ms.
    With send, the request asks for it (metadata.bench_*_ms) instead of the default."""

    first_ms: float = 50.0
    gap_ms: float = 10.0
    send: bool = False

    def metadata(self) -> dict[str, str] | None:
        if not self.send:
            return None
        return {"bench_first_ms": f"{self.first_ms:g}", "bench_gap_ms": f"{self.gap_ms:g}"}


async def streams(
    url: str,
    model: str,
    count: int,
    chunks: int,
    timeout_s: float,
    tag: str = "s",
    pace: Pace = Pace(),
) -> StreamsResult:
    """Open `count` streams at once from the delayed upstream and verify every event;
    lateness is each event's arrival minus when the upstream's schedule had it due."""
    result = StreamsResult(count=count, chunks=chunks)
    open_now = 0

    async def one(session: aiohttp.ClientSession, nonce: str) -> None:
        nonlocal open_now
        body = chat_body(model, True, chunks, nonce, pace.metadata())
        splitter = SSESplitter()
        payloads: list[bytes] = []
        times: list[float] = []
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=HEADERS) as resp:
                if resp.status != 200:
                    raise RuntimeError(_describe(resp.status, await resp.read()))
                open_now += 1
                result.max_open = max(result.max_open, open_now)
                try:
                    async for data in resp.content.iter_any():
                        now = time.perf_counter()
                        for payload in splitter.feed(data):
                            payloads.append(payload)
                            times.append(now)
                finally:
                    open_now -= 1
        except (*_CLIENT_ERRORS, RuntimeError) as exc:
            result.failed += 1
            result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
        check = verify_stream(payloads, nonce, chunks)
        if times:
            result.ttft_ms.append((times[0] - t0) * 1000)
            content_times = times[: check.received]
            result.gaps_ms.extend((b - a) * 1000 for a, b in itertools.pairwise(content_times))
            due = t0 + pace.first_ms / 1000
            result.late_ms.extend(
                (at - due - k * pace.gap_ms / 1000) * 1000 for k, at in enumerate(content_times)
            )
        result.ok += check.ok
        result.lost += check.lost > 0
        result.reordered += (check.reordered + check.duplicated) > 0
        result.garbled += check.garbled > 0

    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        jobs = [asyncio.create_task(one(session, f"{tag}{i}")) for i in range(count)]
        try:
            _, pending = await asyncio.wait(jobs, timeout=timeout_s + 5)
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        if pending:
            result.failed += len(pending)
            result.lost += len(pending)
            result.first_error = result.first_error or f"{len(pending)} streams never finished"
    return result
