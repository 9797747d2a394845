"""The cache parts of routes.yaml: `settings.cache` and a model's `cache`.

Pure, like `proxy.config` which calls it: nodes in, frozen values out, each bad value a
problem at its LINE:COL. Off unless configured: with neither `settings.cache` nor any model's
`cache: {...}`, nothing is cached.

    settings: {cache: {ttl: 10m, max_entries: 10000, max_bytes: 256MiB}}   # on for every model
    models: {gpt-4o: {cache: {ttl: 1h, shared: true}}, o1: {cache: false}}

A model's `ttl` overrides the settings' one; `shared: true` lets every client key see the
model's entries (otherwise each key has its own); `cache: false` turns it off for the model.
"""

import msgspec
import yaml

from proxy.config.yaml import BOOL, Reader, boolean, duration, integer, size

_SETTINGS = ("ttl", "max_entries", "max_bytes")
_MODEL = ("ttl", "shared")


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    ttl: float = 600.0  # seconds an entry lives
    max_entries: int = 10_000  # per worker (the in-process tier)
    max_bytes: int = 256 * 2**20  # per worker (the in-process tier)


class ModelCache(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = True  # False: `cache: false`
    ttl: float | None = None  # None: the settings' ttl
    shared: bool = False  # entries seen by every client key, not only the one that stored them


OFF = ModelCache(enabled=False)


class Policy(msgspec.Struct, frozen=True):
    """What a route's cache does: entries live `ttl` seconds, per client key unless shared."""

    ttl: float
    shared: bool = False


def policy(defaults: CacheSettings | None, own: ModelCache | None) -> Policy | None:
    """A model's cache policy; None: not cached."""
    if own is None:
        return None if defaults is None else Policy(defaults.ttl)
    if not own.enabled:
        return None
    ttl = own.ttl if own.ttl is not None else (defaults or CacheSettings()).ttl
    return Policy(ttl, own.shared)


def is_off(r: Reader, node: yaml.Node) -> bool:
    """A plain YAML false: `cache: false`."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL:
        return False
    s = r.scalar(node)
    return s is not None and s.tag == BOOL and not boolean(s)


def settings(r: Reader, node: yaml.Node) -> CacheSettings | None:
    """`settings.cache`; None when it is `false`."""
    if is_off(r, node):
        return None
    f = r.fields(node, "settings.cache", _SETTINGS)
    d = CacheSettings()
    return CacheSettings(
        ttl=r.get(f, "ttl", duration(positive=True), d.ttl),
        max_entries=r.get(f, "max_entries", integer(1), d.max_entries),
        max_bytes=r.get(f, "max_bytes", size(1), d.max_bytes),
    )


def model(r: Reader, node: yaml.Node, alias: str) -> ModelCache:
    """A model's `cache`."""
    if is_off(r, node):
        return OFF
    f = r.fields(node, f"cache of model {alias!r}", _MODEL)
    return ModelCache(
        ttl=r.get(f, "ttl", duration(positive=True), None),
        shared=r.get(f, "shared", boolean, False),
    )
