"""The response store (TTL, byte bound, delete) and its config: `settings.responses_store` and
the backend `responses:` flag."""

import msgspec
import pytest

from proxy.config import ResponsesStoreSettings, parse
from proxy.responses_store import MemoryStore, Stored, deleted, new_id, record, unknown
from proxy.translate import responses_chat
from schemas import responses as rs
from tests.unit.config_support import MINIMAL, problems, with_backend, with_settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(id: str, size: int = 10) -> Stored:
    return Stored(id=id, response=b"{" + b" " * size + b"}", conversation=b"[]")


async def test_put_get_delete() -> None:
    store = MemoryStore(ttl=60)
    await store.put(entry("resp_1"))
    assert await store.get("resp_1") == entry("resp_1")
    assert await store.get("resp_2") is None
    assert await store.delete("resp_1") is True
    assert await store.delete("resp_1") is False
    assert await store.get("resp_1") is None


async def test_records_expire_after_ttl() -> None:
    clock = Clock()
    store = MemoryStore(ttl=60, timer=clock)
    await store.put(entry("resp_1"))
    clock.now = 59.0
    assert await store.get("resp_1") is not None
    clock.now = 60.5
    assert await store.get("resp_1") is None


async def test_bounded_by_bytes_oldest_make_room() -> None:
    store = MemoryStore(ttl=60, max_bytes=200)
    for n in range(10):
        await store.put(entry(f"resp_{n}", size=50))
    assert 0 < len(store) <= 3
    assert await store.get("resp_9") is not None
    assert await store.get("resp_0") is None


async def test_a_record_larger_than_the_store_is_not_stored() -> None:
    store = MemoryStore(ttl=60, max_bytes=100)
    await store.put(entry("resp_big", size=500))
    assert await store.get("resp_big") is None


def test_ids_errors_and_bodies() -> None:
    a, b = new_id(), new_id()
    assert a.startswith("resp_") and a != b
    err = unknown("resp_gone")
    assert err.param == "previous_response_id" and "resp_gone" in str(err)
    assert deleted("resp_1") == b'{"id":"resp_1","object":"response.deleted","deleted":true}'


def test_settings_default_and_parsed() -> None:
    assert parse(MINIMAL, {}).settings.responses_store == ResponsesStoreSettings()
    parsed = parse(with_settings("responses_store: {ttl: 2h, max_bytes: 1MiB}"), {})
    assert parsed.settings.responses_store == ResponsesStoreSettings(ttl=7200.0, max_bytes=2**20)


def test_settings_problems() -> None:
    assert problems(with_settings("responses_store: {ttl: 0s}")) == [
        "routes.yaml:8:26: expected a duration above 0 like 5s, got '0s'"
    ]
    found = problems(with_settings("responses_store: {tll: 1h}"))
    assert found == [
        "routes.yaml:8:21: unknown key 'tll' in settings.responses_store; did you mean 'ttl'?"
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("type: openai", True),  # the default base URL is api.openai.com
        ("type: openai\nbase_url: https://api.openai.com/v1/", True),
        ("type: openai\nbase_url: https://api.groq.com/openai/v1", False),
        ("type: openai\nbase_url: http://127.0.0.1:8000/v1\nresponses: true", True),
        ("type: openai\nresponses: false", False),
        ("type: anthropic", False),
        ("type: mock", False),
    ],
)
def test_backend_responses_flag(lines: str, expected: bool) -> None:
    text = with_backend(lines).replace("models: {}", "models: {m: {targets: [{backend: b}]}}")
    config = parse(text, {"OPENAI_API_KEY": "x"})
    assert config.backend("b").responses is expected


def test_responses_flag_only_on_openai_backends() -> None:
    assert problems(with_backend("type: gemini\nresponses: true")) == [
        "routes.yaml:5:5: responses applies only to type: openai backends"
    ]


ANSWER = rs.Response(
    id="resp_1",
    created_at=1,
    status="completed",
    model="m",
    output=[rs.OutputMessage(id="msg_1", status="completed", content=[rs.OutputText("hi")])],
)


def test_record_keeps_the_body_and_the_conversation() -> None:
    req = responses_chat.decode(b'{"model": "m", "input": "hello"}')
    body = msgspec.json.encode(ANSWER)
    from_bytes = record(req, [], body)
    assert from_bytes == record(req, [], ANSWER)
    assert from_bytes is not None and from_bytes.id == "resp_1" and from_bytes.response == body
    items = responses_chat.stored_items(from_bytes.conversation)
    assert [(i.type, i.role) for i in items] == [("message", "user"), ("message", "assistant")]


def test_record_skips_store_false_failed_and_garbage() -> None:
    req = responses_chat.decode(b'{"model": "m", "input": "hello"}')
    no_store = responses_chat.decode(b'{"model": "m", "input": "hello", "store": false}')
    assert record(no_store, [], ANSWER) is None
    assert record(req, [], msgspec.structs.replace(ANSWER, status="failed")) is None
    assert record(req, [], b'{"error": {"message": "x"}}') is None
