"""What the translators share (`proxy.translate`): reason maps, error reading, `pick`, small
parsers, the Gemini schema cleaner; and the package's purity."""

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.translate import (
    TranslationError,
    anthropic_gemini,
    anthropic_openai,
    openai_anthropic,
    openai_gemini,
    pick,
)
from proxy.translate.common import (
    ANTHROPIC_TO_OPENAI,
    GEMINI_TO_OPENAI,
    OPENAI_TO_ANTHROPIC,
    anthropic_stop,
    error_type,
    gemini_finish,
    openai_finish,
    parse_arguments,
    parse_data_url,
    read_error,
)
from proxy.translate.gemini_schema import clean, parameters

OPENAI_FINISHES = {"stop", "length", "tool_calls", "content_filter", "function_call"}
ANTHROPIC_STOPS = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
}


@given(st.text())
def test_reason_maps_are_total(value: str) -> None:
    assert openai_finish(value) in OPENAI_FINISHES
    assert gemini_finish(value) in OPENAI_FINISHES
    assert anthropic_stop(value) in ANTHROPIC_STOPS


def test_unknown_reasons_fall_back_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert (openai_finish("new"), gemini_finish("NEW"), anthropic_stop("new")) == (
        "stop",
        "stop",
        "end_turn",
    )
    assert len([r for r in caplog.records if "unknown finish reason" in r.message]) == 3


def test_reason_maps_cover_every_documented_value() -> None:
    assert set(ANTHROPIC_TO_OPENAI) == ANTHROPIC_STOPS
    assert set(OPENAI_TO_ANTHROPIC) == OPENAI_FINISHES
    assert {"STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "MALFORMED_FUNCTION_CALL"} <= set(
        GEMINI_TO_OPENAI
    )
    assert openai_finish("tool_use") == "tool_calls" and anthropic_stop("tool_calls") == "tool_use"
    assert (
        openai_finish("refusal") == "content_filter"
        and anthropic_stop("content_filter") == "refusal"
    )


def test_pick() -> None:
    assert pick("openai", "openai") is None and pick("anthropic", "anthropic") is None
    assert pick("openai", "anthropic") is openai_anthropic
    assert pick("openai", "gemini") is openai_gemini
    assert pick("anthropic", "openai") is anthropic_openai
    assert pick("anthropic", "gemini") is anthropic_gemini
    with pytest.raises(ValueError, match="gemini"):
        pick("gemini", "openai")


@pytest.mark.parametrize(
    ("body", "message", "kind", "code"),
    [
        (b'{"error":{"message":"m","type":"t","param":null,"code":"c"}}', "m", "t", "c"),
        (
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            "Overloaded",
            "overloaded_error",
            None,
        ),
        (
            b'{"error":{"code":404,"message":"no model","status":"NOT_FOUND"}}',
            "no model",
            "NOT_FOUND",
            404,
        ),
        (
            b'[{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]',
            "bad",
            "INVALID_ARGUMENT",
            400,
        ),
        (b'{"error":"plain"}', "plain", None, None),
        (b'{"message":"top"}', "top", None, None),
        (b'{"detail":"fastapi"}', "fastapi", None, None),
        (b'"a json string"', "a json string", None, None),
        (b"upstream connect error", "upstream connect error", None, None),
        (b"", "upstream returned HTTP 418", None, None),
        (b"null", "upstream returned HTTP 418", None, None),
        (
            b'{"error":{"message":"Incorrect API key provided: sk-proj-abcdef123456"}}',
            "Incorrect API key provided: [SECRET]",
            None,
            None,
        ),
        (
            b'{"error":{"message":"bad key AIzaSyA-1234567890abcdefghijklmnopqrstu"}}',
            "bad key [SECRET]",
            None,
            None,
        ),
    ],
)
def test_read_error(body: bytes, message: str, kind: str | None, code: Any) -> None:
    assert read_error(418, body) == (message, kind, code)


@given(
    st.integers(0, 999),
    st.binary(max_size=300) | st.from_type(object).map(lambda v: repr(v).encode()),
)
def test_read_error_never_fails_and_always_has_a_message(status: int, body: bytes) -> None:
    up = read_error(status, body)
    assert up.message and len(up.message) <= 2000


@given(st.integers(0, 999))
def test_error_type_is_total(status: int) -> None:
    assert error_type(status).endswith("_error") or error_type(status) == "request_too_large"


def test_parse_data_url() -> None:
    assert parse_data_url("data:image/png;base64,AAA=") == ("image/png", "AAA=")
    assert parse_data_url("data:application/pdf;name=a.pdf;base64,JV") == ("application/pdf", "JV")
    assert parse_data_url("data:text/plain,hello") is None
    assert parse_data_url("https://x/y.png") is None


def test_parse_arguments() -> None:
    assert parse_arguments("", "p") == {} and parse_arguments(' {"a": 1} ', "p") == {"a": 1}
    for bad in ("[1]", "{", "1"):
        with pytest.raises(TranslationError) as err:
            parse_arguments(bad, "messages[0]")
        assert err.value.param == "messages[0]"


# -- Gemini schema -----------------------------------------------------------------------------

GEMINI_KEYS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
}  # fmt: skip

schema_keys = st.sampled_from(
    ["type", "properties", "items", "anyOf", "oneOf", "allOf", "$ref", "$defs", "required", "enum",
     "const", "format", "additionalProperties", "$schema", "description", "examples", "minimum"]
)  # fmt: skip
schemas = st.recursive(
    st.sampled_from(
        [
            {"type": "string"},
            {"type": ["integer", "null"]},
            {"$ref": "#/$defs/X"},
            {},
            {"type": "null"},
        ]
    ),
    lambda inner: st.one_of(
        st.builds(
            lambda p: {"type": "object", "properties": p, "additionalProperties": False},
            st.dictionaries(st.text(max_size=5), inner, max_size=3),
        ),
        st.builds(lambda i: {"type": "array", "items": i}, inner),
        st.builds(lambda m: {"anyOf": m}, st.lists(inner, max_size=3)),
        st.dictionaries(
            schema_keys, inner | st.text(max_size=4) | st.lists(st.text(max_size=3)), max_size=4
        ),
    ),
    max_leaves=12,
)


def only_gemini_keys(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    if not set(node) <= GEMINI_KEYS:
        return False
    props = node.get("properties", {})
    if props == {} and "properties" in node:
        return False
    if any(r not in props for r in node.get("required", [])):
        return False
    children = [*props.values(), *node.get("anyOf", [])]
    if "items" in node:
        children.append(node["items"])
    return all(only_gemini_keys(c) for c in children)


@given(schemas, st.dictionaries(st.just("X"), schemas, max_size=1))
def test_cleaned_schema_holds_only_what_gemini_accepts(schema: Any, defs: dict[str, Any]) -> None:
    if isinstance(schema, dict):
        schema = {**schema, "$defs": defs}
    out = clean(schema) if isinstance(schema, dict) else {}
    assert only_gemini_keys(out)
    json.dumps(out)


def test_self_referencing_schema_terminates() -> None:
    tree = {
        "type": "object",
        "properties": {"child": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
    }
    out = clean(tree)
    assert only_gemini_keys(out)


def test_parameters() -> None:
    assert parameters(None) is None and parameters({}) is None
    assert parameters({"type": "object", "properties": {}}) is None
    assert parameters(
        {"type": "object", "properties": {"a": {"type": "string", "examples": ["x"]}}}
    ) == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }
    union = {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "d"}
    assert clean(union) == {"description": "d", "nullable": True, "type": "string"}


# -- purity ------------------------------------------------------------------------------------

FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "litestar",
    "time",
    "datetime",
    "os",
    "random",
    "uuid",
    "secrets",
    "socket",
}


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parents[2] / "proxy" / "translate").glob("*.py")),
    ids=lambda p: p.name,
)
def test_translate_modules_are_pure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & FORBIDDEN
    assert imported <= {
        "collections",
        "typing",
        "logging",
        "re",
        "hashlib",
        "base64",
        "struct",
        "msgspec",
        "proxy",
        "schemas",
    }
