"""The cache key (pure), the client's cache-control, and the cache config."""

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cache.key import canonical, control, key_of
from proxy.config import ConfigError, parse
from proxy.config.cache import CacheSettings, ModelCache, Policy, policy
from proxy.routing import RouteTable

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


def fields_of(obj: dict[str, Any], indent: int = 0) -> dict[str, msgspec.Raw]:
    text = msgspec.json.format(msgspec.json.encode(obj), indent=indent)
    return msgspec.json.decode(text, type=dict[str, msgspec.Raw])


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_key_ignores_whitespace_and_key_order(body: dict[str, Any]) -> None:
    reordered = dict(reversed(list(body.items())))
    assert key_of(fields_of(body), "chat", "m", "k") == key_of(
        fields_of(reordered, indent=2), "chat", "m", "k"
    )


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), st.booleans())
def test_transport_only_fields_do_not_change_the_key(body: dict[str, Any], usage: bool) -> None:
    streamed = {**body, "stream": True, "stream_options": {"include_usage": usage}}
    assert key_of(fields_of(body), "chat", "m", None) == key_of(
        fields_of(streamed), "chat", "m", None
    )


def test_key_separates_namespace_alias_endpoint_and_content() -> None:
    f = fields_of({"model": "m", "messages": [{"role": "user", "content": "secret prompt"}]})
    keys = {
        key_of(f, "chat", "m", "alice"),
        key_of(f, "chat", "m", "bob"),
        key_of(f, "chat", "m", None),
        key_of(f, "chat", "other", "alice"),
        key_of(f, "messages", "m", "alice"),
        key_of(fields_of({"model": "m", "messages": [], "temperature": 0}), "chat", "m", "alice"),
    }
    assert len(keys) == 6
    assert all(len(k) == 64 and "secret" not in k for k in keys)


def test_canonical_sorts_nested_keys() -> None:
    assert canonical(fields_of({"b": {"y": 1, "x": [2, {"d": 1, "c": 0}]}, "a": 1})) == (
        b'{"a":1,"b":{"x":[2,{"c":0,"d":1}],"y":1}}'
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "use"),
        (b"", "use"),
        (b"max-age=0", "use"),
        (b"no-cache", "no-cache"),
        (b"No-Cache, max-age=0", "no-cache"),
        (b"no-store", "no-store"),
        (b"no-cache, no-store", "no-store"),
    ],
)
def test_cache_control(header: bytes | None, expected: str) -> None:
    assert control(header) == expected


BASE = """
version: 1
backends: {demo: {type: mock}}
"""


def test_config_off_unless_configured() -> None:
    config = parse(BASE + "models: {m: {targets: [{backend: demo}]}}\n", {})
    assert config.settings.cache is None
    route = RouteTable(config).resolve("m")
    assert route is not None and route.cache is None


def test_config_settings_and_per_model() -> None:
    text = (
        BASE
        + """
settings: {cache: {ttl: 10m, max_entries: 5, max_bytes: 1MiB}}
models:
  a: {targets: [{backend: demo}]}
  b: {targets: [{backend: demo}], cache: {ttl: 1h, shared: true}}
  c: {targets: [{backend: demo}], cache: false}
  "g/*": {targets: [{backend: demo}], cache: {shared: true}}
"""
    )
    config = parse(text, {})
    assert config.settings.cache == CacheSettings(ttl=600, max_entries=5, max_bytes=2**20)
    table = RouteTable(config)
    routes = {name: table.resolve(name) for name in ("a", "b", "c", "g/x")}
    assert {n: r.cache if r else "none" for n, r in routes.items()} == {
        "a": Policy(600.0),
        "b": Policy(3600.0, True),
        "c": None,
        "g/x": Policy(600.0, True),
    }


def test_a_model_cache_alone_turns_it_on_with_default_bounds() -> None:
    assert policy(None, ModelCache(ttl=5)) == Policy(5.0)
    assert policy(None, ModelCache()) == Policy(CacheSettings().ttl)
    assert policy(CacheSettings(), ModelCache(enabled=False)) is None


def test_config_problems_name_their_place() -> None:
    text = (
        BASE
        + """
settings: {cache: {ttl: soon, max_entries: 0, maxbytes: 1}}
models:
  m: {targets: [{backend: demo}], cache: {shared: maybe, tll: 5}}
"""
    )
    with pytest.raises(ConfigError) as info:
        parse(text, {})
    shown = [str(p) for p in info.value.problems]
    assert len(shown) == 5  # ttl, max_entries, maxbytes; shared, tll
    assert any("'soon'" in p for p in shown) and any("'maxbytes'" in p for p in shown)
    assert any("'maybe'" in p for p in shown) and any("did you mean 'ttl'" in p for p in shown)
