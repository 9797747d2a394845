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

from collections.abc import Mapping

import msgspec
import yaml

from proxy.config import cache as config_cache
from proxy.config import env as config_env
from proxy.config import governance as gov
from proxy.config import sessions as config_sessions
from proxy.config.entries import HEADER_NAME, backends_of, keys_of, models_of, texts
from proxy.config.env import Override
from proxy.config.schema import (
    LOG_PROMPTS,
    ON_DISCONNECT,
    Config,
    ConfigError,
    ResponsesStoreSettings,
    Secret,
    Settings,
    Timeouts,
)
from proxy.config.yaml import (
    BOOL,
    Reader,
    boolean,
    choice,
    duration,
    integer,
    is_null,
    line,
    show,
    size,
    text,
)


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
    backends = backends_of(r, top["backends"][1]) if "backends" in top else {}
    loops = settings.loop_detection
    models = models_of(r, *top["models"], backends, loops) if "models" in top else ()
    keys_off = "keys" in top and _off(r, top["keys"][1])
    keys = keys_of(r, *top["keys"]) if "keys" in top and not keys_off else None
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
        log_prompts=r.get(f, "log_prompts", choice(LOG_PROMPTS), d.log_prompts),
        admin_key=Secret(admin_key) if admin_key else None,
        admin_key_off=admin_key_off,
        keepalive=r.get(f, "keepalive", duration(positive=True), d.keepalive),
        on_disconnect=r.get(f, "on_disconnect", choice(ON_DISCONNECT), d.on_disconnect),
        state=r.get(f, "state", gov.state_url, d.state),
        state_failure=r.get(f, "state_failure", choice(gov.STATE_FAILURES), d.state_failure),
        state_timeout=r.get(f, "state_timeout", duration(positive=True), d.state_timeout),
        metrics_key=Secret(metrics_key) if metrics_key else None,
        allowed_hosts=(
            texts(r, "settings.allowed_hosts", f["allowed_hosts"][1])
            if "allowed_hosts" in f
            else None
        ),
        cors_origins=(
            texts(r, "settings.cors_origins", f["cors_origins"][1]) if "cors_origins" in f else ()
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
    bad = [n for n in names if not HEADER_NAME.fullmatch(n)]
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
