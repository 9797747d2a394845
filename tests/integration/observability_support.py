"""What the observability modules share: the secrets the gateways hold, requests on fresh
connections, polling with a deadline, reading JSON documents (access lines, console-exported
spans) out of a gateway's log, and the three upstreams behind the traced and counted gateways.

Backends `bad` (every answer a 500), `good` (answers with known usage) and `locked` (refuses
the gateway's key and quotes it back, as the real API does) are built by `*_upstream()`;
`MODELS` routes them: `fo` (bad, then good), `locked-fo` (locked, then good), `ok` (good) and
`dead` (bad).
"""

import http.client
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from tests.conftest import Gateway
from tests.upstreams import FakeUpstream, Recorded, ok, status

# Distinctive, and mostly NOT shaped like a well-known key, so only the gateway's knowledge of
# its own configuration can keep them out of its output (generic `sk-...` masking can't).
KEY_GOOD = "obs-upstream-good-key-4be1f07c"
KEY_BAD = "sk-obs-upstream-bad-9c3d2a71e5"
KEY_LOCKED = "obs-upstream-locked-key-77a0d3"
CLIENT_KEY = "obs-client-team-key-2f9e61"
ADMIN_KEY = "obs-admin-key-c4d55b0e"
HDR_TOKEN = "obs-header-token-91ab3e"  # under a secret-sounding header name
HDR_SECRETISH = "sk-obs-header-value-5d7e28cc"  # secret-looking value, plain header name
SECRETS = (KEY_GOOD, KEY_BAD, KEY_LOCKED, CLIENT_KEY, ADMIN_KEY, HDR_TOKEN, HDR_SECRETISH)

CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
USAGE = (7, 3)  # what the good upstream reports: prompt, completion tokens
PRICES = {"m-good": [1.5, 4.0]}  # USD per million tokens (LLM_PROXY_PRICES)
COST = (USAGE[0] * 1.5 + USAGE[1] * 4.0) / 1e6
HELLO = [{"role": "user", "content": "hi"}]
ACCESS_FIELDS = (
    "time", "request_id", "key_name", "alias", "backend", "provider_model", "status",
    "attempts", "overhead_ms", "ttft_ms", "total_ms", "tokens_in", "tokens_out", "cost",
    "cache", "error_type",
)  # fmt: skip
SPAN_DEADLINE = 5.0  # seconds for a finished span to reach the log (batch delay: 50 ms)


# --- plumbing --------------------------------------------------------------------------------


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fresh(
    gw: Gateway,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request on its own new connection (so a multi-worker gateway spreads them)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {"content-type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def chat(gw: Gateway, model: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Answer:
    body = {"model": model, "messages": extra.pop("messages", HELLO), **extra}
    return fresh(gw, "POST", "/v1/chat/completions", body, headers)


def wait_for(check: Callable[[], Any], deadline: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result or time.monotonic() >= end:
            break
        time.sleep(0.05)
    assert result, f"not within {deadline}s: {what}"
    return result


def worker_of(answer: Answer) -> str:
    """Gateway-made request ids start with a random per-worker prefix."""
    match = re.match(r"req_[0-9a-f]{12}", answer.headers["x-request-id"])
    assert match, answer.headers["x-request-id"]
    return match.group()


def sent_by(up: FakeUpstream, request_id: str) -> list[Recorded]:
    """What `up` received for one client request (the gateway forwards x-request-id)."""
    return [r for r in up.requests if r.headers.get("x-request-id") == request_id]


# --- reading the log: JSON documents (access lines, console-exported spans) ------------------

_json = json.JSONDecoder()


def json_documents(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at the beginning of a line (one-line access records,
    multi-line span dumps); plain log lines and torn writes are skipped."""
    docs: list[dict[str, Any]] = []
    end = 0
    for m in re.finditer(r"(?m)^\{", text):
        if m.start() < end:
            continue  # inside a document already read
        try:
            obj, end = _json.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            docs.append(obj)
    return docs


def access_lines(gw: Gateway) -> list[dict[str, Any]]:
    return [d for d in json_documents(gw.log_text()) if "request_id" in d and "total_ms" in d]


def access_line(gw: Gateway, request_id: str) -> dict[str, Any]:
    def one() -> dict[str, Any] | None:
        found = [d for d in access_lines(gw) if d["request_id"] == request_id]
        assert len(found) <= 1, f"{len(found)} access lines for {request_id}"
        return found[0] if found else None

    line: dict[str, Any] = wait_for(one, 3.0, f"an access line for {request_id}")
    return line


def spans(gw: Gateway) -> list[dict[str, Any]]:
    return [d for d in json_documents(gw.log_text()) if "context" in d and "kind" in d]


# --- the upstreams ---------------------------------------------------------------------------


def bad_upstream() -> FakeUpstream:
    up = FakeUpstream(models=("m-bad",))
    up.default = status(500)
    return up


def good_upstream() -> FakeUpstream:
    up = FakeUpstream(models=("m-good",))
    up.default = ok(usage=USAGE)
    return up


def locked_upstream() -> FakeUpstream:
    """Refuses the gateway's key and, like the real API, quotes it back."""
    up = FakeUpstream(models=("m-locked",))
    up.default = status(
        401,
        body={
            "error": {
                "message": f"Incorrect API key provided: {KEY_LOCKED}. You can find your "
                "API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    return up


# The aliases both the traced and the counted gateway route.
MODELS = """
        models:
          locked-fo:
            targets:
              - {backend: locked, model: m-locked, priority: 0}
              - {backend: good, model: m-good, priority: 1}
          fo:
            targets:
              - {backend: bad, model: m-bad, priority: 0}
              - {backend: good, model: m-good, priority: 1}
          ok:
            targets: [{backend: good, model: m-good}]
          dead:
            targets: [{backend: bad, model: m-bad}]
        """
