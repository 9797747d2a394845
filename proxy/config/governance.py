"""The governance parts of routes.yaml: limits, budgets, prices and the state store's URL.

Pure, like `proxy.config` which calls it: nodes in, frozen values out, each bad value a
problem at its LINE:COL. These types are the config layer's, so `proxy.state` imports them
from here and the config imports nothing above it.

    settings: {state: memory | redis://HOST:PORT/DB | rediss://... | unix:///PATH,
               state_failure: open | closed, state_timeout: 250ms, metrics_key: ...}
    backends/models targets: price: {input: 2.5, output: 10, cached_input: 1.25}  # USD / 1M
    keys: [{..., rpm, tpm, max_parallel, budget: {usd: 50, period: month},
            limits: {"gpt-*": {rpm: 10, tpm: 1000, max_parallel: 2}}}]
"""

import math
import re
from typing import Literal

import msgspec
import yaml

from proxy.config.yaml import Reader, Scalar, choice, integer, line, show

Period = Literal["1d", "7d", "30d", "month"]
StateFailure = Literal["open", "closed"]
PERIODS: tuple[Period, ...] = ("1d", "7d", "30d", "month")
STATE_FAILURES: tuple[StateFailure, ...] = ("open", "closed")
LIMIT_FIELDS = ("rpm", "tpm", "max_parallel")
_PRICE = ("input", "output", "cached_input")
_BUDGET = ("usd", "period")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_STATE_URL = re.compile(r"(redis|rediss)://[^\s]*|unix://[^\s]+", re.IGNORECASE)


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (input + output) per minute
    max_parallel: int | None = None  # requests in flight at once

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_parallel is None


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    usd: float
    period: Period = "month"


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens; `cached_input` defaults to `input`."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None


def number(s: Scalar) -> float:
    """A finite number >= 0, written `2.5`, `10` or `1e-05` (YAML 1.1 reads the last as text)."""
    if not _NUMBER.fullmatch(s.text.strip()):
        raise ValueError(f"expected a number like 2.5, got {show(s.text)}")
    value = float(s.text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a number of at least 0, got {show(s.text)}")
    return value


def state_url(s: Scalar) -> str:
    """`memory`, or a Redis URL; never echoed (it can hold a password)."""
    value = line(s)
    if value == "memory" or _STATE_URL.fullmatch(value):
        return value
    raise ValueError("expected memory, redis://HOST:PORT/DB, rediss://... or unix:///PATH")


def price(r: Reader, node: yaml.Node, what: str) -> Price:
    f = r.fields(node, f"price of {what}", _PRICE)
    return Price(
        input=r.get(f, "input", number, 0.0),
        output=r.get(f, "output", number, 0.0),
        cached_input=r.get(f, "cached_input", number, None),
    )


def budget(r: Reader, node: yaml.Node, label: str) -> Budget | None:
    f = r.fields(node, f"budget of {label}", _BUDGET)
    usd = r.need(f, "usd", number, node, f"budget of {label} needs usd: (the amount per period)")
    period: Period = r.get(f, "period", choice(PERIODS), "month")
    return None if usd is None else Budget(usd=usd, period=period)


def limits(r: Reader, node: yaml.Node, what: str) -> Limits:
    f = r.fields(node, what, LIMIT_FIELDS)
    return Limits(
        rpm=r.get(f, "rpm", integer(1), None),
        tpm=r.get(f, "tpm", integer(1), None),
        max_parallel=r.get(f, "max_parallel", integer(1), None),
    )


def model_limits(r: Reader, node: yaml.Node, label: str) -> tuple[tuple[str, Limits], ...]:
    """`limits:` on a key: model glob -> its own limits, in file order."""
    out = []
    for glob, (key, value) in r.entries(node, f"limits of {label}").items():
        if not glob:
            r.problem(key, f"a model in limits of {label} can't be empty")
            continue
        found = limits(r, value, f"limits of {label} for {glob!r}")
        if found.empty:
            r.problem(key, f"limits for {glob!r} of {label} set none of rpm, tpm, max_parallel")
        out.append((glob, found))
    return tuple(out)
