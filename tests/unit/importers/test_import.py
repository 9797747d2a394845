"""proxy.importers: LiteLLM configs and providers lists → routes.yaml that `check` accepts and
that routes the same models to the same providers."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config import Config, parse
from proxy.importers import ImportFailed, convert
from proxy.routing import RouteTable
from tests.unit.importers import configs

ENV = {
    name: "set"
    for name in [
        "AZURE_EASTUS_KEY",
        "AZURE_WESTUS_KEY",
        "OPENAI_API_KEY",
        "LITELLM_MASTER_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GROQ_API_KEY",
        "AZURE_OPENAI_KEY",
    ]
} | {"AZURE_WESTUS_BASE": "https://westus.openai.azure.com"}


def referenced(out: str) -> dict[str, str]:
    """Every variable the output refers to, set (to a value that is both a URL and a key)."""
    return {name: "http://127.0.0.1:3/v1" for name in re.findall(r"\$\{(\w+)", out)}


def imported(text: str) -> tuple[str, Config]:
    out = convert(text)
    return out, parse(out, ENV, "imported.yaml")


def routes(config: Config, name: str) -> list[list[tuple[str, str, int]]]:
    """Per tier: (backend type, provider model, weight), sorted."""
    route = RouteTable(config).resolve(name)
    assert route is not None, name
    return [
        sorted((config.backend(c.key.backend).type, c.key.model, c.weight) for c in tier)
        for tier in route.tiers
    ]


def test_weighted_azure_deployments_and_ordered_openai() -> None:
    out, config = imported(configs.AZURE_OPENAI_WEIGHTED)
    assert routes(config, "gpt-4o") == [
        [("openai", "gpt-4o", 1)],  # order: 2 is tried before deployments without an order
        [("azure", "gpt-4o-eastus", 1), ("azure", "gpt-4o-westus", 2)],  # rpm 480:960
    ]
    assert routes(config, "text-embedding-3-small") == [[("openai", "text-embedding-3-small", 1)]]
    s = config.settings
    assert (s.retries, s.timeouts.total, s.cooldown, s.failure_threshold) == (2, 30, 60, 3)
    assert s.admin_key is not None and s.admin_key.reveal() == "set"
    assert config.keys is not None and [k.name for k in config.keys] == ["master"]
    east = next(b for b in config.backends if b.base_url == "https://eastus.openai.azure.com")
    assert east.api_version == "2024-08-01-preview"
    assert "${AZURE_WESTUS_BASE}" in out and "os.environ" not in out.split("version: 1")[1]


def test_fallbacks_become_later_tiers() -> None:
    out, config = imported(configs.FALLBACKS)
    assert routes(config, "claude-sonnet") == [
        [("anthropic", "claude-3-5-sonnet-20241022", 1)],
        [("openai", "gpt-4o-mini", 1)],
        [("gemini", "gemini-1.5-flash", 1)],
    ]
    assert routes(config, "gpt-4o-mini") == [
        [("openai", "gpt-4o-mini", 1)],
        [("openai", "llama3.2", 1)],
    ]
    claude = next(m for m in config.models if m.alias == "claude-sonnet").targets[0]
    assert claude.price is not None  # LiteLLM's USD per token, as USD per million tokens
    assert (claude.price.input, claude.price.output) == (3.0, 15.0)
    ollama = next(b for b in config.backends if b.name == "ollama")
    assert ollama.base_url == "http://localhost:11434/v1"
    assert (config.settings.retries, config.settings.timeouts.total) == (3, 120)
    for unmapped in ("drop_params", "context_window_fallbacks", "success_callback", "database_url"):
        assert re.search(rf"^# - .*{unmapped}: \S", out, re.MULTILINE), unmapped
    assert "postgresql" not in out and "pw@" not in out  # values of unmapped keys stay out


def test_literal_master_key_is_kept_and_dollars_are_literal() -> None:
    text = configs.FALLBACKS.replace("master_key: sk-1234", "master_key: sk-$ecret")
    _, config = imported(text)
    assert config.settings.admin_key is not None
    assert config.settings.admin_key.reveal() == "sk-$ecret"


def test_self_hosted_weights_globs_aliases_and_unsupported_providers() -> None:
    out, config = imported(configs.SELF_HOSTED)
    assert routes(config, "llama-70b") == [
        [
            ("openai", "meta-llama/Llama-3.1-70B-Instruct", 3),
            ("openai", "meta-llama/Llama-3.1-70B-Instruct", 7),
        ]
    ]
    assert routes(config, "llama") == routes(config, "llama-70b")  # model_group_alias
    assert routes(config, "groq/llama-3.1-8b-instant") == [[("openai", "llama-3.1-8b-instant", 1)]]
    assert {m.strategy for m in config.models} == {"latency"}
    assert RouteTable(config).resolve("titan") is None
    assert "titan" in out and "'bedrock'" in out
    assert "REDIS_PASSWORD" in out and "hunter2" not in out


def test_providers_list() -> None:
    out, config = imported(configs.PROVIDERS)
    assert routes(config, "gpt-4o") == [[("openai", "gpt-4o", 1)], [("azure", "gpt-4o", 1)]]
    assert routes(config, "claude-3-5-haiku-latest") == [
        [("anthropic", "claude-3-5-haiku-latest", 1)]
    ]
    assert routes(config, "anything-else") == [[("openai", "anything-else", 1)]]  # the catch-all
    assert routes(config, "openai:gpt-4.1") == [[("openai", "gpt-4.1", 1)]]  # provider:model
    assert config.settings.default_model == "gpt-4o-mini"
    assert "timeout_s" in out


@pytest.mark.parametrize(
    "text", ["[1, 2]", "model_list: [", "just: text", "", "providers: 3\n", "model_list: {}\n"]
)
def test_unusable_files_fail_cleanly_or_give_an_empty_config(text: str) -> None:
    try:
        out = convert(text)
    except ImportFailed as err:
        assert str(err)
    else:
        config = parse(out, {})
        assert config.models == ()


def test_the_command_line_round_trip(tmp_path: Path) -> None:
    for name, text in (("litellm.yaml", configs.FALLBACKS), ("providers.yaml", configs.PROVIDERS)):
        source = tmp_path / name
        source.write_text(text)
        made = subprocess.run(
            [sys.executable, "-m", "proxy", "import", str(source)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        target = tmp_path / f"routes-{name}"
        target.write_text(made.stdout)
        checked = subprocess.run(
            [sys.executable, "-m", "proxy", "check", str(target)],
            capture_output=True,
            text=True,
            timeout=60,
            env=ENV | {"PATH": ""},
        )
        assert checked.returncode == 0, checked.stderr
        assert "ok (" in checked.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "proxy", "import", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "cannot read" in bad.stderr


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_ANY = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_PROVIDER = st.sampled_from(
    ["openai", "azure", "anthropic", "gemini", "ollama", "hosted_vllm", "groq", "bedrock", ""]
)
_NAME = st.text("abcdefgh-.*/:", min_size=1, max_size=10)
_DEPLOYMENT = st.fixed_dictionaries(
    {
        "model_name": _NAME | _SCALARS,
        "litellm_params": st.fixed_dictionaries(
            {"model": st.builds(lambda p, m: f"{p}/{m}" if p else m, _PROVIDER, _NAME)},
            optional={
                "api_base": st.sampled_from(
                    ["http://127.0.0.1:1/v1", "os.environ/BASE", "ftp://x", ""]
                ),
                "api_key": st.sampled_from(["os.environ/KEY", "sk-$1", "os.environ/bad name", ""])
                | _SCALARS,
                "weight": _SCALARS,
                "rpm": _SCALARS,
                "order": _SCALARS,
                "api_version": _SCALARS,
                "extra": _ANY,
                "input_cost_per_token": _SCALARS | st.floats(0, 1e-3),
            },
        ),
    },
    optional={"model_info": _ANY, "tpm": _SCALARS},
)
_LITELLM = st.fixed_dictionaries(
    {"model_list": st.lists(_DEPLOYMENT, max_size=5)},
    optional={
        "router_settings": st.dictionaries(
            st.sampled_from(
                [
                    "num_retries",
                    "timeout",
                    "cooldown_time",
                    "allowed_fails",
                    "routing_strategy",
                    "model_group_alias",
                    "fallbacks",
                    "redis_host",
                ]
            ),
            _ANY,
            max_size=4,
        ),
        "litellm_settings": st.dictionaries(
            st.sampled_from(["fallbacks", "default_fallbacks", "num_retries", "drop_params"]),
            _ANY | st.lists(st.dictionaries(_NAME, st.lists(_NAME, max_size=3), max_size=2)),
            max_size=3,
        ),
        "general_settings": st.dictionaries(st.sampled_from(["master_key", "x"]), _ANY, max_size=2),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LITELLM)
def test_any_litellm_shaped_config_imports_to_a_valid_config(data: dict[str, object]) -> None:
    out = convert(yaml.safe_dump(data))
    config = parse(out, referenced(out))
    table = RouteTable(config)
    for item in data["model_list"]:  # type: ignore[union-attr]
        name = item["model_name"]  # type: ignore[index]
        if isinstance(name, str) and name in {m.alias for m in config.models}:
            assert table.resolve(name) is not None


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["model_list", "providers", "default_model", "x"]), _ANY))
def test_any_yaml_mapping_never_crashes(data: dict[str, object]) -> None:
    try:
        out = convert(yaml.safe_dump(data))
    except ImportFailed:
        return
    parse(out, referenced(out))  # a valid config, whatever came in
