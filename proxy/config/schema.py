"""The config's frozen types: what a loaded `routes.yaml` is. Keys, tokens and upstream header
values are kept out of reprs (`Secret`). Built only by `proxy.config.read`."""

import hmac
from collections.abc import Iterable
from typing import Literal

import msgspec

from proxy.config.backends import OptionValue
from proxy.config.cache import CacheSettings, ModelCache
from proxy.config.env import Override
from proxy.config.governance import Budget, Limits, Price, StateFailure
from proxy.config.sessions import Commands, LoopDetection, Sessions
from proxy.config.yaml import (
    Problem,
)
from proxy.template import HttpTemplate


class Secret:
    """A secret string that never shows itself: repr, str and f-strings give `Secret('***')`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        mine, theirs = (s._value.encode("utf-8", "surrogatepass") for s in (self, other))
        return hmac.compare_digest(mine, theirs)

    def __hash__(self) -> int:
        return hash(self._value)


LogPrompts = Literal["none", "redacted", "full"]
OnDisconnect = Literal["cancel", "drain"]
BackendType = Literal[
    "openai", "azure", "anthropic", "gemini", "mock", "ollama", "http", "huggingface"
]
Strategy = Literal["weighted", "least_busy", "latency"]
LOG_PROMPTS: tuple[LogPrompts, ...] = ("none", "redacted", "full")
ON_DISCONNECT: tuple[OnDisconnect, ...] = ("cancel", "drain")
BACKEND_TYPES: tuple[BackendType, ...] = (
    *("openai", "azure", "anthropic", "gemini", "mock"),
    *("ollama", "http", "huggingface"),
)
STRATEGIES: tuple[Strategy, ...] = ("weighted", "least_busy", "latency")


class Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    connect: float = 5.0  # seconds, all of them
    first_byte: float = 60.0  # until the response headers
    idle: float = 60.0  # longest gap between chunks
    total: float = 600.0
    client_body: float = 30.0  # for the client to send its whole request body


class ResponsesStoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    ttl: float = 3600.0  # seconds a stored response can be continued, read or deleted
    max_bytes: int = 64 * 2**20  # per worker; the oldest records make room for new ones


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    failure_threshold: int = 3
    cooldown: float = 600.0
    retries: int = 2
    timeouts: Timeouts = Timeouts()
    max_body: int = 16 * 2**20  # bytes
    log_prompts: LogPrompts = "none"
    admin_key: Secret | None = None  # None when absent or resolved empty
    admin_key_off: bool = False  # `admin_key: false`: no admin key, written on purpose
    keepalive: float = 15.0
    on_disconnect: OnDisconnect = "cancel"
    state: str = "memory"  # memory | redis://HOST:PORT/DB | rediss://... | unix:///PATH
    state_failure: StateFailure = "open"  # the state store unreachable: admit, or refuse
    state_timeout: float = 0.25  # seconds a state operation may take before that choice
    metrics_key: Secret | None = None  # when set, /metrics needs `Authorization: Bearer` it
    # Host headers the gateway answers (DNS rebinding); None: loopback names when it listens
    # on a loopback address, any host otherwise.
    allowed_hosts: tuple[str, ...] | None = None
    cors_origins: tuple[str, ...] = ()  # origins whose browsers may call the API ("*": any)
    cache: CacheSettings | None = None  # None: only models with their own `cache:` are cached
    sessions: Sessions = Sessions()
    commands: Commands = Commands()
    loop_detection: LoopDetection = LoopDetection()
    key_headers: tuple[str, ...] = ("authorization", "x-api-key")  # lowercased, in order
    default_model: str | None = None  # used when a request names no model
    max_concurrent: int | None = None  # per worker; None: no cap
    queue_timeout: float | None = None  # seconds to wait for a slot; None: refuse at once
    direct_addressing: bool = False  # BACKEND:MODEL and BACKEND/MODEL route directly
    responses_store: ResponsesStoreSettings = ResponsesStoreSettings()


class Backend(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: BackendType
    base_url: str = ""  # no trailing "/"; "" only for mock
    api_key: Secret | None = None
    api_version: str | None = None  # azure only
    headers: tuple[tuple[str, str], ...] = ()  # extra upstream headers, in file order
    max_connections: int = 256
    max_output_tokens: int | None = None  # larger max_tokens asks are clamped to this
    stream: bool = True
    responses: bool = False  # speaks the Responses API: /v1/responses passes through untouched
    disabled: str | None = None  # why it's disabled, e.g. "api_key is empty (set OPENAI_API_KEY)"
    latency: float = 0.0  # mock only: seconds before the first byte
    interval: float = 0.0  # mock only: seconds between stream chunks
    tokens: int = 16  # mock only: completion tokens produced
    chunks: int = 0  # mock only: content chunks in a stream; 0 = one per token
    options: tuple[tuple[str, OptionValue], ...] = ()  # ollama only: `options` defaults
    keep_alive: str | None = None  # ollama only: how long the model stays loaded
    discover: float = 0.0  # seconds between model listings; 0: no discovery
    prefix: str = ""  # discovered models are routed as PREFIX/NAME
    template: HttpTemplate | None = None  # http only: request and response description

    @property
    def enabled(self) -> bool:
        return self.disabled is None

    def __repr__(self) -> str:
        # Header values may be tokens; keep them out of logs that print a Backend.
        masked = tuple((name, "***") for name, _ in self.headers)
        shown = msgspec.structs.replace(self, headers=masked)
        if self.template is not None:  # `${VAR}`s in a body template may be secrets
            shown = msgspec.structs.replace(
                shown, template=msgspec.structs.replace(self.template, body="***")
            )
        return msgspec.Struct.__repr__(shown)


class Target(msgspec.Struct, frozen=True, kw_only=True):
    backend: str
    model: str | None = None  # None: the alias itself ("*" is substituted by routing)
    priority: int = 0  # lower tiers are tried first
    weight: int = 1  # within a tier
    price: Price | None = None  # USD per million tokens; LLM_PROXY_PRICES overrides it


class Model(msgspec.Struct, frozen=True, kw_only=True):
    alias: str  # may be a glob with "*"
    targets: tuple[Target, ...]  # never empty
    strategy: Strategy = "weighted"
    cache: ModelCache | None = None  # None: as settings.cache says (see proxy.config.cache)
    loop_detection: LoopDetection = LoopDetection()  # settings' own unless the model sets one


class ClientKey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    digest: bytes  # SHA-256 of the key; the key itself is never kept
    models: tuple[str, ...] | None = None  # globs; None: every model
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    limits: tuple[tuple[str, Limits], ...] = ()  # model glob -> its own limits on this key
    budget: Budget | None = None


class ConfigError(Exception):
    """The file can't be used; `problems` holds every one found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(map(str, self.problems))


class Config(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    settings: Settings
    backends: tuple[Backend, ...]  # file order
    models: tuple[Model, ...]  # file order
    keys: tuple[ClientKey, ...] | None = None  # None: no `keys:` section, no client auth
    keys_off: bool = False  # `keys: false`: no client auth, written on purpose (keys is None)
    warnings: tuple[Problem, ...] = ()  # disabled backends, unavailable models, ...
    from_env: tuple[Override, ...] = ()  # values set by LLM_PROXY__ variables, in name order

    def backend(self, name: str) -> Backend:
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(name)
