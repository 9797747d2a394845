"""The cache in a running gateway, through the official SDKs and raw HTTP.

One gateway (module scope) in front of a fake OpenAI and a fake Anthropic upstream; every
test uses its own prompt, so entries never cross tests. What each test asserts about upstream
work it asserts at the upstream (its request count).
"""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Gateway, RoutesFile, serve
from tests.upstreams import FakeUpstream, ok, stall_before_headers

pytestmark = pytest.mark.timeout(60)

ALICE, BOB, ADMIN = "sk-alice-cache", "sk-bob-cache", "admin-cache-secret"
WEATHER = ("get_weather", '{"city": "Paris", "days": [1, 2]}')


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream(wire="openai", models=("fake-model",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def aup() -> Iterator[FakeUpstream]:
    with FakeUpstream(wire="anthropic", models=("fake-claude",)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream, aup: FakeUpstream
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("cache")
    config = RoutesFile(directory)(
        f"""
        version: 1
        settings:
          retries: 0
          failure_threshold: 1000
          admin_key: {ADMIN}
          timeouts: {{first_byte: 2s}}
          cache: {{ttl: 10m}}
        backends:
          oa: {{type: openai, base_url: "{up.url}", api_key: sk-up}}
          an: {{type: anthropic, base_url: "{aup.url}", api_key: sk-up}}
        models:
          gpt: {{targets: [{{backend: oa, model: fake-model}}]}}
          claude: {{targets: [{{backend: an, model: fake-claude}}]}}
          shared: {{targets: [{{backend: oa, model: fake-model}}], cache: {{shared: true}}}}
          fresh: {{targets: [{{backend: oa, model: fake-model}}], cache: false}}
        keys:
          - {{name: alice, key: {ALICE}}}
          - {{name: bob, key: {BOB}}}
        """
    )
    with serve(config, directory) as gateway:
        yield gateway


def prompt() -> list[Any]:
    return [{"role": "user", "content": f"question {uuid.uuid4()}"}]


def oai(gw: Gateway, key: str = ALICE) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=20)


def chat(
    gw: Gateway, messages: list[Any], stream: bool, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """(x-proxy-cache, the message as a dict) through the OpenAI SDK."""
    raw = oai(gw).chat.completions.with_raw_response.create(
        model="gpt", messages=messages, stream=stream, **extra
    )
    if not stream:
        message = raw.parse().choices[0].message
        calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
        return raw.headers["x-proxy-cache"], {"content": message.content, "tools": calls}
    content, calls = "", {}
    for chunk in raw.parse():
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                name, args = calls.get(tc.index, ("", ""))
                calls[tc.index] = (
                    name + (tc.function.name or "") if tc.function else name,
                    args + (tc.function.arguments or "") if tc.function else args,
                )
    tools = [calls[i] for i in sorted(calls)]
    return raw.headers["x-proxy-cache"], {"content": content, "tools": tools}


@pytest.mark.parametrize("first_stream", [True, False])
def test_openai_chat_hit_in_either_form_parses_to_the_same_message(
    gw: Gateway, up: FakeUpstream, first_stream: bool
) -> None:
    up.script(ok(text="sunny today", tool_calls=[WEATHER]))
    messages = prompt()
    before = len(up.requests)
    result, first = chat(gw, messages, first_stream)
    assert result == "miss"
    assert first["tools"] == [WEATHER] and first["content"] == "sunny today"
    for stream in (not first_stream, first_stream, True, False):
        assert chat(gw, messages, stream) == ("hit", first)
    assert len(up.requests) == before + 1


def test_a_whole_hit_from_a_stream_has_usage(gw: Gateway, up: FakeUpstream) -> None:
    messages = prompt()
    before = len(up.requests)
    chat(gw, messages, True)  # streamed without the usage chunk: the gateway counted it
    raw = oai(gw).chat.completions.with_raw_response.create(model="gpt", messages=messages)
    usage = raw.parse().usage
    assert raw.headers["x-proxy-cache"] == "hit"
    assert (
        usage is not None
        and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    )
    assert len(up.requests) == before + 1


def test_a_streamed_hit_sends_the_usage_chunk_when_asked(gw: Gateway, up: FakeUpstream) -> None:
    messages = prompt()
    before = len(up.requests)
    chat(gw, messages, False)  # a whole answer, usage included
    raw = oai(gw).chat.completions.with_raw_response.create(
        model="gpt", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    usage = [c.usage for c in raw.parse() if c.usage is not None]
    assert raw.headers["x-proxy-cache"] == "hit" and int(raw.headers["age"]) >= 0
    assert len(usage) == 1 and usage[0].total_tokens > 0
    assert len(up.requests) == before + 1


@pytest.mark.parametrize("first_stream", [True, False])
def test_anthropic_messages_hit_in_either_form(
    gw: Gateway, aup: FakeUpstream, first_stream: bool
) -> None:
    aup.script(ok(text="bonjour", tool_calls=[WEATHER]))
    client = anthropic.Anthropic(base_url=gw.url, api_key=ALICE, max_retries=0, timeout=20)
    messages = prompt()
    before = len(aup.requests)

    def ask(stream: bool) -> tuple[str, Any]:
        if stream:
            with client.messages.stream(model="claude", max_tokens=50, messages=messages) as s:
                msg = s.get_final_message()
                result = s.response.headers["x-proxy-cache"]
        else:
            raw = client.messages.with_raw_response.create(
                model="claude", max_tokens=50, messages=messages
            )
            msg, result = raw.parse(), raw.headers["x-proxy-cache"]
        return result, [b.model_dump() for b in msg.content]

    result, first = ask(first_stream)
    assert result == "miss"
    assert first[0]["text"] == "bonjour" and first[1]["input"] == json.loads(WEATHER[1])
    for stream in (not first_stream, first_stream):
        assert ask(stream) == ("hit", first)
    assert len(aup.requests) == before + 1


@pytest.mark.parametrize(
    ("path", "body", "wire"),
    [
        ("/v1/completions", {"model": "gpt", "prompt": "P"}, "openai"),
        ("/v1/completions", {"model": "gpt", "prompt": "P", "stream": True}, "openai"),
        ("/v1/embeddings", {"model": "gpt", "input": "P"}, "openai"),
        ("/v1/messages/count_tokens", {"model": "claude", "messages": "M"}, "anthropic"),
    ],
)
def test_every_other_front_door_hits(
    gw: Gateway, up: FakeUpstream, aup: FakeUpstream, path: str, body: dict[str, Any], wire: str
) -> None:
    unique = str(uuid.uuid4())
    body = {k: (unique if v == "P" else prompt() if v == "M" else v) for k, v in body.items()}
    upstream = up if wire == "openai" else aup
    before = len(upstream.requests)
    headers = {"authorization": f"Bearer {ALICE}"}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=20) as client:
        first = client.post(path, json=body)
        second = client.post(path, json=body)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-proxy-cache"], second.headers["x-proxy-cache"]) == ("miss", "hit")
    if body.get("stream"):
        assert b"data: [DONE]" in second.content and "hit" in second.headers["x-proxy-cache"]
    else:
        assert second.json() == first.json()
    assert len(upstream.requests) == before + 1


def post(gw: Gateway, body: dict[str, Any], key: str = ALICE, **headers: str) -> httpx.Response:
    headers["authorization"] = f"Bearer {key}"
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=20)


def test_no_cross_key_leakage_unless_the_model_is_shared(gw: Gateway, up: FakeUpstream) -> None:
    before = len(up.requests)
    own = {"model": "gpt", "messages": prompt()}
    assert post(gw, own).headers["x-proxy-cache"] == "miss"
    assert post(gw, own, BOB).headers["x-proxy-cache"] == "miss"
    assert post(gw, own).headers["x-proxy-cache"] == "hit"
    shared = {"model": "shared", "messages": prompt()}
    assert post(gw, shared).headers["x-proxy-cache"] == "miss"
    assert post(gw, shared, BOB).headers["x-proxy-cache"] == "hit"
    assert len(up.requests) == before + 3


def test_no_cache_and_no_store(gw: Gateway, up: FakeUpstream) -> None:
    before = len(up.requests)
    body = {"model": "gpt", "messages": prompt()}
    assert post(gw, body).headers["x-proxy-cache"] == "miss"
    assert post(gw, body, **{"cache-control": "no-cache"}).headers["x-proxy-cache"] == "miss"
    assert post(gw, body).headers["x-proxy-cache"] == "hit"
    other = {"model": "gpt", "messages": prompt()}
    assert post(gw, other, **{"cache-control": "no-store"}).headers["x-proxy-cache"] == "bypass"
    assert post(gw, other).headers["x-proxy-cache"] == "miss"  # no-store stored nothing
    assert len(up.requests) == before + 4
    fresh = {"model": "fresh", "messages": prompt()}
    assert "x-proxy-cache" not in post(gw, fresh).headers  # cache: false on the model


def test_errors_are_never_stored(gw: Gateway, up: FakeUpstream) -> None:
    from tests.upstreams import status

    up.script(status(400))
    body = {"model": "gpt", "messages": prompt()}
    first = post(gw, body)
    assert first.status_code == 400 and first.headers["x-proxy-cache"] == "miss"
    second = post(gw, body)
    assert second.status_code == 200 and second.headers["x-proxy-cache"] == "miss"


async def many(
    gw: Gateway, body: dict[str, Any], n: int, after: FakeUpstream | None = None
) -> list[Any]:
    """`n` identical requests at once (the rest only once `after` has the first, when given);
    (status, x-proxy-cache, text) of each, in order."""
    limits = httpx.Limits(max_connections=n + 5)
    headers = {"authorization": f"Bearer {ALICE}"}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, limits=limits, timeout=30) as c:

        async def one(b: dict[str, Any]) -> tuple[int, str, str]:
            r = await c.post("/v1/chat/completions", json=b)
            return r.status_code, r.headers.get("x-proxy-cache", ""), text_of(r)

        seen = len(after.requests) if after is not None else 0
        leader = asyncio.create_task(one(body))
        if after is not None:  # the upstream holds the leader's request now
            await asyncio.to_thread(after.wait_for_requests, seen + 1, 10)
        rest = [asyncio.create_task(one({**body, "stream": s})) for s in streams(n - 1, body)]
        return [await leader, *[await t for t in rest]]


def streams(n: int, body: dict[str, Any]) -> list[bool]:
    """Most followers ask like the leader; every fifth asks the other way."""
    lead = bool(body.get("stream"))
    return [lead if i % 5 else not lead for i in range(n)]


def text_of(r: httpx.Response) -> str:
    if r.status_code != 200:
        return ""
    if r.headers["content-type"].startswith("text/event-stream"):
        parts = []
        for line in r.text.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    parts.append(choice["delta"].get("content") or "")
        return "".join(parts)
    return str(r.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize("stream", [False, True])
async def test_fifty_identical_requests_make_one_upstream_call(
    gw: Gateway, up: FakeUpstream, stream: bool
) -> None:
    up.script(stall_before_headers(1.0))  # the leader is still waiting when the rest arrive
    before = len(up.requests)
    body = {"model": "gpt", "messages": prompt(), "stream": stream}
    results = await many(gw, body, 50)
    assert len(up.requests) == before + 1
    assert {code for code, _, _ in results} == {200}
    caches = [cache for _, cache, _ in results]  # whichever arrived first led
    assert caches.count("miss") == 1 and caches.count("hit") == 49
    assert len({t for _, _, t in results}) == 1 and results[0][2]


async def test_when_the_leader_fails_followers_ask_again(gw: Gateway, up: FakeUpstream) -> None:
    up.script(stall_before_headers(3.0))  # longer than timeouts.first_byte: the leader gets 504
    before = len(up.requests)
    body = {"model": "gpt", "messages": prompt()}
    results = await many(gw, body, 20, after=up)
    assert results[0][0] == 504
    assert {code for code, _, _ in results[1:]} == {200}
    assert len({t for _, _, t in results[1:]}) == 1
    assert len(up.requests) == before + 2  # the failed leader, then one new leader


def wait_for(check: Any, deadline: float = 10.0) -> Any:
    end = time.monotonic() + deadline
    while True:
        found = check()
        if found or time.monotonic() > end:
            return found
        time.sleep(0.1)


def test_hits_cost_nothing_are_logged_and_counted(gw: Gateway) -> None:
    body = {"model": "gpt", "messages": prompt()}
    post(gw, body)
    rid = post(gw, body).headers["x-request-id"]

    def logged() -> dict[str, Any] | None:
        for line in gw.log_text().splitlines():
            if line.startswith("{") and rid in line:
                return dict(json.loads(line))
        return None

    line = wait_for(logged)
    assert line is not None and line["cache"] == "hit" and line["cost"] == 0.0
    assert not line.get("tokens_in") and not line.get("tokens_out")

    def scraped() -> str | None:
        text = httpx.get(gw.url + "/metrics", timeout=10).text
        ok = 'llm_proxy_cache_requests_total{alias="gpt",result="hit"}' in text
        return text if ok and "llm_proxy_cache_stored_bytes" in text else None

    text = wait_for(scraped)
    assert text is not None
    assert 'llm_proxy_cache_requests_total{alias="gpt",result="miss"}' in text


def test_admin_delete_empties_the_cache(gw: Gateway) -> None:
    gpt = {"model": "gpt", "messages": prompt()}
    shared = {"model": "shared", "messages": prompt()}
    for body in (gpt, shared):
        post(gw, body)
        assert post(gw, body).headers["x-proxy-cache"] == "hit"
    admin = {"authorization": f"Bearer {ADMIN}"}
    assert httpx.delete(gw.url + "/admin/cache", timeout=10).status_code in (401, 403)
    r = httpx.delete(gw.url + "/admin/cache", params={"model": "gpt"}, headers=admin, timeout=10)
    assert r.status_code == 200 and r.json()["cleared"] >= 1
    assert post(gw, gpt).headers["x-proxy-cache"] == "miss"
    assert post(gw, shared).headers["x-proxy-cache"] == "hit"
    r = httpx.delete(gw.url + "/admin/cache", headers=admin, timeout=10)
    assert r.status_code == 200
    assert post(gw, shared).headers["x-proxy-cache"] == "miss"


def test_the_simple_chat_door_is_cached_too(gw: Gateway, up: FakeUpstream) -> None:
    before = len(up.requests)
    body = {"model": "gpt", "prompt": str(uuid.uuid4())}
    headers = {"authorization": f"Bearer {ALICE}"}
    first = httpx.post(gw.url + "/chat", json=body, headers=headers, timeout=20)
    second = httpx.post(gw.url + "/chat", json=body, headers=headers, timeout=20)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-proxy-cache"], second.headers["x-proxy-cache"]) == ("miss", "hit")
    assert second.json()["text"] == first.json()["text"]
    assert len(up.requests) == before + 1
