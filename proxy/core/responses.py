"""What the request path carries for a Responses API request (`POST /v1/responses`), and the
steps it takes on top of the other front doors: the decoded request and its stored history
come in with the request; each attempt asks `responses_route` what to send; a translated
answer is stored for `previous_response_id` continuations once it completed.

Invariant: only a translated answer that ended completed or incomplete is stored, under the
id the client received; a pass-through answer belongs to the backend that made it (OpenAI
stores its own), and a failed one has nothing to continue.
"""

import logging
from typing import NamedTuple

from proxy.responses_store import ResponsesStore, record
from schemas import responses as rs

log = logging.getLogger("llm_proxy.responses")


class ResponsesCall(NamedTuple):
    request: rs.Request  # the client's body, decoded once by the front door
    history: list[rs.InputItem] | None  # stored turns of previous_response_id; None: none
    id: str  # the response id the client gets (resp_...)
    created: int  # created_at, seconds
    store: ResponsesStore


async def keep(call: ResponsesCall, answer: bytes | rs.Response | None) -> None:
    """Store a translated answer for continuations (skipped as `record` says)."""
    if answer is None:
        return
    kept = record(call.request, call.history or (), answer)
    if kept is not None:
        if kept.id != call.id:  # the answer must carry the id the client was given
            log.warning("response id %s stored as %s", kept.id, call.id)
        await call.store.put(kept)
