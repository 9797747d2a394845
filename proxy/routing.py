"""The route table: an immutable snapshot of which targets serve which model name.

Built whole from a `Config`, never mutated: a request that resolved against one table keeps
it to the end, whatever reload swaps in meanwhile. Exact aliases win over globs; among globs
the longest literal prefix wins (then the longest pattern, then file order). `*` in a
target's model is replaced by the text the glob's first `*` matched.

With `settings.direct_addressing`, a name written `BACKEND:MODEL` or `BACKEND/MODEL`, where
BACKEND is a backend of the config, routes to that backend with MODEL as the provider model
id. An exact alias still wins (the operator named it); direct addressing comes before globs,
so a catch-all glob can't hide it. Which names a key may use is the caller's check, on the
name as written.
"""

import copy
import fnmatch
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from proxy.config import Config, Model, Price, Target
from proxy.config.cache import Policy, policy
from proxy.resilience import Circuit


class TargetKey(NamedTuple):
    """Identity of one target for circuit state: backend name and provider-side model id."""

    backend: str
    model: str


class Candidate(NamedTuple):
    key: TargetKey
    weight: int
    priority: int
    # The target's model as configured (`vendor-*`, or the alias pattern `up/*` when the target
    # names no model): a bounded metric label, where `key.model` is the client's expanded text.
    label: str = ""
    price: Price | None = None  # USD per million tokens, when the target names one


class Route(NamedTuple):
    alias: str  # the alias (or glob) that matched
    strategy: str
    tiers: tuple[tuple[Candidate, ...], ...]  # by priority, lowest first
    cache: Policy | None = None  # None: answers are not cached (proxy.cache)


class _Glob(NamedTuple):
    pattern: str
    regex: re.Pattern[str]
    prefix_len: int
    model: Model


class RouteTable:
    __slots__ = (
        "_backends",
        "_cache",
        "_direct",
        "_enabled",
        "_exact",
        "_globs",
        "_routes",
        "aliases",
    )

    def __init__(self, config: Config) -> None:
        enabled = {b.name for b in config.backends if b.enabled}
        self._exact: dict[str, Model] = {}
        globs: list[_Glob] = []
        listed: list[str] = []
        for model in config.models:
            if "*" in model.alias:
                regex = _glob_regex(model.alias)
                prefix = len(model.alias.split("*", 1)[0])
                globs.append(_Glob(model.alias, regex, prefix, model))
            else:
                self._exact[model.alias] = model
                if any(t.backend in enabled for t in model.targets):
                    listed.append(model.alias)
        globs.sort(key=lambda g: (-g.prefix_len, -len(g.pattern)))
        self._globs = tuple(globs)
        self._routes: dict[str, Route | None] = {}
        self.aliases: tuple[str, ...] = tuple(listed)  # what /v1/models lists
        self._enabled = enabled
        self._cache = config.settings.cache
        self._direct = config.settings.direct_addressing
        self._backends = frozenset(b.name for b in config.backends)

    def resolve(self, name: str) -> Route | None:
        """The route for a requested model name, or None if nothing matches."""
        route = self._routes.get(name)
        if route is not None or name in self._routes:
            return route
        route = self._build(name)
        if len(self._routes) < 4096:  # bounded: glob lookups of arbitrary names
            self._routes[name] = route
        return route

    def _build(self, name: str) -> Route | None:
        model = self._exact.get(name)
        matched = ""
        if model is None and self._direct:
            direct = self.direct(name)
            if direct is not None:
                return direct
        if model is None:
            for glob in self._globs:
                m = glob.regex.match(name)
                if m is not None:
                    model = glob.model
                    matched = m.group(1) if m.groups() else ""
                    break
        if model is None:
            return None
        return Route(
            model.alias,
            model.strategy,
            _tiers(model.targets, name, matched, self._enabled, model.alias),
            policy(self._cache, model.cache),
        )

    def direct(self, name: str) -> Route | None:
        """`BACKEND:MODEL` or `BACKEND/MODEL` as a one-target route (whatever the setting),
        or None when no defined backend is named. A disabled backend gives no tiers."""
        for sep in (":", "/"):
            backend, found, model = name.partition(sep)
            if found and model and backend in self._backends:
                target = Target(backend=backend, model=model)
                tiers = _tiers((target,), name, "", self._enabled, name)
                return Route(name, "weighted", tiers, policy(self._cache, None))
        return None

    def extended(self, models: Sequence[Model]) -> "RouteTable":
        """A new table that also routes `models` (discovered ones: exact aliases, one target
        each). An alias the config already names keeps its configured route; this table is
        left as it was."""
        table = copy.copy(self)
        table._exact = dict(self._exact)
        table._routes = {}
        listed = list(self.aliases)
        for model in models:
            if "*" in model.alias or model.alias in table._exact:
                continue
            table._exact[model.alias] = model
            if any(t.backend in self._enabled for t in model.targets):
                listed.append(model.alias)
        table.aliases = tuple(listed)
        return table

    def fixed_targets(self) -> frozenset[TargetKey]:
        """Every target of an exact alias: the per-target state that is never evicted."""
        return frozenset(
            c.key
            for alias, model in self._exact.items()
            for tier in _tiers(model.targets, alias, "", self._enabled, alias)
            for c in tier
        )

    def suggestions(self, limit: int = 5, allowed: Sequence[str] | None = None) -> list[str]:
        """A few routable names for 'unknown model' messages; with `allowed` (the caller's
        key's model globs) only names that key may use: an exact alias one of the globs
        matches, a glob alias whose pattern text one of them matches (so never a pattern the
        key could use only in part)."""

        def ok(name: str) -> bool:
            return allowed is None or any(fnmatch.fnmatchcase(name, g) for g in allowed)

        names = [a for a in self.aliases if ok(a)] + [
            g.pattern for g in self._globs if ok(g.pattern)
        ]
        return names[:limit]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """`*` matches any text; the first `*` is captured for substitution into target models."""
    parts = [re.escape(p) for p in pattern.split("*")]
    body = parts[0] + "(.*)" + ".*".join(parts[1:]) if len(parts) > 1 else parts[0]
    return re.compile(body + r"\Z", re.DOTALL)


def _tiers(
    targets: Sequence[Target], name: str, matched: str, enabled: set[str], alias: str
) -> tuple[tuple[Candidate, ...], ...]:
    by_priority: dict[int, list[Candidate]] = {}
    for t in targets:
        if t.backend not in enabled:
            continue
        model = name if t.model is None else t.model.replace("*", matched)
        label = alias if t.model is None else t.model
        by_priority.setdefault(t.priority, []).append(
            Candidate(TargetKey(t.backend, model), t.weight, t.priority, label, t.price)
        )
    return tuple(tuple(by_priority[p]) for p in sorted(by_priority))


def weighted_order(tier: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """A weighted random permutation (Efraimidis-Spirakis): heavier first, more often."""
    if len(tier) == 1:
        return [tier[0]]
    keyed = [(rng.random() ** (1.0 / c.weight), c) for c in tier]
    keyed.sort(key=lambda kc: kc[0], reverse=True)
    return [c for _, c in keyed]


def order(
    route: Route,
    rng: random.Random,
    usable: Callable[[TargetKey], bool],
    rank: Callable[[Sequence[Candidate]], list[Candidate]] | None = None,
) -> list[Candidate]:
    """Candidates in attempt order: tier by tier, each tier ordered by `rank` (default
    weighted-random), skipping targets that are not `usable` (circuit open)."""
    tiers = route.tiers
    if len(tiers) == 1 and len(tiers[0]) == 1:  # the common case: one target
        only = tiers[0][0]
        return [only] if usable(only.key) else []
    out: list[Candidate] = []
    for tier in tiers:
        live = [c for c in tier if usable(c.key)]
        if live:
            out.extend(rank(live) if rank is not None else weighted_order(live, rng))
    return out


EXPLORE = 0.1  # share of `latency` picks that ignore the ranking, so a recovered target is seen


def ranker(
    route: Route, circuits: Mapping[TargetKey, Circuit], rng: random.Random
) -> Callable[[Sequence[Candidate]], list[Candidate]] | None:
    if route.strategy == "least_busy":

        def busy(c: Candidate) -> int:
            circuit = circuits.get(c.key)
            return 0 if circuit is None else circuit.in_flight

        return lambda tier: sorted(tier, key=busy)
    if route.strategy == "latency":

        def fastest(tier: Sequence[Candidate]) -> list[Candidate]:
            if rng.random() < EXPLORE:
                return rng.sample(list(tier), len(tier))
            return sorted(tier, key=lambda c: _latency_score(circuits.get(c.key)))

        return fastest
    return None


def _latency_score(circuit: Circuit | None) -> float:
    # Unmeasured targets go first, so a new or recovered target is explored.
    return -1.0 if circuit is None or circuit.ttfb is None else circuit.ttfb
