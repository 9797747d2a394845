"""Config values from text: durations (`1m30s`, `250ms`), sizes (`16MiB`), and `${VAR}`
interpolation. Pure: the environment is an argument."""

import math
import re
from collections.abc import Mapping
from fractions import Fraction


def show(value: object) -> str:
    """A value for a message: its repr, cut short so a long scalar doesn't flood the log."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_NUMBER = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_PLAIN_SECONDS = re.compile(_NUMBER)
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h))+")
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h)")
_SIZE = re.compile(rf"({_NUMBER})\s*([A-Za-z]*)")
_SIZE_UNITS = {"": 1, "b": 1}
_SIZE_UNITS |= {p + "b": 1000**n for n, p in enumerate("kmgt", 1)}
_SIZE_UNITS |= {p + "ib": 1024**n for n, p in enumerate("kmgt", 1)}


def parse_duration(value: str | int | float) -> float:
    """Seconds from `5s`, `250ms`, `10m`, `1h`, `1m30s`, or a plain number of seconds."""
    seconds = math.nan
    if isinstance(value, str):
        text = value.strip()
        if _PLAIN_SECONDS.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(_seconds(float(n), unit) for n, unit in _DURATION_PART.findall(text))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a duration like 5s or 250ms, got {show(value)}")
    return seconds


def _seconds(n: float, unit: str) -> float:
    # Divide rather than multiply by 0.001, so "250ms" is exactly 250 / 1000.
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def parse_size(value: str | int) -> int:
    """Bytes from `16MiB`, `512KiB`, `10MB`, `100KB`, `1GiB`, `2048`, or an int."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (m := _SIZE.fullmatch(value.strip())):
        unit = _SIZE_UNITS.get(m[2].lower())
        size = Fraction(m[1]) * unit if unit is not None else None
        if size is not None and size.denominator == 1:  # "1.5KiB" is whole bytes; "1.5" isn't
            return int(size)
    raise ValueError(f"expected a size like 16MiB or 512KiB, got {show(value)}")


# --- interpolation -------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME_AND_DEFAULT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...], list[str]]:
    """`text` with references substituted, the variable names it used, and what went wrong.

    As in a shell, `${VAR:-default}` takes the default when VAR is unset or empty.
    """
    names: list[str] = []
    errors: list[str] = []

    def substitute(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        ref = _NAME_AND_DEFAULT.fullmatch(m[1]) if m[1] is not None else None
        if ref is None:  # the text inside may be a pasted key: never echo it
            errors.append(
                "a '${' must be ${NAME} or ${NAME:-default} (NAME is letters, digits and _);"
                " write $$ for a literal $"
            )
            return ""
        name, default = ref[1], ref[2]
        names.append(name)
        value = env.get(name)
        if value is not None and (value or default is None):
            return value
        if default is not None:
            return default
        errors.append(
            f"environment variable {name} is not set; set it or write ${{{name}:-default}}"
        )
        return ""

    return _REFERENCE.sub(substitute, text), tuple(names), errors


# --- scalars -------------------------------------------------------------------------------
