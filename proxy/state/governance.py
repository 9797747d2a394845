"""From a client key and a request to the store's `Ask`, and from its `Verdict` to HTTP. Pure.

`ask_for` picks the scopes that govern a request: the key's own `rpm`/`tpm`/`max_parallel`
and the first `limits:` entry on the key whose glob matches the model alias (its counters
are shared by every alias the glob matches). `headers` gives the OpenAI-style
`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for every keyed response, and
`refusal` the status, message and retry-after of a refused one; messages name the key, never
show it.
"""

import datetime
import fnmatch
import math
from collections.abc import Mapping
from typing import NamedTuple

import msgspec

from proxy import errors
from proxy.config import ClientKey, Limits
from proxy.state.store import Ask, Quota, Scope, Verdict

DEFAULT_OUTPUT = 256  # tokens reserved for the answer when the request sets no max_tokens
BYTES_PER_TOKEN = 4  # a rough prompt size from the body: reconciled with the real usage


def scopes_for(key: ClientKey, alias: str) -> tuple[Scope, ...]:
    scopes = []
    own = Limits(rpm=key.rpm, tpm=key.tpm, max_parallel=key.max_parallel)
    if not own.empty:
        scopes.append(Scope(key.name, own))
    for glob, limits in key.limits:
        if fnmatch.fnmatchcase(alias, glob):
            scopes.append(Scope(f"{key.name}|{glob}", limits))
            break
    return tuple(scopes)


def ask_for(key: ClientKey, alias: str, estimate: int, lease: float) -> Ask | None:
    """None when nothing governs this key and model (no store call at all)."""
    scopes = scopes_for(key, alias)
    if not scopes and key.budget is None:
        return None
    return Ask(key.name, scopes, estimate, key.budget, lease)


def estimate_tokens(body_size: int, max_tokens: int | None) -> int:
    """Tokens to reserve: the body's size over `BYTES_PER_TOKEN`, plus the allowed output."""
    output = DEFAULT_OUTPUT if max_tokens is None or max_tokens < 0 else max_tokens
    return body_size // BYTES_PER_TOKEN + output


_int = msgspec.json.Decoder(int).decode


def max_tokens_of(fields: Mapping[str, msgspec.Raw]) -> int | None:
    """The output the request allows (`max_completion_tokens`, `max_tokens` or Responses'
    `max_output_tokens`), from the top-level fields the front door already split."""
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        raw = fields.get(name)
        if raw is not None:
            try:
                return _int(raw)
            except msgspec.DecodeError:
                return None  # null or not a number: the upstream will say so
    return None


def reset_text(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _trio(kind: str, quota: Quota) -> list[tuple[bytes, bytes]]:
    return [
        (f"x-ratelimit-limit-{kind}".encode(), str(quota.limit).encode()),
        (f"x-ratelimit-remaining-{kind}".encode(), str(quota.remaining).encode()),
        (f"x-ratelimit-reset-{kind}".encode(), reset_text(quota.reset).encode()),
    ]


def headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    out = []
    if verdict.requests is not None:
        out += _trio("requests", verdict.requests)
    if verdict.tokens is not None:
        out += _trio("tokens", verdict.tokens)
    return out


class Refusal(NamedTuple):
    status: int  # 429 over a limit or budget; 503 when the store is down and failure is closed
    message: str
    retry_after: int  # whole seconds, at least 1
    headers: list[tuple[bytes, bytes]]  # retry-after, retry-after-ms and the rate-limit trios


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refusal(verdict: Verdict, key: str) -> Refusal:
    wait = max(1, math.ceil(verdict.retry_after))
    if verdict.reason == "budget" and verdict.budget is not None:
        b = verdict.budget
        message = (
            f"key '{key}' is over its budget: spent ${b.spent:.2f} of ${b.usd:.2f} this period; "
            f"the budget resets at {_utc(b.resets_at)}"
        )
    elif verdict.reason == "state":
        message = (
            "the gateway's state store is unavailable and settings.state_failure is closed; "
            f"retry after {wait}s"
        )
    elif verdict.reason == "max_parallel":
        message = f"key '{key}' has too many requests in flight (max_parallel); retry after {wait}s"
    else:
        per = "requests" if verdict.reason == "rpm" else "tokens"
        message = (
            f"key '{key}' is over its rate limit ({verdict.reason}: {per} per minute); "
            f"retry after {wait}s"
        )
    extra = [
        (b"retry-after", str(wait).encode()),
        (b"retry-after-ms", str(max(1, math.ceil(verdict.retry_after * 1000))).encode()),
        *headers(verdict),
    ]
    return Refusal(503 if verdict.reason == "state" else 429, message, wait, extra)


def error_for(verdict: Verdict, key: str) -> errors.ProxyError:
    """The error a refused request raises: 429 `rate_limit_error` (code `rate_limit_exceeded`
    or `budget_exceeded`) with retry-after and the rate-limit headers; 503 when the store is
    down and `state_failure: closed`."""
    r = refusal(verdict, key)
    headers = tuple((name.decode(), value.decode()) for name, value in r.headers)
    headers += (("x-should-retry", "true"),)
    if r.status == 503:
        return errors.NoTarget(r.message, headers=headers, code="state_unavailable")
    code = "budget_exceeded" if verdict.reason == "budget" else "rate_limit_exceeded"
    return errors.RateLimited(r.message, headers=headers, code=code)
