"""Model discovery: listings → routes (pure), the route table extended with them, and the
poller against real servers whose listings change, stop answering, or never answered."""

import asyncio
import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import Config, Model
from proxy.discovery import Discovery
from proxy.listing import discovered_routes, listing_request, parse_listing
from proxy.routing import RouteTable
from tests.backends.conftest import config
from tests.backends.servers import OllamaServer
from tests.conftest import free_port

DEADLINE = 10.0


def _config(ollama_url: str, extra: str = "") -> Config:
    return config(
        f"""
        version: 1
        backends:
          local: {{type: ollama, base_url: "{ollama_url}", discover: 50ms}}
          vllm: {{type: openai, base_url: "{ollama_url}/v1", discover: true, prefix: gpu,
                  api_key: sk-abc}}
          off: {{type: ollama, base_url: "{ollama_url}", discover: false}}
        models:
          "ollama/llama3.2:latest": {{targets: [{{backend: off, model: pinned}}]}}
          "ollama/*": {{targets: [{{backend: off, model: "*"}}]}}
        {extra}
        """
    )


def test_listing_requests() -> None:
    local, vllm, _ = _config("http://127.0.0.1:1").backends
    assert listing_request(local).url == "http://127.0.0.1:1/api/tags"
    req = listing_request(vllm)
    assert req.method == "GET" and req.url == "http://127.0.0.1:1/v1/models"
    assert ("authorization", "Bearer sk-abc") in req.headers


def test_parse_listings_of_both_kinds() -> None:
    local, vllm, _ = _config("http://h").backends
    tags = b'{"models": [{"name": "a:latest"}, {"name": "b"}, {"name": "a:latest"}, {"x": 1}]}'
    assert parse_listing(local, tags) == ("a:latest", "b")
    models = b'{"object": "list", "data": [{"id": "meta/llama"}, {"id": "bad*glob"}]}'
    assert parse_listing(vllm, models) == ("meta/llama",)
    for bad in (b"<html>", b"[]", b'{"models": 3}'):
        with pytest.raises(ValueError):
            parse_listing(local, bad)


@given(st.lists(st.text(min_size=1, max_size=12).filter(lambda s: "*" not in s), max_size=10))
def test_discovered_routes_name_each_model_once_under_the_prefix(names: list[str]) -> None:
    local = _config("http://h").backends[0]
    routes = discovered_routes(local, names)
    assert [m.alias for m in routes] == [f"ollama/{n}" for n in dict.fromkeys(names)]
    assert all(m.targets[0].backend == "local" for m in routes)
    assert [m.targets[0].model for m in routes] == list(dict.fromkeys(names))


def test_the_route_table_extended_routes_and_lists_discovered_models() -> None:
    c = _config("http://h")
    base = RouteTable(c)
    found = discovered_routes(c.backends[0], ["llama3.2:latest", "qwen3:8b"])
    table = base.extended(found)
    assert table.aliases == ("ollama/llama3.2:latest", "ollama/qwen3:8b")
    route = table.resolve("ollama/qwen3:8b")
    assert route is not None and route.tiers[0][0].key == ("local", "qwen3:8b")
    # the configured alias keeps its route; the glob still catches names nobody listed
    pinned = table.resolve("ollama/llama3.2:latest")
    assert pinned is not None and pinned.tiers[0][0].key == ("off", "pinned")
    other = table.resolve("ollama/phi4")
    assert other is not None and other.tiers[0][0].key == ("off", "phi4")
    # the base table is untouched: a request that holds it sees no change
    assert base.aliases == ("ollama/llama3.2:latest",)
    assert base.resolve("ollama/qwen3:8b").tiers[0][0].key == ("off", "qwen3:8b")  # type: ignore[union-attr]


async def _until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_poller_follows_the_listing(ollama: OllamaServer) -> None:
    seen: list[tuple[str, ...]] = []

    def changed(models: tuple[Model, ...]) -> None:
        seen.append(tuple(m.alias for m in models))

    c = _config(ollama.url)
    discovery = Discovery(changed, timeout=2.0)
    try:
        await discovery.update([c.backends[0], c.backends[2]])  # `off` does not discover
        assert seen == [("ollama/llama3.2:latest", "ollama/qwen3:8b")]
        ollama.models = ("qwen3:8b",)  # a model is removed from the server
        await _until(lambda: seen[-1] == ("ollama/qwen3:8b",), "the removed model to go")
        ollama.models = ("qwen3:8b", "phi4:latest")
        await _until(lambda: seen[-1] == ("ollama/qwen3:8b", "ollama/phi4:latest"), "a new one")
        count = len(seen)
        polls = len(ollama.received)
        await _until(lambda: len(ollama.received) >= polls + 3, "more polls")
        assert len(seen) == count  # an unchanged listing reports nothing
    finally:
        await discovery.close()
    assert {p for p, _ in ollama.received} == {"/api/tags"}


async def test_an_unreachable_server_is_a_warning_and_no_models(
    ollama: OllamaServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[Model, ...]] = []
    dead = _config(f"http://127.0.0.1:{free_port()}")
    discovery = Discovery(seen.append, timeout=2.0)
    try:
        with caplog.at_level(logging.WARNING, "llm_proxy.discovery"):
            await discovery.update([dead.backends[0]])
        assert discovery.models == () and seen == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "'local'" in warnings[0].getMessage()
        await asyncio.sleep(0.2)  # a few failing polls: still one warning
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        # a reload pointing at a live server lists it at once
        await discovery.update([_config(ollama.url).backends[0]])
        assert len(discovery.models) == 2 and len(seen) == 1
    finally:
        await discovery.close()


async def test_a_server_that_stops_answering_loses_its_models(ollama: OllamaServer) -> None:
    seen: list[tuple[Model, ...]] = []
    discovery = Discovery(seen.append, timeout=1.0)
    try:
        await discovery.update([_config(ollama.url).backends[0]])
        assert len(discovery.models) == 2
        ollama.stop()
        await _until(lambda: discovery.models == (), "models of a stopped server to go")
        assert seen[-1] == ()
    finally:
        await discovery.close()


async def test_openai_compatible_listing() -> None:
    """`discover: true` on an OpenAI-compatible server reads `GET {base_url}/models`, with
    the backend's key."""
    from aiohttp import web

    from tests.backends.servers import Served

    class Listing(Served):
        def app(self) -> web.Application:
            app = web.Application()

            async def models(request: web.Request) -> web.Response:
                self.received.append((request.path, request.headers.get("authorization")))
                return web.json_response({"object": "list", "data": [{"id": "m1"}]})

            app.router.add_get("/v1/models", models)
            return app

    with Listing() as server:
        vllm = _config(server.url).backends[1]
        discovery = Discovery(lambda _: None, timeout=2.0)
        try:
            await discovery.update([vllm])
            assert [m.alias for m in discovery.models] == ["gpu/m1"]
            assert server.received == [("/v1/models", "Bearer sk-abc")]
        finally:
            await discovery.close()
