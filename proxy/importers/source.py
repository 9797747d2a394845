"""Reading someone else's config safely: YAML text → plain values, and typed picks from them.

Pure. Invariant: whatever the text holds, the importers see only dicts, lists and scalars, and
a value of the wrong type reads as absent (the importer then writes a note), never an
exception; only text that is not YAML, or not a mapping at the top, is `ImportFailed`.
"""

import math
import re
from typing import Any

import yaml

from proxy.importers.draft import env

_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ImportFailed(Exception):
    """The file can't be imported at all; the message says why."""


def load(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ImportFailed(f"not valid YAML{at}") from err
    if not isinstance(data, dict):
        raise ImportFailed("the top level must be a mapping")
    return {str(k): v for k, v in data.items()}


def mapping(value: object) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def text(value: object) -> str | None:
    """A string, or a number written where a string belongs; None otherwise or when empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value) or None
    return None


def number(value: object) -> float | None:
    """A finite number (or a numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def secret_or_ref(value: object) -> str | None:
    """`os.environ/VAR` as `${VAR}`; other one-line text as itself; None when absent or bad."""
    raw = text(value)
    if raw is None or any(c in raw for c in "\r\n\0"):  # not a header value
        return None
    if raw.startswith("os.environ/"):
        name = raw.removeprefix("os.environ/")
        return env(name) if _VAR.fullmatch(name) else None
    return raw
