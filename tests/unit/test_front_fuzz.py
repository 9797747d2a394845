"""Issue 20: no body gives a 5xx. Every `/v1/*` front door is driven in-process (the real ASGI
app, the built-in mock backend) with hypothesis-made bodies: JSON of any shape, near-miss
requests with wrong types in every field, and raw bytes. The answer is always a whole
response with a status below 500 and an error body in the door's shape when it is not 200."""

import asyncio
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy import accesslog
from proxy.front.api import Api
from proxy.runtime import Runtime, read_config

CONFIG = """
version: 1
backends:
  demo: {type: mock, latency: 0s, interval: 0s}
models:
  demo: {targets: [{backend: demo}]}
"""
DOORS = {
    "/v1/chat/completions": ("chat", "openai"),
    "/v1/completions": ("completions", "openai"),
    "/v1/embeddings": ("embeddings", "openai"),
    "/v1/messages": ("messages", "anthropic"),
    "/v1/messages/count_tokens": ("count_tokens", "anthropic"),
    "/v1/responses": ("responses", "openai"),
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
FIELDS = ["model", "messages", "prompt", "input", "stream", "stream_options", "max_tokens",
          "tools", "tool_choice", "system", "temperature", "n", "instructions",
          "previous_response_id", "text", "response_format"]  # fmt: skip
NEAR_MISS = st.fixed_dictionaries(
    {
        "model": st.just("demo") | JSON,
        "messages": st.just([{"role": "user", "content": "hi"}]) | JSON,
    },
    optional={name: JSON for name in FIELDS[2:]},
)
BODIES = (
    NEAR_MISS.map(lambda d: json.dumps(d).encode())
    | JSON.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=200)
)


def _api() -> Api:
    accesslog.configure({accesslog.ENV: "off"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "routes.yaml"
        path.write_text(CONFIG)
        runtime = Runtime(path, read_config(path, {}))
    api = Api()
    api.runtime = runtime
    return api


async def _call(api: Api, path: str, body: bytes) -> tuple[int, bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
    }
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    handler = {
        "chat": api.chat, "completions": api.completions, "embeddings": api.embeddings,
        "messages": api.messages, "count_tokens": api.count_tokens, "responses": api.responses,
    }[DOORS[path][0]]  # fmt: skip
    await asyncio.wait_for(handler(scope, receive, send), 10)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, "one head"
    assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body")
    return starts[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


API: Api | None = None


@given(path=st.sampled_from(sorted(DOORS)), body=BODIES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_body_gives_a_5xx(path: str, body: bytes) -> None:
    global API
    if API is None:
        API = _api()
    status, answer = asyncio.run(_call(API, path, body))
    assert status < 500, (status, answer[:300])
    if status != 200:
        doc = json.loads(answer)
        if DOORS[path][1] == "anthropic":
            assert doc["type"] == "error" and doc["error"]["message"]
        else:
            assert doc["error"]["message"]
