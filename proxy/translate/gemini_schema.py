"""JSON Schema (as OpenAI tools and response formats carry it) → the OpenAPI subset Gemini
accepts in `functionDeclarations[].parameters` and `generationConfig.responseSchema`.

Invariant: the output holds only keys Gemini knows (an unknown key is a 400 there): local
`$ref`s are inlined to a bounded depth, `type: [T, "null"]` and a null member of `anyOf` become
`nullable`, `const` becomes a one-value `enum`, `required` names only existing properties, and
an object without properties has no `properties` key (Gemini rejects an empty one).
"""

from collections.abc import Mapping
from typing import Any, Final

_KEEP: Final = frozenset(
    {
        "title",
        "description",
        "nullable",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "default",
        "minimum",
        "maximum",
        "propertyOrdering",
    }
)
_FORMATS: Final = {
    "string": frozenset({"enum", "date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
_MAX_DEPTH: Final = 12


def parameters(schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A function's parameter schema; None when the function takes no parameters."""
    if not schema:
        return None
    out = clean(schema)
    return out if out.get("properties") else None


def clean(schema: Mapping[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        found = schema.get(key)
        if isinstance(found, dict):
            defs.update(found)
    return _clean(schema, defs, 0)


def _clean(node: object, defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _clean({**target, **rest} if isinstance(target, dict) else rest, defs, depth + 1)
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if kinds else None
    if isinstance(kind, str):
        out["type"] = kind
    _union(node, out, defs, depth)
    enum = node.get("enum")
    if "const" in node:
        enum = [node["const"]]
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = enum
        out.setdefault("type", "string")
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    props = node.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {name: _clean(p, defs, depth + 1) for name, p in props.items()}
        required = node.get("required")
        if isinstance(required, list):
            names = [r for r in required if isinstance(r, str) and r in props]
            if names:
                out["required"] = names
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = _clean(items, defs, depth + 1)
    return out


def _union(node: dict[str, Any], out: dict[str, Any], defs: Mapping[str, Any], depth: int) -> None:
    for key in ("anyOf", "oneOf", "allOf"):
        members = node.get(key)
        if not isinstance(members, list):
            continue
        real = [m for m in members if not (isinstance(m, dict) and m.get("type") == "null")]
        if len(real) < len(members):
            out["nullable"] = True
        cleaned = [_clean(m, defs, depth + 1) for m in real]
        if len(cleaned) == 1 or (key == "allOf" and cleaned):
            for member in cleaned:  # a single member (or an intersection): fold it in
                out.update({k: v for k, v in member.items() if k not in out})
        elif cleaned:
            out["anyOf"] = cleaned
