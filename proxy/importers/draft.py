"""A routes.yaml being built by an importer, and its text: settings, backends, models, keys
and a note for everything that could not be mapped.

Pure. Invariants: the text is valid YAML that `proxy.config.parse` reads back as the draft
(every string is written so YAML keeps it a string; a literal `$` is written `$$` so only the
`${VAR}` references an importer made on purpose are interpolated); every note is a `#`
comment line, so nothing the source had is dropped silently.
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import yaml

Value = str | int | float | bool | None


class Env(str):
    """A value that is an environment reference as written (`${VAR}`): not escaped."""

    __slots__ = ()


class Flow(str):
    """A value already written as YAML flow text (`{input: 2.5, output: 10}`): written as is."""

    __slots__ = ()


def env(name: str, default: str | None = None) -> Env:
    return Env(f"${{{name}}}" if default is None else f"${{{name}:-{default}}}")


@dataclass
class Draft:
    source: str  # what was imported, for the header
    settings: dict[str, Value | dict[str, Value] | list[str]] = field(default_factory=dict)
    backends: dict[str, dict[str, Value]] = field(default_factory=dict)
    models: dict[str, list[dict[str, Value]]] = field(default_factory=dict)
    strategies: dict[str, str] = field(default_factory=dict)  # alias → strategy, when set
    keys: list[dict[str, Value]] | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, where: str, why: str) -> None:
        self.notes.append(f"{where}: {why}")

    def backend(self, base: str, fields: dict[str, Value]) -> str:
        """The name of a backend with exactly these fields, adding one (`base`, `base-2`, ...)."""
        for name, existing in self.backends.items():
            if existing == fields:
                return name
        name, n = base, 1
        while name in self.backends:
            n += 1
            name = f"{base}-{n}"
        self.backends[name] = fields
        return name


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_RESOLVER = yaml.resolver.Resolver()


def scalar(value: Value) -> str:
    """`value` as a YAML flow scalar that reads back as the same value and type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Flow):
        return str(value)
    text = value if isinstance(value, Env) else value.replace("$", "$$")
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if _PLAIN.fullmatch(text) and tag == "tag:yaml.org,2002:str":
        return text
    return quoted(text)


_RAW = re.compile("[\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def quoted(text: str) -> str:
    """A YAML double-quoted scalar; what YAML can't hold raw is escaped, a lone surrogate
    (which no YAML or UTF-8 text can hold) becomes U+FFFD."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif _RAW.match(c):
            out.append(c)
        elif 0xD800 <= ord(c) <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return "".join(out) + '"'


def _flow(fields: Mapping[str, Value]) -> str:
    return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in fields.items()) + "}"


def _comment(text: str) -> list[str]:
    # YAML also breaks lines at NEL, LS and PS, and rejects most control characters.
    lines = "".join(c if c.isprintable() or c == "\n" else " " for c in text).split("\n")
    return ["# " + line if line else "#" for line in lines]


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(scalar(i) for i in items) + "]"


def render(draft: Draft) -> str:
    out = _comment(f"routes.yaml imported by `llm-proxy import` from {draft.source}")
    if draft.notes:
        out.append("#")
        out.append("# Not mapped, and why:")
        for note in draft.notes:
            out.extend(_comment("- " + note))
    out += ["", "version: 1"]
    if draft.settings:
        out.append("settings:")
        for name, value in draft.settings.items():
            if isinstance(value, dict):
                out.append(f"  {name}: {_flow(value)}")
            elif isinstance(value, list):
                out.append(f"  {name}: {_list(value)}")
            else:
                out.append(f"  {name}: {scalar(value)}")
    out.append("backends:" if draft.backends else "backends: {}")
    for name, fields in draft.backends.items():
        out.append(f"  {scalar(name)}:")
        out.extend(f"    {k}: {scalar(v)}" for k, v in fields.items())
    out.append("models:" if draft.models else "models: {}")
    for alias, targets in draft.models.items():
        out.append(f"  {scalar(alias)}:")
        if alias in draft.strategies:
            out.append(f"    strategy: {draft.strategies[alias]}")
        out.append("    targets:")
        for target in targets:  # a model equal to the alias is the default: leave it out
            shown = {k: v for k, v in target.items() if not (k == "model" and v == alias)}
            out.append(f"      - {_flow(shown)}")
    if draft.keys is not None:
        out.append("keys:")
        for key in draft.keys:
            out.append(f"  - {_flow(key)}")
    return "\n".join(out) + "\n"
