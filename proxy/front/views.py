"""What `/admin/config` shows of a config: everything an operator needs to see what is
loaded, and never a secret (keys, tokens and secret-looking header values read `***`, a URL's
password is masked). Pure: a `Config` in, plain data out."""

from typing import Any

import msgspec

from proxy import redact
from proxy.config import Backend, Config


def _redact_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Values of secret-sounding headers, and values that look like secrets, read `***`."""
    return {k: "***" if redact.looks_secret(k, v) else v for k, v in headers}


def _backend_view(b: Backend) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": b.type,
        "base_url": b.base_url,
        "api_key": None if b.api_key is None else "***",
        "headers": _redact_headers(b.headers),
        "max_connections": b.max_connections,
        "stream": b.stream,
        "enabled": b.enabled,
    }
    if b.disabled:
        view["disabled"] = b.disabled
    if b.api_version:
        view["api_version"] = b.api_version
    if b.discover:
        view["discover"] = {"interval": b.discover, "prefix": b.prefix}
    if b.template is not None:  # not the body: `${VAR}`s in it may be secrets
        view["request"] = {"method": b.template.method, "path": b.template.path}
    return view


def config_view(config: Config) -> dict[str, Any]:
    s = config.settings
    return {
        "version": config.version,
        "settings": {
            "failure_threshold": s.failure_threshold,
            "cooldown": s.cooldown,
            "retries": s.retries,
            "timeouts": {
                "connect": s.timeouts.connect,
                "first_byte": s.timeouts.first_byte,
                "idle": s.timeouts.idle,
                "total": s.timeouts.total,
            },
            "max_body": s.max_body,
            "log_prompts": s.log_prompts,
            "admin_key": None if s.admin_key is None else "***",
            "keepalive": s.keepalive,
            "on_disconnect": s.on_disconnect,
            "state": redact.mask_userinfo(s.state),  # a Redis URL may hold a password
            "state_failure": s.state_failure,
            "state_timeout": s.state_timeout,
            "metrics_key": None if s.metrics_key is None else "***",
            "key_headers": list(s.key_headers),
            "default_model": s.default_model,
            "max_concurrent": s.max_concurrent,
            "queue_timeout": s.queue_timeout,
            "direct_addressing": s.direct_addressing,
        },
        # which values came from LLM_PROXY__ variables (never the values: some are keys)
        "from_env": {o.path: o.variable for o in config.from_env},
        "backends": {b.name: _backend_view(b) for b in config.backends},
        "models": {
            m.alias: {
                "strategy": m.strategy,
                "targets": [
                    {
                        "backend": t.backend,
                        "model": t.model,
                        "priority": t.priority,
                        "weight": t.weight,
                        "price": None if t.price is None else msgspec.to_builtins(t.price),
                    }
                    for t in m.targets
                ],
            }
            for m in config.models
        },
        "keys": None
        if config.keys is None
        else [
            {
                "name": k.name,
                "key": "***",
                "models": k.models,
                "rpm": k.rpm,
                "tpm": k.tpm,
                "max_parallel": k.max_parallel,
                "limits": {glob: msgspec.to_builtins(lim) for glob, lim in k.limits},
                "budget": None if k.budget is None else msgspec.to_builtins(k.budget),
            }
            for k in config.keys
        ],
        "warnings": [str(w) for w in config.warnings],
    }


def auth_view(config: Config) -> dict[str, Any]:
    """Whether client auth and the admin key are on, and if off, whether on purpose."""
    return {
        "client_keys": None if config.keys is None else len(config.keys),
        "client_auth": "on" if config.keys is not None else "off" if config.keys_off else "absent",
        "admin_key": "on"
        if config.settings.admin_key is not None
        else "off"
        if config.settings.admin_key_off
        else "absent",
    }
