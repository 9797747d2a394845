"""The answers the gateway composes itself, as data: which upstream headers a client sees,
the error when no target is usable, and what a client is told when failover is spent or the
upstream refused the request. Pure: the exchange sends what these return.

Upstream bodies are scrubbed of credentials and translated into the client's protocol; an
upstream header is passed on only when it is one a client uses (rate limits, retry hints),
short, and free of anything that looks like a secret.
"""

from collections.abc import Mapping

from proxy import errors, redact, translate
from proxy.asgi import RawHeaders
from proxy.errors import UpstreamFailure, Wire
from proxy.resilience import Circuit
from proxy.routing import Route, TargetKey

_PASSED_ON = ("retry-after", "retry-after-ms", "openai-processing-ms")
_PASSED_PREFIX = ("x-ratelimit-", "anthropic-ratelimit-")
_MAX_PASSED = 256  # bytes of one passed-on header value


def backend_headers(key: TargetKey, attempts: int) -> RawHeaders:
    return [
        (b"x-proxy-backend", key.backend.encode()),
        (b"x-proxy-model", key.model.encode()),
        (b"x-proxy-attempts", str(attempts).encode()),
    ]


def passed_on(upstream: Mapping[str, str]) -> RawHeaders:
    """The upstream's rate-limit and retry headers a client may act on, checked."""
    out: RawHeaders = []
    for name, value in upstream.items():
        lname = name.lower()
        if lname not in _PASSED_ON and not lname.startswith(_PASSED_PREFIX):
            continue
        if len(value) > _MAX_PASSED or redact.scrub(value) != value:
            continue
        try:
            out.append((lname.encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            continue
    return out


def no_target(route: Route, circuits: Mapping[TargetKey, Circuit], now: float) -> errors.NoTarget:
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


def upstream_answer(last: UpstreamFailure, front: Wire) -> tuple[int, RawHeaders, bytes]:
    """Failover spent on an upstream status: that status and body, in the client's protocol."""
    status = last.status or 502
    body = redact.scrub_body(last.body)
    translated = translate.error(front, last.wire, status, body)
    if translated is not None or not body:
        body = translated or errors.body(errors.BadGateway(f"upstream answered {status}"), front)
    headers: RawHeaders = [(b"content-type", b"application/json")]
    for name in ("retry-after", "retry-after-ms"):
        if name in last.headers:
            headers.append((name.encode(), last.headers[name].encode("latin-1")))
    return status, headers, body


def client_error_body(status: int, data: bytes, front: Wire, wire: Wire) -> bytes:
    """An upstream's 400/413/422 body, scrubbed, in the client's protocol."""
    data = redact.scrub_body(data)
    translated = translate.error(front, wire, status, data)
    return data if translated is None else translated
