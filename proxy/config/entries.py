"""Reading `backends:`, `models:` and `keys:` entries, each with its PATH:LINE:COL problems."""

import hashlib
import re
from urllib.parse import urlsplit

import yaml

from proxy.config import cache as config_cache
from proxy.config import governance as gov
from proxy.config import sessions as config_sessions
from proxy.config.backends import FIELDS as _NEW_BACKEND_FIELDS
from proxy.config.backends import hf_token
from proxy.config.backends import read as _read_new_fields
from proxy.config.schema import (
    BACKEND_TYPES,
    STRATEGIES,
    Backend,
    BackendType,
    ClientKey,
    Model,
    Secret,
    Strategy,
    Target,
)
from proxy.config.sessions import LoopDetection
from proxy.config.yaml import (
    Fields,
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
    show,
    text,
)

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
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def backends_of(r: Reader, node: yaml.Node) -> dict[str, Backend]:
    """Every named backend, in file order; one with problems is still named (for targets)."""
    return {
        name: _backend(r, name, key, value)
        for name, (key, value) in r.entries(node, "backends").items()
    }


def _backend(r: Reader, name: str, key: yaml.Node, node: yaml.Node) -> Backend:
    if not _BACKEND_NAME.fullmatch(name):
        r.problem(key, f"backend name {show(name)} must be visible ASCII without spaces")
    f = r.fields(node, f"backend {name!r}", _BACKEND)
    missing = f"backend {name!r} needs a type: {', '.join(BACKEND_TYPES)}"
    kind = r.need(f, "type", choice(BACKEND_TYPES), key, missing)
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
        if not HEADER_NAME.fullmatch(name):
            r.problem(key, f"{show(name)} is not a valid HTTP header name")
        elif name.lower() in headers:
            first = headers[name.lower()][0]
            r.problem(key, f"header {name!r} repeats {first!r} (header names ignore case)")
        # An empty value (`${OPENAI_ORG:-}` unset) drops the header rather than send it empty.
        headers[name.lower()] = (name, r.one(value, line, ""))
    return tuple((name, value) for name, value in headers.values() if value)


def models_of(
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
        strategy: Strategy = r.get(f, "strategy", choice(STRATEGIES), "weighted")
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


def keys_of(r: Reader, key: yaml.Node, node: yaml.Node) -> tuple[ClientKey, ...]:
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
                models=globs(r, label, f["models"][1]) if "models" in f else None,
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


def texts(r: Reader, what: str, node: yaml.Node) -> tuple[str, ...]:
    """A list of plain strings (lower-cased: host names and origins compare that way)."""
    values = (r.one(item, text, "") for item in r.items(node, what))
    return tuple(v.lower() for v in values if v)


def globs(r: Reader, label: str, node: yaml.Node) -> tuple[str, ...]:
    if is_null(node):
        r.problem(node, f"models for {label} is empty; list globs or remove models: to allow all")
    globs = (r.one(item, text, "") for item in r.items(node, f"models of {label}"))
    return tuple(glob for glob in globs if glob)
