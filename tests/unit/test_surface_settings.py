"""The seed-surface settings: key_headers, default_model, max_concurrent, queue_timeout,
direct_addressing; `auth.pick_key`; direct addressing in the route table."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy import auth, errors
from proxy.config import ClientKey, Settings, parse
from proxy.routing import Candidate, RouteTable, TargetKey
from tests.unit.config_support import problems, with_settings


def test_defaults() -> None:
    s = parse(with_settings("retries: 1"), {}).settings
    assert s.key_headers == ("authorization", "x-api-key")
    assert (s.default_model, s.max_concurrent, s.queue_timeout) == (None, None, None)
    assert s.direct_addressing is False


def test_values_are_read() -> None:
    text = with_settings(
        "key_headers: [Authorization, x-internal-auth]\n"
        "default_model: demo\n"
        "max_concurrent: 8\n"
        "queue_timeout: 250ms\n"
        "direct_addressing: yes"
    )
    s = parse(text, {}).settings
    assert s == Settings(
        key_headers=("authorization", "x-internal-auth"),
        default_model="demo",
        max_concurrent=8,
        queue_timeout=0.25,
        direct_addressing=True,
    )


def test_key_headers_as_one_comma_separated_value() -> None:
    s = parse(with_settings("key_headers: x-internal-auth, x-api-key"), {}).settings
    assert s.key_headers == ("x-internal-auth", "x-api-key")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("key_headers: []", "settings.key_headers is empty"),
        ("key_headers: ['bad header']", "'bad header' in settings.key_headers is not a valid"),
        ("max_concurrent: 0", "expected an integer >= 1, got 0"),
        ("queue_timeout: soon", "expected a duration"),
        ("direct_addressing: maybe", "expected true or false"),
    ],
)
def test_bad_values_are_problems(line: str, message: str) -> None:
    found = problems(with_settings(line))
    assert len(found) == 1 and message in found[0], found


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


def test_pick_key_follows_the_configured_order() -> None:
    both = _headers(authorization="Bearer one", x_internal_auth="two")
    assert auth.pick_key(both, ("authorization", "x-internal-auth")) == b"one"
    assert auth.pick_key(both, ("x-internal-auth", "authorization")) == b"two"
    assert auth.pick_key(both, ("x-api-key",)) is None


def test_pick_key_reads_authorization_only_as_bearer() -> None:
    basic = _headers(authorization="Basic dXNlcg==", x_api_key="k")
    assert auth.pick_key(basic, ("authorization", "x-api-key")) == b"k"
    assert auth.pick_key(_headers(x_internal_auth="Bearer s3"), ("x-internal-auth",)) == b"s3"
    assert auth.pick_key(_headers(authorization="Bearer  "), ("authorization",)) is None


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b.strip() == b and b" " not in b))
def test_pick_key_returns_the_header_value(secret: bytes) -> None:
    assert auth.pick_key([(b"x-internal-auth", secret)], ("x-internal-auth",)) == secret


def test_keyring_identifies_from_any_configured_header() -> None:
    key = ClientKey(name="svc", digest=hashlib.sha256(b"s3cret").digest())
    ring = auth.Keyring.build((key,))
    headers = ("authorization", "x-api-key", "x-internal-auth")
    assert ring.identify_headers(_headers(x_internal_auth="s3cret"), headers) is key
    with pytest.raises(errors.Unauthorized, match="'x-internal-auth: KEY'"):
        ring.identify_headers(_headers(x_api_key="s3cret"), ("authorization", "x-internal-auth"))
    with pytest.raises(errors.Unauthorized, match=r"as 'Authorization: Bearer KEY'$"):
        ring.identify_headers(_headers(x_internal_auth="s3cret"), ("authorization",))
    with pytest.raises(errors.Unauthorized, match="not valid"):
        ring.identify_headers(_headers(x_internal_auth="wrong"), headers)
    assert auth.Keyring.build(None).identify_headers([], headers) is auth.ANONYMOUS


DIRECT = """\
version: 1
settings: {direct_addressing: true}
backends:
  openai: {type: openai, api_key: k}
  ollama: {type: openai, base_url: "http://127.0.0.1:11434/v1"}
  off: {type: openai, api_key: ""}
models:
  gpt-4o: {targets: [{backend: openai}]}
  openai/gpt-4o: {targets: [{backend: ollama, model: pinned}]}
  "*": {targets: [{backend: ollama, model: catch-all}]}
"""


def _only(table: RouteTable, name: str) -> Candidate:
    route = table.resolve(name)
    assert route is not None and len(route.tiers) == 1 and len(route.tiers[0]) == 1
    return route.tiers[0][0]


def test_direct_addressing_routes_backend_and_model() -> None:
    table = RouteTable(parse(DIRECT, {}))
    assert _only(table, "openai:gpt-4o-mini").key == TargetKey("openai", "gpt-4o-mini")
    assert _only(table, "ollama/llama3.2:1b").key == TargetKey("ollama", "llama3.2:1b")
    assert _only(table, "ollama:qwen/qwen3").key == TargetKey("ollama", "qwen/qwen3")


def test_exact_aliases_win_and_globs_come_after() -> None:
    table = RouteTable(parse(DIRECT, {}))
    assert _only(table, "openai/gpt-4o").key == TargetKey("ollama", "pinned")
    assert _only(table, "nobody:x").key == TargetKey("ollama", "catch-all")
    assert _only(table, "openai:").key == TargetKey("ollama", "catch-all")


def test_a_disabled_backend_gives_no_candidates() -> None:
    route = RouteTable(parse(DIRECT, {})).resolve("off:gpt-4o")
    assert route is not None and route.tiers == ()


def test_off_by_default() -> None:
    table = RouteTable(parse(DIRECT.replace("direct_addressing: true", "retries: 1"), {}))
    assert _only(table, "openai:gpt-4o-mini").key == TargetKey("ollama", "catch-all")


def test_key_globs_apply_to_the_written_name() -> None:
    key = ClientKey(name="team", digest=b"x", models=("openai:*", "gpt-4o"))
    assert auth.allowed(key, "openai:gpt-4o-mini")
    assert not auth.allowed(key, "openai/gpt-4o-mini")
    assert not auth.allowed(key, "ollama:llama3")


@given(st.text(max_size=30))
def test_direct_names_never_crash_and_keep_the_model(name: str) -> None:
    route = RouteTable(parse(DIRECT, {})).direct(name)
    if route is not None:
        (cand,) = route.tiers[0] if route.tiers else (None,)
        assert cand is None or name.endswith(cand.key.model)
