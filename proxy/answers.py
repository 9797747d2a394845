"""The answers the gateway writes itself: failover spent, no usable target, an upstream's
client error passed on, an estimated token count, and the headers every answer carries.

An answer is written in the client's protocol (translated when the backend spoke another) and
once only: if the response head already went out (keepalives on a stream), the answer is an
error event that ends the stream, never a second head. Upstream error bodies are scrubbed of
credentials before they are passed on; nothing here sends to an upstream or retries.
"""

from typing import TYPE_CHECKING

import msgspec

from proxy import errors, http, redact, tokens, translate
from proxy.errors import Wire
from proxy.reload import BackendState
from proxy.resilience import Circuit
from proxy.routing import Route, TargetKey
from proxy.upstream import UpstreamResponse

if TYPE_CHECKING:
    from proxy.forward import Exchange

_encode = msgspec.json.Encoder().encode

# Upstream response headers worth passing on to the client.
_PASSED_ON = ("retry-after", "retry-after-ms", "openai-processing-ms")
_PASSED_PREFIX = ("x-ratelimit-", "anthropic-ratelimit-")


class Failure:
    """Why one attempt failed; the last one is what the client is told."""

    __slots__ = ("body", "error", "headers", "kind", "status")

    def __init__(
        self,
        kind: str,
        error: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        self.kind = kind
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.body = body


def response_headers(
    ex: "Exchange", key: TargetKey, upstream: UpstreamResponse | None
) -> http.RawHeaders:
    headers: http.RawHeaders = [
        (b"x-request-id", ex.request_id.encode()),
        (b"x-proxy-backend", key.backend.encode()),
        (b"x-proxy-model", key.model.encode()),
        (b"x-proxy-attempts", str(ex.attempts).encode()),
    ]
    if upstream is not None:
        for name, value in upstream.headers.items():
            lname = name.lower()
            if lname in _PASSED_ON or lname.startswith(_PASSED_PREFIX):
                headers.append((lname.encode(), value.encode("latin-1")))
    return headers


async def estimate_tokens(ex: "Exchange", key: TargetKey) -> None:
    body = _encode({"input_tokens": tokens.estimate_input_tokens(ex.body)})
    ex.record.status = 200
    headers = response_headers(ex, key, None)
    headers += [(b"content-type", b"application/json"), (b"x-proxy-estimate", b"true")]
    await http.respond(ex.send, 200, headers, body)


def no_target(route: Route, circuits: dict[TargetKey, Circuit], now: float) -> errors.NoTarget:
    reopen = [
        c.open_until - now for t in route.tiers for cand in t if (c := circuits.get(cand.key))
    ]
    wait = max(1, int(min([r for r in reopen if r > 0], default=1.0) + 0.999))
    if not any(route.tiers):
        msg = f"model '{route.alias}' has no enabled backend: check the backends' api_key settings"
    else:
        msg = (
            f"every target of model '{route.alias}' is temporarily unavailable (circuit open); "
            f"retry after {wait}s"
        )
    return errors.NoTarget(
        msg,
        headers=(
            ("retry-after", str(wait)),
            ("retry-after-ms", str(wait * 1000)),
            ("x-should-retry", "false"),
        ),
    )


async def exhausted(ex: "Exchange", last: Failure) -> None:
    """Failover is spent: tell the client what the last target said, in its protocol."""
    ex.record.status = last.status or (504 if last.kind == "timeout" else 502)
    ex.record.error_type = f"upstream_{last.status}" if last.status else last.kind
    extra = [(b"x-proxy-attempts", str(ex.attempts).encode()), (b"x-should-retry", b"false")]
    if last.status is not None and ex.front != "gemini":
        status = last.status
        body = redact.scrub_body(last.body)
        wire = _wire_of_failure(last)
        tr = None if ex.front == wire else translate.pick(ex.front, wire)
        if tr is not None or not body:
            err_body = tr.error(status, body) if tr is not None else b""
            body = err_body or errors.body(
                errors.BadGateway(f"upstream answered {status}"), ex.front
            )
        headers: http.RawHeaders = [
            (b"content-type", b"application/json"),
            (b"x-request-id", ex.request_id.encode()),
        ]
        for name in ("retry-after", "retry-after-ms"):
            if name in last.headers:
                headers.append((name.encode(), last.headers[name].encode("latin-1")))
        headers.extend(extra)
        if ex.started:
            await ex.send(
                {
                    "type": "http.response.body",
                    "body": errors.stream_event(
                        errors.BadGateway(f"upstream failed: {last.error}"), ex.front
                    ),
                    "more_body": False,
                }
            )
            return
        await http.respond(ex.send, status, headers, body)
        return
    err: errors.ProxyError
    if last.kind == "timeout":
        err = errors.GatewayTimeout(f"every upstream attempt failed; last: {last.error}")
    else:
        err = errors.BadGateway(f"every upstream attempt failed; last: {last.error}")
    if ex.started:
        await ex.send(
            {
                "type": "http.response.body",
                "body": errors.stream_event(err, ex.front),
                "more_body": False,
            }
        )
        return
    await http.respond_error(ex.send, err, ex.front, ex.request_id, extra)


def _wire_of_failure(last: Failure) -> Wire:
    return last.headers.get("x-proxy-wire", "openai")  # type: ignore[return-value]


async def client_error(
    ex: "Exchange", state: BackendState, key: TargetKey, upstream: UpstreamResponse, data: bytes
) -> None:
    data = redact.scrub_body(data)
    tr = None if ex.front == state.adapter.wire else translate.pick(ex.front, state.adapter.wire)
    if tr is not None:
        data = tr.error(upstream.status, data)
    headers = response_headers(ex, key, upstream)
    headers.append(
        (b"content-type", upstream.headers.get("content-type", "application/json").encode())
    )
    if ex.started:
        err = errors.BadRequest(
            f"upstream rejected the request ({upstream.status}): "
            f"{data[:500].decode('utf-8', 'replace')}"
        )
        await ex.send(
            {
                "type": "http.response.body",
                "body": errors.stream_event(err, ex.front),
                "more_body": False,
            }
        )
        return
    await http.respond(ex.send, upstream.status, headers, data)
