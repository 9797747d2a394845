"""routes.yaml text + environment → a frozen `Config`, or `ConfigError` with every problem.

`schema` holds the frozen types, `read` turns text into them (`parse`), `entries` reads the
backends, models and keys; `yaml` is the LINE:COL reader, `env` the `LLM_PROXY__` overrides,
and `backends`, `cache`, `governance`, `sessions` the sections those features add.
"""

from proxy.config.cache import CacheSettings, ModelCache
from proxy.config.env import Override
from proxy.config.governance import Budget, Limits, Price
from proxy.config.read import parse
from proxy.config.schema import (
    Backend,
    BackendType,
    ClientKey,
    Config,
    ConfigError,
    Model,
    ResponsesStoreSettings,
    Secret,
    Settings,
    Target,
    Timeouts,
)
from proxy.config.sessions import Commands, LoopDetection, Sessions
from proxy.config.yaml import Problem, parse_duration, parse_size

__all__ = [
    "Backend",
    "BackendType",
    "Budget",
    "CacheSettings",
    "ClientKey",
    "Commands",
    "Config",
    "ConfigError",
    "Limits",
    "LoopDetection",
    "Model",
    "ModelCache",
    "Override",
    "Price",
    "Problem",
    "ResponsesStoreSettings",
    "Secret",
    "Sessions",
    "Settings",
    "Target",
    "Timeouts",
    "parse",
    "parse_duration",
    "parse_size",
]
