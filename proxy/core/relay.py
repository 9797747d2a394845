"""The IO loop around the stream core: read upstream chunks, do what `stream.Stream` says.

All decisions (commit, usage, completeness, caps) are the core's; this loop only reads,
sends through the exchange, and raises the core's `UpstreamFailure`. A failure after commit
has already reached the client as an error event when this raises, so the attempt loop only
records it.
"""

import time

from proxy.core.exchange import Exchange
from proxy.core.stream import Commit, Data, End, Stream
from proxy.errors import UpstreamFailure
from proxy.interactive.guard import LoopGuard
from proxy.providers.transport import UpstreamResponse
from proxy.tracing import AttemptSpan


async def relay(
    ex: Exchange,
    upstream: UpstreamResponse,
    stream: Stream,
    backend: tuple[str, str],
    span: AttemptSpan,
    t0: float,
    loops: LoopGuard | None = None,
) -> None:
    """Relay one upstream SSE response to the client; raises `UpstreamFailure` if it fails."""
    ctype = upstream.headers.get("content-type", "")
    # NDJSON servers label it variously (application/x-ndjson, application/json, text/plain):
    # the line decoder and the translator judge the bytes instead.
    if stream.framing == "sse" and "event-stream" not in ctype:
        raise UpstreamFailure(
            "protocol", f"upstream answered a stream request with {ctype or 'no content type'}"
        )
    rec = ex.record
    try:
        while not stream.done:
            chunk = await upstream.read_chunk()
            for action in stream.feed(chunk) if chunk else stream.eof():
                if isinstance(action, Data):
                    if loops is not None and (loop := loops.feed(action.data)) is not None:
                        await ex.fail(loop)  # the target is healthy; its output is not
                        return
                    await ex.chunk(action.data)
                elif isinstance(action, Commit):
                    await ex.quiet()
                    ex.committed = True
                    rec.status = 200
                    rec.ttft_ms = (time.perf_counter() - t0) * 1000.0
                    span.first_token()
                    await ex.stream_head(backend)
                    if action.data:
                        if loops is not None and (loop := loops.feed(action.data)) is not None:
                            await ex.fail(loop)
                            return
                        await ex.chunk(action.data)
                elif isinstance(action, End):
                    await ex.end(action.data)
                else:
                    raise action
    except UpstreamFailure as failure:
        if ex.committed:
            if failure.reported:  # the upstream's own error frame went out: just end
                await ex.end()
            else:
                await ex.fail(failure.error())
            rec.error_type = failure.kind
        raise
    finally:
        if stream.usage is not None:
            rec.tokens_in, rec.tokens_out = stream.usage
            span.usage(*stream.usage)
