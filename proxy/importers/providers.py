"""The simple `providers:` list format → routes.yaml text.

The format smaller gateways use: a list (or mapping) of providers, each with a `name`, a
`base_url`, the environment variable holding its key (`api_key_env`), a `priority` (lower is
tried first) and optionally its `models` and a `type`:

    providers:
      - {name: openai, base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY,
         priority: 1, models: [gpt-4o, gpt-4o-mini]}
      - {name: local, base_url: http://127.0.0.1:11434/v1, priority: 2}
    default_model: gpt-4o-mini

Each provider becomes a backend; each listed model an alias whose targets are the providers
that list it, by priority; providers that list no models serve a catch-all `*` in priority
order. `direct_addressing` is turned on so `provider:model` (the format's way to pick a
provider) keeps working. Pure: text in, text out; anything not mapped is noted with why.
"""

import re
from typing import Any

from proxy.importers import source
from proxy.importers.draft import Draft, Value, env, render

_TYPES = ("openai", "azure", "anthropic", "gemini", "mock")
_URL = ("base_url", "url", "api_base", "base", "endpoint")
_KEY_ENV = ("api_key_env", "key_env", "api_key_var", "env", "key_var")
_KNOWN = ("name", "type", "provider", "priority", "models", "api_key", "api_version", "enabled")


def convert(text: str, name: str = "providers.yaml") -> str:
    data = source.load(text)
    draft = Draft(source=f"{name} (providers list)")
    raw = data.get("providers")
    entries = (
        [{"name": k, **source.mapping(v)} for k, v in raw.items()]
        if isinstance(raw, dict)
        else [source.mapping(e) for e in source.items(raw)]
    )
    served: dict[str, list[dict[str, Value]]] = {}
    catch_all: list[dict[str, Value]] = []
    for i, entry in enumerate(entries):
        _provider(draft, i, entry, served, catch_all)
    for alias, targets in served.items():
        draft.models[alias] = sorted(targets, key=lambda t: _int(t.get("priority")))
    if catch_all:
        draft.models["*"] = sorted(catch_all, key=lambda t: _int(t.get("priority")))
    draft.settings["direct_addressing"] = True
    default = source.text(data.get("default_model"))
    if default is not None:
        draft.settings["default_model"] = default
    for key in data:
        if key not in ("providers", "default_model"):
            draft.note(key, "no equivalent in llm-proxy")
    return render(draft)


def _int(value: Value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _provider(
    draft: Draft,
    i: int,
    entry: dict[str, Any],
    served: dict[str, list[dict[str, Value]]],
    catch_all: list[dict[str, Value]],
) -> None:
    label = source.text(entry.get("name"))
    where = f"providers[{i}]" + (f" ({label})" if label else "")
    if label is None or not re.fullmatch(r"[!-~]+", label):  # it goes out in x-proxy-backend
        draft.note(where, "skipped: needs a name of visible ASCII without spaces")
        return
    if entry.get("enabled") is False:
        draft.note(where, "skipped: enabled: false")
        return
    url = next((source.text(entry[k]) for k in _URL if k in entry), None)
    kind = source.text(entry.get("type", entry.get("provider"))) or _guess(label, url or "")
    if kind not in _TYPES:
        draft.note(where, f"skipped: type {kind!r} is not one of {', '.join(_TYPES)}")
        return
    fields: dict[str, Value] = {"type": kind}
    if url is not None:
        if not url.lower().startswith(("http://", "https://")) or any(c in url for c in "?# "):
            draft.note(where, "skipped: base_url is not an http(s) URL without a query")
            return
        fields["base_url"] = url.rstrip("/")
    elif kind in ("azure",):
        draft.note(where, "skipped: an azure provider needs base_url")
        return
    key_env = next((source.text(entry[k]) for k in _KEY_ENV if k in entry), None)
    key = source.secret_or_ref(entry.get("api_key"))
    if key_env is not None and key_env.isidentifier():
        fields["api_key"] = env(key_env, "")  # unset: the backend is disabled, with a warning
    elif key is not None:
        fields["api_key"] = key
    version = source.text(entry.get("api_version"))
    if version is not None and kind == "azure":
        fields["api_version"] = version
    backend = draft.backend(label, fields)
    priority = source.number(entry.get("priority"))
    tier = int(priority) if priority is not None and abs(priority) < 2**31 else 0
    models = [m for m in map(source.text, source.items(entry.get("models"))) if m]
    for model in models:
        target: dict[str, Value] = {"backend": backend, "model": model}
        served.setdefault(model, []).append({**target, "priority": tier} if tier else target)
    if not models:
        target = {"backend": backend, "model": "*"}
        catch_all.append({**target, "priority": tier} if tier else target)
    for key in entry:
        if key not in (*_KNOWN, *_URL, *_KEY_ENV):
            draft.note(f"{where} {key}", "no equivalent in llm-proxy")


def _guess(name: str, url: str) -> str:
    both = f"{name} {url}".lower()
    for word, kind in (("anthropic", "anthropic"), ("azure", "azure"), ("gemini", "gemini")):
        if word in both:
            return kind
    return "gemini" if "googleapis" in both else "openai"
