"""Fake LLM upstreams for integration tests: real aiohttp servers, scripted per test.

A `FakeUpstream` is an aiohttp.web server on 127.0.0.1 that runs in its own thread with its
own event loop, so sync tests (the sync `openai` SDK) and async tests (on any loop) use it
alike. It speaks one wire (OpenAI, Anthropic or Gemini), records every request it receives,
in order, and answers each with the next scripted `Behaviour`, or a normal, deterministic
answer (`FakeUpstream.default`) once the script is used up.

Stream faults are placed by counting *content frames*: frames that carry text, a tool call or
a finish (what commits a gateway's stream). The wire's preamble is sent first and not
counted: OpenAI's role-only chunk, Anthropic's `message_start` and an empty text block's
`content_block_start`; Gemini has none. `after_chunks=N` fires the fault just before the
(N+1)-th content frame, or before the terminator (`[DONE]`, `message_stop`) when the stream
has no more; `N=0` is "after the preamble, before anything a gateway may commit on".

`closed_early` lists requests whose client (the gateway) went away before the response was
finished: noticed through handler cancellation on connection loss, or a failed write. Our
own resets and `stop()` are never counted.

Modules, imports pointing down: `server` (FakeUpstream: the app, the handler, the faults)
→ `wires` (bodies and frames per wire) → `answers` (one request's wire-neutral answer)
→ `received` (Recorded, which endpoint a request names) → `behaviours` (the script);
`blackhole` holds the places where nothing answers.
"""

from tests.upstreams.behaviours import (
    Behaviour,
    Kind,
    Wire,
    cut_before_done,
    garbage,
    never_answer,
    ok,
    preamble_then_fail,
    rate_limited,
    reset_before_headers,
    reset_mid_stream,
    slow_stream,
    stall_before_headers,
    stall_mid_stream,
    status,
    truncated_json,
    wrong_content_type,
)
from tests.upstreams.blackhole import Blackhole, refused_url
from tests.upstreams.received import Recorded
from tests.upstreams.server import HOLD_LIMIT, FakeUpstream
from tests.upstreams.wires import CREATED, error_body

__all__ = [
    "CREATED",
    "HOLD_LIMIT",
    "Behaviour",
    "Blackhole",
    "FakeUpstream",
    "Kind",
    "Recorded",
    "Wire",
    "cut_before_done",
    "error_body",
    "garbage",
    "never_answer",
    "ok",
    "preamble_then_fail",
    "rate_limited",
    "refused_url",
    "reset_before_headers",
    "reset_mid_stream",
    "slow_stream",
    "stall_before_headers",
    "stall_mid_stream",
    "status",
    "truncated_json",
    "wrong_content_type",
]
