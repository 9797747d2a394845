"""Fixtures for the backend tests: the fake model servers, configs naming them, and `call`,
which runs one request the way the gateway's request path does (translate, build, send,
decode the stream in the adapter's framing, translate back) so adapters and translators are
tested against real servers before they are wired into the gateway."""

from collections.abc import Iterator
from typing import Any

import aiohttp
import msgspec
import pytest

from proxy import ndjson, providers, sse, translate
from proxy.config import Backend, Config, parse
from proxy.providers.base import Endpoint
from tests.backends.servers import FlatServer, NestedServer, OllamaServer, served


@pytest.fixture
def ollama() -> Iterator[OllamaServer]:
    yield from served(OllamaServer())


@pytest.fixture
def nested() -> Iterator[NestedServer]:
    yield from served(NestedServer())


@pytest.fixture
def flat() -> Iterator[FlatServer]:
    yield from served(FlatServer())


def config(text: str, env: dict[str, str] | None = None) -> Config:
    return parse(text, env or {}, "routes.yaml")


class Answer(msgspec.Struct):
    status: int
    body: Any = None  # decoded JSON answer (not streamed)
    events: list[sse.Event] = []  # client events (streamed)

    def chunks(self) -> list[Any]:
        return [msgspec.json.decode(e.data) for e in self.events if e.data != "[DONE]"]

    def text(self) -> str:
        out = []
        for c in self.chunks():
            for choice in c.get("choices", ()):
                out.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
        return "".join(out)


async def call(
    backend: Backend,
    front: str,
    endpoint: Endpoint,
    body: dict[str, Any],
    model: str,
    *,
    stream: bool = False,
    include_usage: bool = False,
) -> Answer:
    adapter = providers.adapter(backend)
    tr = translate.choose(front, adapter.wire, adapter.translator)
    raw = msgspec.json.encode(body)
    up_body = tr.request(raw, model, stream) if tr is not None else raw
    req = adapter.build(endpoint, up_body, model, stream)
    async with (
        aiohttp.ClientSession() as session,
        session.request(req.method, req.url, headers=list(req.headers), data=req.body) as resp,
    ):
        if resp.status != 200:
            err = await resp.read()
            out = tr.error(resp.status, err) if tr is not None else err
            return Answer(resp.status, msgspec.json.decode(out))
        if not stream:
            got = await resp.read()
            out = tr.response(got, model, id="chatcmpl-t1", created=1) if tr is not None else got
            return Answer(200, msgspec.json.decode(out))
        assert tr is not None
        st = tr.Stream(model, include_usage=include_usage, id="chatcmpl-t1", created=1)
        decoder: ndjson.Decoder | sse.Decoder = (
            ndjson.Decoder() if adapter.framing == "ndjson" else sse.Decoder()
        )
        events: list[sse.Event] = []
        async for chunk in resp.content.iter_any():
            for ev in decoder.feed(chunk):
                events.extend(st.feed(ev))
        if isinstance(decoder, ndjson.Decoder):
            for ev in decoder.close():
                events.extend(st.feed(ev))
        events.extend(st.close())
        return Answer(200, events=events)
