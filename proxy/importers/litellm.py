"""LiteLLM proxy `config.yaml` → routes.yaml text.

Maps `model_list` (each deployment's `litellm_params.model` with its provider prefix,
`api_base`, `api_key` with `os.environ/VAR` → `${VAR}`, `api_version`, `weight`/`rpm`/`tpm`
as shuffle weights, `order` → priority; several deployments of one `model_name` → weighted
targets of one alias), `router_settings` (`num_retries`, `timeout`, `cooldown_time`,
`allowed_fails`, `routing_strategy`, `model_group_alias`), `fallbacks` (→ lower-priority
targets) and `general_settings.master_key` (→ `admin_key` and a client key).

Pure: text in, text out. Invariant: every key of the source is either mapped or named in a
`# Not mapped` note with the reason; a deployment that can't be mapped is left out (and
noted) rather than written in a form `llm-proxy check` would refuse. Values are never
copied into notes (they may be keys).
"""

import math
from typing import Any, NamedTuple

from proxy.importers import source
from proxy.importers.draft import Draft, Env, Flow, Value, env, render


class Provider(NamedTuple):
    type: str  # llm-proxy backend type
    base_url: str | None  # None: the type's default (or api_base is required)
    key_env: str | None  # the variable LiteLLM reads the key from when none is given
    suffix: str = ""  # appended to api_base (Ollama's OpenAI-compatible API is under /v1)


_PROVIDERS: dict[str, Provider] = {
    "openai": Provider("openai", None, "OPENAI_API_KEY"),
    "text-completion-openai": Provider("openai", None, "OPENAI_API_KEY"),
    "azure": Provider("azure", None, "AZURE_API_KEY"),
    "anthropic": Provider("anthropic", None, "ANTHROPIC_API_KEY"),
    "gemini": Provider("gemini", None, "GEMINI_API_KEY"),
    "ollama": Provider("openai", "http://127.0.0.1:11434", None, "/v1"),
    "ollama_chat": Provider("openai", "http://127.0.0.1:11434", None, "/v1"),
    "hosted_vllm": Provider("openai", None, None),
    "lm_studio": Provider("openai", "http://127.0.0.1:1234/v1", None),
    "groq": Provider("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": Provider("openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": Provider("openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "openrouter": Provider("openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "together_ai": Provider("openai", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "fireworks_ai": Provider(
        "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"
    ),
    "xai": Provider("openai", "https://api.x.ai/v1", "XAI_API_KEY"),
    "deepinfra": Provider("openai", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "cerebras": Provider("openai", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "perplexity": Provider("openai", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
}
_NAMES = {
    "text-completion-openai": "openai",
    "ollama_chat": "ollama",
    "hosted_vllm": "vllm",
    "lm_studio": "lmstudio",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}
_BARE_OPENAI = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "dall-e", "whisper")
_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_busy",
    "latency-based-routing": "latency",
}
_COSTS = {  # LiteLLM's USD per token → llm-proxy's price, USD per million tokens
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cached_input",
}
_PARAMS = (
    *("model", "api_base", "api_key", "api_version", "weight", "order", "rpm", "tpm"),
    *_COSTS,
)
_ROUTER = (
    *("num_retries", "timeout", "cooldown_time", "allowed_fails", "routing_strategy"),
    *("fallbacks", "model_group_alias"),
)
_LITELLM = ("num_retries", "request_timeout", "fallbacks", "default_fallbacks")
_WHY = {
    "drop_params": "llm-proxy forwards request fields as the client sent them",
    "success_callback": "llm-proxy exports OpenTelemetry spans and /metrics instead",
    "failure_callback": "llm-proxy exports OpenTelemetry spans and /metrics instead",
    "callbacks": "llm-proxy exports OpenTelemetry spans and /metrics instead",
    "cache": "set settings.cache in routes.yaml",
    "database_url": "llm-proxy keeps no database; keys live in routes.yaml",
    "context_window_fallbacks": "llm-proxy fails over on errors, not on prompt length",
    "content_policy_fallbacks": "llm-proxy fails over on errors, not on content policy",
    "temperature": "llm-proxy forwards request parameters as the client sent them",
    "max_tokens": "llm-proxy forwards request parameters as the client sent them",
    "model_info": "only its token prices (input/output_cost_per_token) are used",
}


class _Target(NamedTuple):
    backend: str
    model: str
    priority: int
    weight: float | None
    price: Flow | None = None


def convert(text: str, name: str = "config.yaml") -> str:
    data = source.load(text)
    draft = Draft(source=f"{name} (LiteLLM proxy config)")
    router = source.mapping(data.get("router_settings"))
    lite = source.mapping(data.get("litellm_settings"))
    general = source.mapping(data.get("general_settings"))
    targets: dict[str, list[_Target]] = {}
    for i, item in enumerate(source.items(data.get("model_list"))):
        _deployment(draft, targets, i, source.mapping(item))
    for alias, found in targets.items():
        draft.models[alias] = _weighted(draft, alias, found)
    _groups(draft, source.mapping(router.get("model_group_alias")))
    _strategy(draft, router.get("routing_strategy"))
    fallbacks = source.items(router.get("fallbacks")) + source.items(lite.get("fallbacks"))
    _fallbacks(draft, fallbacks, source.items(lite.get("default_fallbacks")))
    _settings(draft, {**lite, **router})
    _master_key(draft, general.get("master_key"))
    for section, known, values in (
        ("router_settings", _ROUTER, router),
        ("litellm_settings", _LITELLM, lite),
        ("general_settings", ("master_key",), general),
    ):
        for key in values:
            if key not in known:
                draft.note(f"{section}.{key}", _WHY.get(key, "no equivalent in llm-proxy"))
    for key in data:
        if key == "environment_variables":
            names = ", ".join(source.mapping(data[key])) or "none"
            draft.note(key, f"set these in the gateway's environment instead: {names}")
        elif key not in ("model_list", "router_settings", "litellm_settings", "general_settings"):
            draft.note(key, "no equivalent in llm-proxy")
    return render(draft)


def _deployment(draft: Draft, out: dict[str, list[_Target]], i: int, item: dict[str, Any]) -> None:
    alias = source.text(item.get("model_name"))
    params = source.mapping(item.get("litellm_params"))
    model = source.text(params.get("model"))
    where = f"model_list[{i}]" + (f" ({alias})" if alias else "")
    if alias is None or model is None:
        draft.note(where, "skipped: needs model_name and litellm_params.model")
        return
    prefix, slash, rest = model.partition("/")
    if not slash or prefix not in _PROVIDERS:
        if slash and prefix.replace("-", "_").isidentifier():
            draft.note(where, f"skipped: llm-proxy has no backend for LiteLLM provider {prefix!r}")
            return
        bare = "anthropic" if model.startswith("claude") else None
        bare = "openai" if model.startswith(_BARE_OPENAI) else bare
        if bare is None:
            draft.note(where, "skipped: write the model with its provider, like openai/NAME")
            return
        prefix, rest = bare, model
    backend = _backend(draft, where, prefix, params)
    if backend is None:
        return
    order = source.number(params.get("order"))
    weight = next(
        (w for k in ("weight", "rpm", "tpm") if (w := source.number(params.get(k, item.get(k))))),
        None,
    )
    if any(k in params or k in item for k in ("rpm", "tpm")):
        draft.note(
            f"{where} rpm/tpm",
            "used as the shuffle weight, as LiteLLM does; llm-proxy limits rate per key",
        )
    for key in params:
        if key not in _PARAMS:
            draft.note(f"{where} litellm_params.{key}", _WHY.get(key, "no equivalent in llm-proxy"))
    info = source.mapping(item.get("model_info"))
    for key in item:
        if key == "model_info" and set(info) <= set(_COSTS):
            continue
        if key not in ("model_name", "litellm_params", "rpm", "tpm"):
            draft.note(f"{where} {key}", _WHY.get(key, "no equivalent in llm-proxy"))
    priority = int(order) if order is not None and 0 <= order < 2**31 else -1  # -1: no order
    price = _price({**info, **params})
    out.setdefault(alias, []).append(_Target(backend, rest, priority, weight, price))


def _price(values: dict[str, Any]) -> Flow | None:
    """`{input: ..., output: ...}` in USD per million tokens, from LiteLLM's per-token costs."""
    parts = []
    for key, name in _COSTS.items():
        cost = source.number(values.get(key))
        if cost is not None and 0 <= cost < 1:  # per token: a dollar a token is a typo
            per_million = f"{cost * 1e6:.6f}".rstrip("0").rstrip(".")  # never 1e-06: YAML text
            parts.append(f"{name}: {per_million}")
    return Flow("{" + ", ".join(parts) + "}") if parts else None


def _backend(draft: Draft, where: str, prefix: str, params: dict[str, Any]) -> str | None:
    provider = _PROVIDERS[prefix]
    fields: dict[str, Value] = {"type": provider.type}
    base = source.secret_or_ref(params.get("api_base"))
    if base is not None and not isinstance(base, Env):
        base = base.rstrip("/")
        if not base.lower().startswith(("http://", "https://")) or any(
            c in base for c in "?# \t\r\n"
        ):
            draft.note(where, "skipped: api_base is not an http(s) URL without a query")
            return None
        if provider.suffix and not base.endswith(provider.suffix):
            base += provider.suffix
    if base is None and prefix == "azure":
        base = env("AZURE_API_BASE")
    if base is None and provider.base_url is not None:
        base = provider.base_url + provider.suffix
    if base is None and provider.type == "openai" and prefix != "openai":
        draft.note(where, f"skipped: {prefix}/ needs litellm_params.api_base")
        return None
    if base is not None:
        fields["base_url"] = base
    key = source.secret_or_ref(params.get("api_key"))
    if key is None and provider.key_env is not None and "api_key" not in params:
        key = env(provider.key_env, "")  # LiteLLM's implicit key: absent disables the backend
    if key is not None:
        fields["api_key"] = key
    elif params.get("api_key") not in (None, ""):
        draft.note(f"{where} api_key", "left out: not one line of text or os.environ/VAR")
    if prefix == "azure":
        version = source.secret_or_ref(params.get("api_version"))
        if version is not None:
            fields["api_version"] = version
    elif "api_version" in params:
        draft.note(f"{where} api_version", "applies only to Azure backends")
    return draft.backend(_NAMES.get(prefix, prefix), fields)


def _weighted(draft: Draft, alias: str, found: list[_Target]) -> list[dict[str, Value]]:
    """Targets with whole weights >= 1 in the same ratios; deployments without `order`
    after those with one (LiteLLM tries the lowest order first)."""
    ordered = [t.priority for t in found if t.priority >= 0]
    last = max(ordered, default=-1) + 1 if ordered else 0
    weights = [t.weight for t in found if t.weight is not None and t.weight > 0]
    scale = 1.0 if all(w == int(w) for w in weights) else 100.0
    ints = [max(1, min(10**6, round(w * scale))) for w in weights]
    common = math.gcd(*ints) if ints else 1
    out: list[dict[str, Value]] = []
    for t in found:
        target: dict[str, Value] = {"backend": t.backend, "model": t.model}
        if t.price is not None:
            target["price"] = t.price
        priority = t.priority if t.priority >= 0 else last
        if priority:
            target["priority"] = priority
        if weights and len(found) > 1:
            w = t.weight if t.weight is not None and t.weight > 0 else min(weights)
            target["weight"] = max(1, min(10**6, round(w * scale)) // common)
        out.append(target)
    return out


def _strategy(draft: Draft, value: object) -> None:
    name = source.text(value)
    if name is None:
        return
    strategy = _STRATEGIES.get(name)
    if strategy is None:
        draft.note(
            "router_settings.routing_strategy",
            f"{name!r} has no equivalent; llm-proxy uses weighted (simple-shuffle)",
        )
    elif strategy != "weighted":
        for alias in draft.models:
            draft.strategies[alias] = strategy


def _groups(draft: Draft, groups: dict[str, Any]) -> None:
    for alias, group in groups.items():
        name = source.text(source.mapping(group).get("model") if isinstance(group, dict) else group)
        if name is None or name not in draft.models:
            draft.note(f"router_settings.model_group_alias.{alias}", "names no model_name")
        elif alias not in draft.models:
            draft.models[alias] = [dict(t) for t in draft.models[name]]


def _fallbacks(draft: Draft, entries: list[Any], default: list[Any]) -> None:
    """`{alias: [fallback, ...]}`: each fallback's targets, in order, as later tiers."""
    chains: dict[str, list[str]] = {}
    for entry in entries:
        for alias, chain in source.mapping(entry).items():
            chains.setdefault(alias, []).extend(
                n for n in map(source.text, source.items(chain)) if n
            )
    defaults = [n for n in map(source.text, default) if n]
    own = {alias: [dict(t) for t in targets] for alias, targets in draft.models.items()}
    for alias in draft.models:
        chains.setdefault(alias, defaults)
    for alias, chain in chains.items():
        if alias not in draft.models:
            draft.note(f"fallbacks for {alias!r}", "names no model_name")
            continue
        targets = draft.models[alias]
        for fallback in chain:
            if fallback not in own:
                draft.note(f"fallback {fallback!r} of {alias!r}", "names no model_name")
                continue
            if fallback == alias:
                continue
            base = max(_priority(t) for t in targets) + 1
            low = min(_priority(t) for t in own[fallback])
            seen = {(t["backend"], t["model"]) for t in targets}
            for t in own[fallback]:
                if (t["backend"], t["model"]) not in seen:
                    targets.append({**t, "priority": base + _priority(t) - low})


def _priority(target: dict[str, Value]) -> int:
    value = target.get("priority", 0)
    return value if isinstance(value, int) else 0


def _settings(draft: Draft, values: dict[str, Any]) -> None:
    retries = source.number(values.get("num_retries"))
    if retries is not None:
        draft.settings["retries"] = max(0, min(10, int(retries)))
        if not 0 <= retries <= 10:
            draft.note("num_retries", "llm-proxy allows 0 to 10 retries; clamped")
    timeout = source.number(values.get("timeout", values.get("request_timeout")))
    if timeout is not None and 0.001 <= timeout < 1e9:
        draft.settings["timeouts"] = {"total": _seconds(timeout)}
    cooldown = source.number(values.get("cooldown_time"))
    if cooldown is not None and 0 <= cooldown < 1e9:
        draft.settings["cooldown"] = _seconds(cooldown)
    fails = source.number(values.get("allowed_fails"))
    if fails is not None and 0 <= fails < 2**31:
        # LiteLLM cools a deployment down once it fails MORE than allowed_fails times (in a
        # minute); llm-proxy opens a circuit after failure_threshold failures in a row.
        draft.settings["failure_threshold"] = int(fails) + 1


def _seconds(value: float) -> str:
    return f"{round(value, 3):f}".rstrip("0").rstrip(".") + "s"


def _master_key(draft: Draft, value: object) -> None:
    key = source.secret_or_ref(value)
    if key is None:
        if value is not None:
            draft.note("general_settings.master_key", "not a key or os.environ/VAR")
        return
    draft.settings["admin_key"] = key
    # LiteLLM's master key also calls every model; keep that working as a client key.
    draft.keys = [{"name": "master", "key": key}]
