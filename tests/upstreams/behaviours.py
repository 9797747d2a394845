"""What a test scripts: how the fake upstream answers one request.

A `Behaviour` is a frozen value; the functions here build the usual ones. Stream faults count
*content frames* (text, a tool call, a finish), never the wire's preamble: `after_chunks=N`
fires just before the (N+1)-th content frame, or before the terminator when there is none.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Wire = Literal["openai", "anthropic", "gemini"]
Kind = Literal[
    "ok",
    "status",
    "stall_before_headers",
    "never_answer",
    "reset_before_headers",
    "stall_mid_stream",
    "reset_mid_stream",
    "cut_before_done",
    "garbage",
    "truncated_json",
    "wrong_content_type",
]


@dataclass(frozen=True)
class Behaviour:
    """How the upstream answers one request. Build with the functions below; adjust with
    `dataclasses.replace`, e.g. `replace(reset_mid_stream(2), text="a b c d")`."""

    kind: Kind = "ok"
    # the answer (every kind that answers normally, faults included)
    text: str | None = None  # None: derived from the request
    chunks: tuple[str, ...] | None = None  # content pieces; None: `text` split at words
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, arguments JSON)
    usage: tuple[int, int] | None = None  # (prompt, completion); None: derived
    finish_reason: str | None = None  # wire-native override ("length", "max_tokens", ...)
    first_delay: float = 0.0  # before the first content frame (non-stream: before headers)
    interval: float = 0.0  # between content frames
    # status answers and extra headers (added to every kind's response)
    status: int = 200
    body: bytes | str | Mapping[str, Any] | None = None  # None: the wire's error shape
    headers: tuple[tuple[str, str], ...] = ()
    # faults
    seconds: float = 0.0  # stall length
    after_chunks: int | None = None  # None: just before the terminator
    rst: bool = False  # reset with SO_LINGER 0 (a real RST) instead of a plain close
    sse: bool | None = None  # garbage(): SSE framing; None: as the request asked


def _pairs(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((headers or {}).items())


def ok(
    text: str | None = None,
    chunks: Sequence[str] | None = None,
    interval: float = 0.0,
    first_delay: float = 0.0,
    tool_calls: Sequence[tuple[str, str]] | None = None,
    usage: tuple[int, int] | None = None,
    *,
    finish_reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Behaviour:
    """A normal answer. `chunks` wins over `text`; `tool_calls` follow any text."""
    return Behaviour(
        text=text,
        chunks=tuple(chunks) if chunks is not None else None,
        interval=interval,
        first_delay=first_delay,
        tool_calls=tuple(tool_calls or ()),
        usage=usage,
        finish_reason=finish_reason,
        headers=_pairs(headers),
    )


def status(
    code: int,
    body: bytes | str | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Behaviour:
    """`code` with `body` (a Mapping is sent as JSON), by default the wire's error shape."""
    return Behaviour(kind="status", status=code, body=body, headers=_pairs(headers))


def rate_limited(
    retry_after: str | int | None = "2", ms: float | None = None, *, code: int = 429
) -> Behaviour:
    """429 (or `code`, e.g. 529) with `retry-after` and, when given, `retry-after-ms`."""
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if ms is not None:
        headers["retry-after-ms"] = str(ms)
    return status(code, headers=headers)


def stall_before_headers(seconds: float) -> Behaviour:
    """Sleep before sending anything, then answer normally."""
    return Behaviour(kind="stall_before_headers", seconds=seconds)


def never_answer() -> Behaviour:
    """Hold the request, no headers, until the client goes away or the server stops."""
    return Behaviour(kind="never_answer")


def reset_before_headers() -> Behaviour:
    """Close the connection without answering."""
    return Behaviour(kind="reset_before_headers")


def stall_mid_stream(after_chunks: int, seconds: float) -> Behaviour:
    """Pause `seconds` after `after_chunks` content frames, then finish the stream.
    Non-stream: half the body, the pause, the rest."""
    return Behaviour(kind="stall_mid_stream", after_chunks=after_chunks, seconds=seconds)


def reset_mid_stream(after_chunks: int, *, rst: bool = False) -> Behaviour:
    """Abort the TCP transport after `after_chunks` content frames (non-stream: half the
    body). A plain abort closes with FIN, so the client reads every byte sent and then a
    body that never finished; `rst=True` sends a real RST, which may discard unread bytes."""
    return Behaviour(kind="reset_mid_stream", after_chunks=after_chunks, rst=rst)


def cut_before_done(after_chunks: int | None = None) -> Behaviour:
    """End the body cleanly, without `[DONE]` / `message_stop`; `after_chunks` cuts earlier.
    Gemini has no terminator: only an earlier cut shows. Non-stream: half the JSON."""
    return Behaviour(kind="cut_before_done", after_chunks=after_chunks)


def garbage(*, sse: bool | None = None) -> Behaviour:
    """200 with bytes that are not JSON: under a JSON content type, or (stream requests, or
    `sse=True`) as the `data` of an SSE frame under `text/event-stream`."""
    return Behaviour(kind="garbage", sse=sse)


def truncated_json() -> Behaviour:
    """200 whose JSON stops halfway; streams send the preamble, then half a content frame."""
    return Behaviour(kind="truncated_json")


def wrong_content_type() -> Behaviour:
    """200 `text/html`, whatever was asked (a captive portal, a misrouted proxy)."""
    return Behaviour(kind="wrong_content_type")


def preamble_then_fail(
    kind: Literal["reset", "stall"] = "reset", seconds: float = 30.0
) -> Behaviour:
    """Only the preamble (role chunk / message_start), then reset, or stall `seconds`."""
    if kind == "reset":
        return reset_mid_stream(0)
    return stall_mid_stream(0, seconds)


def slow_stream(
    first_delay: float = 0.0, interval: float = 0.0, chunks: int | Sequence[str] = 5
) -> Behaviour:
    """A normal answer paced out: `chunks` pieces (a count gives "w0 w1 ...")."""
    pieces = [f" w{i}" if i else "w0" for i in range(chunks)] if isinstance(chunks, int) else chunks
    return ok(chunks=pieces, first_delay=first_delay, interval=interval)
