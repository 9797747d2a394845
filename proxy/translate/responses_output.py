"""The Responses API response object and its output items, as the chat translators build them:
the in-progress shell that echoes the request, item ids, chat usage → Responses usage, and
the terminal object for a chat `finish_reason`.

Pure. Invariant: item ids derive from the response id and the output index (`msg_`, `fc_`,
`rs_`), so one response's items never collide and a transcript is deterministic; a `length`
or `content_filter` finish is `incomplete` with its reason, any other finish `completed`.
"""

import re
from typing import Any

import msgspec

from schemas import openai as oa
from schemas import responses as rs

INCOMPLETE: dict[str, Any] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def responses_usage(usage: oa.Usage) -> rs.Usage:
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    details = usage.completion_tokens_details
    return rs.Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        input_tokens_details=rs.InputTokensDetails(cached_tokens=cached),
        output_tokens_details=rs.OutputTokensDetails(
            reasoning_tokens=details.reasoning_tokens if details else 0
        ),
    )


def shell(request: rs.Request | None, *, id: str, created: int, model: str) -> rs.Response:
    """The response object before any output: what the request asked for, echoed back."""
    if request is None:
        return rs.Response(id=id, created_at=created, status="in_progress", model=model)
    text = request.text if request.text and request.text.format else None
    return rs.Response(
        id=id,
        created_at=created,
        status="in_progress",
        model=model,
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        metadata=request.metadata or {},
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        reasoning=request.reasoning,
        store=request.store is not False,
        temperature=request.temperature,
        text=text or rs.TextConfig(format=rs.TextFormat(type="text")),
        tool_choice=request.tool_choice or "auto",
        tools=request.tools or [],
        top_p=request.top_p,
        user=request.user,
    )


def item_id(response_id: str, kind: str, output_index: int) -> str:
    """`msg_…` / `fc_…` ids for the items of one response, unique within it."""
    base = response_id.removeprefix("resp_") or "0"
    return f"{kind}_{base}_{output_index}"


def finished(
    response: rs.Response, finish: str, usage: rs.Usage | None, output: list[rs.OutputItem]
) -> rs.Response:
    """The terminal response object for a chat `finish_reason`."""
    reason = INCOMPLETE.get(finish)
    return msgspec.structs.replace(
        response,
        status="incomplete" if reason else "completed",
        incomplete_details=rs.IncompleteDetails(reason=reason) if reason else None,
        output=output,
        usage=usage,
    )


_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')
_encode = msgspec.json.Encoder().encode


def passthrough_error(sent: bytes, kind: str, message: str) -> bytes:
    """The `error` frame that ends a passed-through Responses stream the gateway must cut
    (upstream reset, idle timeout): numbered after the last `sequence_number` in `sent` (the
    tail of what was relayed; whole frames only), with the nested `error` key openai-python
    raises on."""
    found = _SEQUENCE.findall(sent)
    number = int(found[-1]) + 1 if found else 0
    code = "rate_limit_exceeded" if kind == "rate_limit_error" else "server_error"
    body = rs.StreamErrorBody(message=message, type=kind, code=code)
    event = rs.Error(sequence_number=number, message=message, code=code, error=body)
    return b"event: error\ndata: " + _encode(event) + b"\n\n"
