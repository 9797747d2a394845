"""The interactive settings of routes.yaml: `sessions`, `commands`, `loop_detection`.

Pure, like `proxy.config` which calls it: YAML nodes in, frozen Structs out, each bad value a
Problem at its LINE:COL (and the default kept). Invariant: a `LoopDetection` that comes back
always has `min_repeats >= 2` and a window that holds `min_repeats` copies of a fragment
of at least one character, so the detector never needs to re-check its own settings.
"""

import re

import msgspec
import yaml

from proxy.config.yaml import Reader, Scalar, boolean, duration, integer, is_null, show

__all__ = [
    "MIN_WINDOW",
    "Commands",
    "LoopDetection",
    "Sessions",
    "commands",
    "loop_detection",
    "sessions",
]


class Sessions(msgspec.Struct, frozen=True, kw_only=True):
    ttl: float = 3600.0  # seconds a session lives after its last turn
    max: int = 10_000  # sessions kept in memory per worker; the oldest go first
    derive: bool = False  # no id sent: derive one from the key and the first user message


class Commands(msgspec.Struct, frozen=True, kw_only=True):
    prefix: str = "!/"
    enabled: bool = True


class LoopDetection(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False
    window: int = 4096  # characters of recent output the detector looks back over
    min_repeats: int = 6  # consecutive copies of one fragment that make a loop


_SESSIONS = ("ttl", "max", "derive")
_COMMANDS = ("prefix", "enabled")
_LOOPS = ("enabled", "window", "min_repeats")
_PREFIX = re.compile(r"[^\s()`\\\"']{1,8}")  # visible, and never part of the command grammar
MIN_WINDOW = 256  # below this a loop of real sentences can't fit min_repeats times


def sessions(r: Reader, node: yaml.Node) -> Sessions:
    f = r.fields(node, "settings.sessions", _SESSIONS)
    d = Sessions()
    return Sessions(
        ttl=r.get(f, "ttl", duration(positive=True), d.ttl),
        max=r.get(f, "max", integer(1), d.max),
        derive=r.get(f, "derive", boolean, d.derive),
    )


def _prefix(s: Scalar) -> str:
    if not _PREFIX.fullmatch(s.text):
        raise ValueError(
            "expected a command prefix of 1 to 8 visible characters without spaces, quotes, "
            f"backslashes, backticks or parentheses (like !/), got {show(s.text)}"
        )
    return s.text


def commands(r: Reader, node: yaml.Node) -> Commands:
    f = r.fields(node, "settings.commands", _COMMANDS)
    d = Commands()
    return Commands(
        prefix=r.get(f, "prefix", _prefix, d.prefix),
        enabled=r.get(f, "enabled", boolean, d.enabled),
    )


def loop_detection(
    r: Reader, node: yaml.Node, what: str, base: LoopDetection, *, on: bool
) -> LoopDetection:
    """`true`, `false` or a mapping; unset fields come from `base`.

    A model's own mapping turns detection on unless it says `enabled: false` (`on=True`):
    writing the section for a model means wanting it there.
    """
    if isinstance(node, yaml.ScalarNode) and not is_null(node):
        enabled = r.one(node, boolean, base.enabled)
        return msgspec.structs.replace(base, enabled=enabled)
    f = r.fields(node, what, _LOOPS)
    window = r.get(f, "window", integer(MIN_WINDOW, 1 << 20), base.window)
    repeats = r.get(f, "min_repeats", integer(2, 1000), base.min_repeats)
    if repeats > window:
        where = f["min_repeats"][1] if "min_repeats" in f else node
        r.problem(where, f"min_repeats={repeats} copies can't fit in window={window} characters")
        repeats = base.min_repeats if base.min_repeats <= window else 2
    return LoopDetection(
        enabled=r.get(f, "enabled", boolean, True if on else base.enabled),
        window=window,
        min_repeats=repeats,
    )
