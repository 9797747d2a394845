"""routes.yaml text + environment → a frozen `Config`, or `ConfigError` with every problem.

Pure: `parse` takes the text and the environment as arguments and reads no file, os.environ
or clock. Invariant: a `Config` comes back only from a file with no problems, and then every
reference holds (each target names a defined backend, names are unique, numbers are in
range); otherwise `ConfigError` lists every problem found as PATH:LINE:COL, never echoing a
secret. Keys, tokens and upstream header values are kept out of reprs.

Auth switched off on purpose is spelled out: `keys: false` (no client auth) and
`settings.admin_key: false` (no admin key) — a plain YAML false, distinct from a missing
section, which a half-written file also has. A hot reload that would drop every client key or
the admin key is refused unless the new file says so this way (`proxy.reload_guard`).
"""

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from proxy import config_cache, config_env, config_sessions
from proxy import config_governance as gov
from proxy.config_backends import FIELDS as _NEW_BACKEND_FIELDS
from proxy.config_backends import OptionValue, hf_token
from proxy.config_backends import read as _read_new_fields
from proxy.config_cache import CacheSettings, ModelCache
from proxy.config_env import Override
from proxy.config_governance import Budget, Limits, Price, StateFailure
from proxy.config_sessions import Commands, LoopDetection, Sessions
from proxy.config_yaml import (
    BOOL,
    Fields,
    Problem,
    Reader,
    Scalar,
    boolean,
    choice,
    did_you_mean,
    duration,
    integer,
    is_absent,
    is_null,
    line,
    parse_duration,
    parse_size,
    show,
    size,
    text,
)
from proxy.template import HttpTemplate

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
_LOG_PROMPTS: tuple[LogPrompts, ...] = ("none", "redacted", "full")
_ON_DISCONNECT: tuple[OnDisconnect, ...] = ("cancel", "drain")
_BACKEND_TYPES: tuple[BackendType, ...] = (
    *("openai", "azure", "anthropic", "gemini", "mock"),
    *("ollama", "http", "huggingface"),
)
_STRATEGIES: tuple[Strategy, ...] = ("weighted", "least_busy", "latency")


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
    cache: ModelCache | None = None  # None: as settings.cache says (see proxy.config_cache)
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


def parse(text: str, env: Mapping[str, str], path: str = "routes.yaml") -> Config:
    """The config in `text`, `${VAR}`s taken from `env`; ConfigError lists EVERY problem."""
    r = Reader(path, env)
    root = r.compose(text)
    from_env: tuple[Override, ...] = ()
    if root is not None:
        root, from_env, bad_paths = config_env.apply(root, env)
        r.problems.extend(bad_paths)
    config = _config(r, root) if root is not None else None
    if config is None or r.problems:
        raise ConfigError(r.sorted(r.problems))
    return msgspec.structs.replace(config, warnings=r.sorted(r.warnings), from_env=from_env)


_TOP = ("version", "settings", "backends", "models", "keys")
_SETTINGS = (
    *("failure_threshold", "cooldown", "retries", "timeouts", "max_body"),
    *("log_prompts", "admin_key", "keepalive", "on_disconnect"),
    *("state", "state_failure", "state_timeout", "metrics_key"),
    *("allowed_hosts", "cors_origins", "responses_store", "cache"),
    *("sessions", "commands", "loop_detection"),
    *("key_headers", "default_model", "max_concurrent", "queue_timeout", "direct_addressing"),
)
_RESPONSES_STORE = ("ttl", "max_bytes")
_TIMEOUTS = ("connect", "first_byte", "idle", "total", "client_body")
_MOCK_KNOBS = ("latency", "interval", "tokens", "chunks")
_BACKEND = (
    *("type", "base_url", "api_key", "api_version", "headers", "max_connections", "stream"),
    "max_output_tokens",
    "responses",
    *_MOCK_KNOBS,
    *_NEW_BACKEND_FIELDS,
)
_MODEL = ("targets", "strategy", "loop_detection", "cache")
_TARGET = ("backend", "model", "priority", "weight", "price")
_KEY = ("name", "key", "sha256", "models", "rpm", "tpm", "max_parallel", "limits", "budget")
_DEFAULT_URLS: dict[BackendType, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "ollama": "http://127.0.0.1:11434",
    "huggingface": "https://router.huggingface.co/v1",
}
_AZURE_API_VERSION = "2024-10-21"
_BACKEND_NAME = re.compile(r"[!-~]+")  # visible ASCII: it goes out in x-proxy-backend
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def _config(r: Reader, root: yaml.Node) -> Config | None:
    if not isinstance(root, yaml.MappingNode):
        r.problem(root, "the top level must be a mapping with version, backends and models")
        return None
    top = r.fields(root, "the top level", _TOP)
    version = r.need(top, "version", integer(), root, "missing required key 'version' (version: 1)")
    if version is not None and version != 1:
        r.problem(
            top["version"][1], f"unsupported version {version}; this gateway reads version: 1"
        )
    for required in ("backends", "models"):
        if required not in top:
            r.problem(root, f"missing required key {required!r}")
    settings = _settings(r, top["settings"][1]) if "settings" in top else Settings()
    backends = _backends(r, top["backends"][1]) if "backends" in top else {}
    loops = settings.loop_detection
    models = _models(r, *top["models"], backends, loops) if "models" in top else ()
    keys_off = "keys" in top and _off(r, top["keys"][1])
    keys = _keys(r, *top["keys"]) if "keys" in top and not keys_off else None
    return Config(
        version=version or 1,
        settings=settings,
        backends=tuple(backends.values()),
        models=models,
        keys=keys,
        keys_off=keys_off,
    )


def _off(r: Reader, node: yaml.Node) -> bool:
    """A plain YAML false (`false`, `no`, `off`): the section is switched off on purpose."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL:
        return False
    s = r.scalar(node)
    return s is not None and s.tag == BOOL and not boolean(s)


def _settings(r: Reader, node: yaml.Node) -> Settings:
    f = r.fields(node, "settings", _SETTINGS)
    d = Settings()
    admin_key_off = "admin_key" in f and _off(r, f["admin_key"][1])
    admin_key = "" if admin_key_off else r.get(f, "admin_key", line, "")
    metrics_key = r.get(f, "metrics_key", line, "")
    return Settings(
        failure_threshold=r.get(f, "failure_threshold", integer(1), d.failure_threshold),
        cooldown=r.get(f, "cooldown", duration(positive=False), d.cooldown),
        retries=r.get(f, "retries", integer(0, 10), d.retries),
        timeouts=_timeouts(r, f["timeouts"][1]) if "timeouts" in f else d.timeouts,
        max_body=r.get(f, "max_body", size(1), d.max_body),
        log_prompts=r.get(f, "log_prompts", choice(_LOG_PROMPTS), d.log_prompts),
        admin_key=Secret(admin_key) if admin_key else None,
        admin_key_off=admin_key_off,
        keepalive=r.get(f, "keepalive", duration(positive=True), d.keepalive),
        on_disconnect=r.get(f, "on_disconnect", choice(_ON_DISCONNECT), d.on_disconnect),
        state=r.get(f, "state", gov.state_url, d.state),
        state_failure=r.get(f, "state_failure", choice(gov.STATE_FAILURES), d.state_failure),
        state_timeout=r.get(f, "state_timeout", duration(positive=True), d.state_timeout),
        metrics_key=Secret(metrics_key) if metrics_key else None,
        allowed_hosts=(
            _texts(r, "settings.allowed_hosts", f["allowed_hosts"][1])
            if "allowed_hosts" in f
            else None
        ),
        cors_origins=(
            _texts(r, "settings.cors_origins", f["cors_origins"][1]) if "cors_origins" in f else ()
        ),
        cache=config_cache.settings(r, f["cache"][1]) if "cache" in f else None,
        sessions=config_sessions.sessions(r, f["sessions"][1]) if "sessions" in f else d.sessions,
        commands=config_sessions.commands(r, f["commands"][1]) if "commands" in f else d.commands,
        loop_detection=(
            config_sessions.loop_detection(
                r, f["loop_detection"][1], "settings.loop_detection", d.loop_detection, on=False
            )
            if "loop_detection" in f
            else d.loop_detection
        ),
        key_headers=_key_headers(r, f["key_headers"][1]) if "key_headers" in f else d.key_headers,
        default_model=r.get(f, "default_model", text, None),
        max_concurrent=r.get(f, "max_concurrent", integer(1), None),
        queue_timeout=r.get(f, "queue_timeout", duration(positive=False), None),
        direct_addressing=r.get(f, "direct_addressing", boolean, d.direct_addressing),
        responses_store=(
            _responses_store(r, f["responses_store"][1])
            if "responses_store" in f
            else d.responses_store
        ),
    )


def _responses_store(r: Reader, node: yaml.Node) -> ResponsesStoreSettings:
    f = r.fields(node, "settings.responses_store", _RESPONSES_STORE)
    d = ResponsesStoreSettings()
    return ResponsesStoreSettings(
        ttl=r.get(f, "ttl", duration(positive=True), d.ttl),
        max_bytes=r.get(f, "max_bytes", size(1), d.max_bytes),
    )


def _key_headers(r: Reader, node: yaml.Node) -> tuple[str, ...]:
    """Header names that carry a client key, lowercased; a list, or one comma-separated value."""
    if isinstance(node, yaml.ScalarNode) and not is_null(node):
        names = [n.strip() for n in r.one(node, text, "").split(",")]
    else:
        names = [r.one(item, text, "").strip() for item in r.items(node, "settings.key_headers")]
    names = [n for n in names if n]
    if not names:
        r.problem(node, "settings.key_headers is empty; list headers, e.g. [authorization]")
    bad = [n for n in names if not _HEADER_NAME.fullmatch(n)]
    for name in bad:
        r.problem(node, f"{show(name)} in settings.key_headers is not a valid HTTP header name")
    headers = tuple(dict.fromkeys(n.lower() for n in names))
    return headers or Settings().key_headers


def _timeouts(r: Reader, node: yaml.Node) -> Timeouts:
    f = r.fields(node, "settings.timeouts", _TIMEOUTS)
    d, positive = Timeouts(), duration(positive=True)
    return Timeouts(
        connect=r.get(f, "connect", positive, d.connect),
        first_byte=r.get(f, "first_byte", positive, d.first_byte),
        idle=r.get(f, "idle", positive, d.idle),
        total=r.get(f, "total", positive, d.total),
        client_body=r.get(f, "client_body", positive, d.client_body),
    )


def _backends(r: Reader, node: yaml.Node) -> dict[str, Backend]:
    """Every named backend, in file order; one with problems is still named (for targets)."""
    return {
        name: _backend(r, name, key, value)
        for name, (key, value) in r.entries(node, "backends").items()
    }


def _backend(r: Reader, name: str, key: yaml.Node, node: yaml.Node) -> Backend:
    if not _BACKEND_NAME.fullmatch(name):
        r.problem(key, f"backend name {show(name)} must be visible ASCII without spaces")
    f = r.fields(node, f"backend {name!r}", _BACKEND)
    missing = f"backend {name!r} needs a type: {', '.join(_BACKEND_TYPES)}"
    kind = r.need(f, "type", choice(_BACKEND_TYPES), key, missing)
    for knob in _MOCK_KNOBS:
        if knob in f and kind not in (None, "mock"):
            r.problem(f[knob][0], f"{knob} applies only to type: mock backends")
    if "api_version" in f and kind not in (None, "azure"):
        r.problem(f["api_version"][0], "api_version applies only to type: azure backends")
    if "responses" in f and kind not in (None, "openai"):
        r.problem(f["responses"][0], "responses applies only to type: openai backends")
    base_url = r.get(f, "base_url", _url, "")
    if kind == "ollama" and base_url.endswith("/v1"):  # the OpenAI-compatible root, pasted
        r.warn(f["base_url"][1], "an ollama backend's base_url is the server root: '/v1' dropped")
        base_url = base_url.removesuffix("/v1")
    if not base_url and kind == "azure":
        r.problem(key, f"azure backend {name!r} needs base_url: https://RESOURCE.openai.azure.com")
    if not base_url and kind == "http":
        r.problem(key, f"http backend {name!r} needs base_url: http://HOST:PORT")
    api_key, disabled = _api_key(r, name, f)
    if kind == "huggingface" and "api_key" not in f:
        token, disabled = hf_token(r, name, key, given_url=base_url)
        api_key = Secret(token) if token else None
    extra = _read_new_fields(r, name, kind, key, f)
    d = Backend(name=name, type="mock")
    stream = r.get(f, "stream", boolean, d.stream)
    if extra.template is not None and extra.template.stream_format is None:
        if "stream" in f and stream:
            r.problem(f["stream"][1], "stream: true needs response.stream: {format: ndjson|sse}")
        stream = False  # the gateway synthesizes the stream from the whole answer
    return Backend(
        name=name,
        type=kind or "mock",  # "mock" only stands in while a problem is being reported
        base_url=base_url or _DEFAULT_URLS.get(kind or "mock", ""),
        api_key=api_key,
        api_version=r.get(f, "api_version", text, _AZURE_API_VERSION if kind == "azure" else None),
        headers=_headers(r, name, f["headers"][1]) if "headers" in f else (),
        max_connections=r.get(f, "max_connections", integer(1), d.max_connections),
        max_output_tokens=r.get(f, "max_output_tokens", integer(1), None),
        stream=stream,
        responses=r.get(f, "responses", boolean, _speaks_responses(kind, base_url)),
        disabled=disabled,
        latency=r.get(f, "latency", duration(positive=False), d.latency),
        interval=r.get(f, "interval", duration(positive=False), d.interval),
        tokens=r.get(f, "tokens", integer(1), d.tokens),
        chunks=r.get(f, "chunks", integer(0), d.chunks),
        **extra._asdict(),
    )


def _speaks_responses(kind: BackendType | None, base_url: str) -> bool:
    """The default of `responses`: only OpenAI itself is known to serve /v1/responses."""
    if kind != "openai":
        return False
    return urlsplit(base_url or _DEFAULT_URLS["openai"]).hostname == "api.openai.com"


def _url(s: Scalar) -> str:
    url = line(s).rstrip("/")
    if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url, re.IGNORECASE):
        # Not echoed: a URL can carry a password or a key in its query.
        raise ValueError("expected an http:// or https:// URL without a query")
    return url


def _api_key(r: Reader, name: str, f: Fields) -> tuple[Secret | None, str | None]:
    """The key and, when it is given but empty, why the backend is disabled (a warning)."""
    if "api_key" not in f:
        return None, None  # e.g. a local server that takes no key
    node = f["api_key"][1]
    s = r.scalar(node)
    key = "" if s is None or is_absent(s) else r.convert(node, s, line)
    if key:
        return Secret(key), None
    if s is None or key is None:
        return None, None  # a problem was reported
    why = f"api_key is empty (set {s.refs[0]})" if len(s.refs) == 1 else "api_key is empty"
    r.warn(node, f"backend {name!r} is disabled: {why}")
    return None, why


def _headers(r: Reader, backend: str, node: yaml.Node) -> tuple[tuple[str, str], ...]:
    headers: dict[str, tuple[str, str]] = {}  # lowercased name → (name, value)
    for name, (key, value) in r.entries(node, f"headers of backend {backend!r}").items():
        if not _HEADER_NAME.fullmatch(name):
            r.problem(key, f"{show(name)} is not a valid HTTP header name")
        elif name.lower() in headers:
            first = headers[name.lower()][0]
            r.problem(key, f"header {name!r} repeats {first!r} (header names ignore case)")
        # An empty value (`${OPENAI_ORG:-}` unset) drops the header rather than send it empty.
        headers[name.lower()] = (name, r.one(value, line, ""))
    return tuple((name, value) for name, value in headers.values() if value)


def _models(
    r: Reader,
    key: yaml.Node,
    node: yaml.Node,
    backends: dict[str, Backend],
    loops: LoopDetection,
) -> tuple[Model, ...]:
    models = []
    for alias, (alias_key, value) in r.entries(node, "models").items():
        if not alias:
            r.problem(alias_key, "a model alias can't be empty")
        f = r.fields(value, f"model {alias!r}", _MODEL)
        strategy: Strategy = r.get(f, "strategy", choice(_STRATEGIES), "weighted")
        targets = _targets(r, alias, alias_key, f, backends)
        on = [backends[t.backend] for t in targets if t.backend in backends]
        if on and len(on) == len(targets) and not any(b.enabled for b in on):
            names = ", ".join(dict.fromkeys(b.name for b in on))
            r.warn(
                alias_key, f"model {alias!r} is unavailable: its backends are disabled ({names})"
            )
        if "loop_detection" in f:
            what = f"loop_detection of model {alias!r}"
            loops_here = config_sessions.loop_detection(
                r, f["loop_detection"][1], what, loops, on=True
            )
        else:
            loops_here = loops
        cache = config_cache.model(r, f["cache"][1], alias) if "cache" in f else None
        models.append(
            Model(
                alias=alias,
                targets=targets,
                strategy=strategy,
                loop_detection=loops_here,
                cache=cache,
            )
        )
    if not models and not r.problems:
        r.warn(key, "no models are defined; every request will get 404 model_not_found")
    return tuple(models)


def _targets(
    r: Reader, alias: str, key: yaml.Node, f: Fields, backends: dict[str, Backend]
) -> tuple[Target, ...]:
    if "targets" not in f:
        r.problem(key, f"model {alias!r} needs targets: a list like [{{backend: NAME}}]")
        return ()
    node = f["targets"][1]
    items = r.items(node, f"targets of model {alias!r}")
    if not items and (is_null(node) or isinstance(node, yaml.SequenceNode)):
        r.problem(node, f"model {alias!r} has no targets; add at least one {{backend: NAME}}")
    return tuple(_target(r, alias, item, backends) for item in items)


def _target(r: Reader, alias: str, node: yaml.Node, backends: dict[str, Backend]) -> Target:
    if isinstance(node, yaml.ScalarNode) and not is_null(node):
        r.problem(node, f"expected a target like {{backend: NAME}}, got {show(node.value)}")
        return Target(backend="")
    f = r.fields(node, f"a target of model {alias!r}", _TARGET)
    missing = f"a target of model {alias!r} needs backend: NAME"
    backend = r.need(f, "backend", text, node, missing)
    if backend is not None and backend not in backends:
        hint = did_you_mean(backend, backends)
        defined = ", ".join(backends) or "none"
        r.problem(f["backend"][1], f"unknown backend {backend!r}{hint} (defined: {defined})")
    return Target(
        backend=backend or "",
        model=r.get(f, "model", text, None),
        priority=r.get(f, "priority", integer(), 0),
        weight=r.get(f, "weight", integer(1), 1),
        price=gov.price(r, f["price"][1], f"a target of model {alias!r}") if "price" in f else None,
    )


def _keys(r: Reader, key: yaml.Node, node: yaml.Node) -> tuple[ClientKey, ...]:
    keys: list[ClientKey] = []
    names: dict[str, yaml.Node] = {}
    digests: dict[bytes, str] = {}
    for item in r.items(node, "keys"):
        f = r.fields(item, "a keys entry", _KEY)
        name = r.need(f, "name", text, item, "a keys entry needs name: (whose key it is)")
        if name is not None and name in names:
            first = names[name].start_mark.line + 1
            r.problem(f["name"][1], f"duplicate key name {name!r} (first on line {first})")
        label = name or "this entry"
        names.setdefault(label, f["name"][1] if "name" in f else item)
        digest = _digest(r, label, item, f)
        if digest in digests:
            r.problem(item, f"key for {label} is the same as the key for {digests[digest]}")
        if digest:
            digests.setdefault(digest, label)
        keys.append(
            ClientKey(
                name=label,
                digest=digest,
                models=_globs(r, label, f["models"][1]) if "models" in f else None,
                rpm=r.get(f, "rpm", integer(1), None),
                tpm=r.get(f, "tpm", integer(1), None),
                max_parallel=r.get(f, "max_parallel", integer(1), None),
                limits=gov.model_limits(r, f["limits"][1], label) if "limits" in f else (),
                budget=gov.budget(r, f["budget"][1], label) if "budget" in f else None,
            )
        )
    if not keys and not r.problems:
        r.warn(key, "keys: lists no keys, so every request is refused (remove it for no auth)")
    return tuple(keys)


def _digest(r: Reader, label: str, item: yaml.Node, f: Fields) -> bytes:
    """SHA-256 of `key:`, or `sha256:` as given; b"" after a problem. Never echoes either."""
    if ("key" in f) == ("sha256" in f):
        where = f["sha256"][0] if "sha256" in f else item
        r.problem(where, f"give exactly one of key: or sha256: for {label}")
        return b""
    if "sha256" in f:
        empty = f"sha256 for {label} is empty"
        return r.need(f, "sha256", _hex_digest, f["sha256"][1], empty) or b""
    key = r.need(f, "key", line, f["key"][1], f"key for {label} is empty")
    return hashlib.sha256(key.encode()).digest() if key else b""


def _hex_digest(s: Scalar) -> bytes:
    if not _HEX_DIGEST.fullmatch(s.text):
        raise ValueError("expected 64 hex digits: the SHA-256 of the key")
    return bytes.fromhex(s.text)


def _texts(r: Reader, what: str, node: yaml.Node) -> tuple[str, ...]:
    """A list of plain strings (lower-cased: host names and origins compare that way)."""
    values = (r.one(item, text, "") for item in r.items(node, what))
    return tuple(v.lower() for v in values if v)


def _globs(r: Reader, label: str, node: yaml.Node) -> tuple[str, ...]:
    if is_null(node):
        r.problem(node, f"models for {label} is empty; list globs or remove models: to allow all")
    globs = (r.one(item, text, "") for item in r.items(node, f"models of {label}"))
    return tuple(glob for glob in globs if glob)
