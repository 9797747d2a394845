"""proxy.config.env: LLM_PROXY__ overrides are checked like the file's values and named by
their variable when wrong."""

import string

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import ConfigError, Override, parse
from tests.unit.config_support import MINIMAL, problems

FILE = """\
version: 1
settings:
  retries: 1
  timeouts: {connect: 2s}
backends:
  openai: {type: openai, api_key: "${OPENAI_API_KEY:-}"}
  azure-east: {type: azure, base_url: "https://east.openai.azure.com", api_key: k}
  demo: {type: mock}
models:
  demo: {targets: [{backend: demo}]}
  gpt-4o: {targets: [{backend: openai}]}
"""


def test_settings_values_are_set_at_any_depth() -> None:
    env = {
        "LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL": "30s",
        "LLM_PROXY__SETTINGS__RETRIES": "4",
        "LLM_PROXY__SETTINGS__DIRECT_ADDRESSING": "true",
        "LLM_PROXY__SETTINGS__KEY_HEADERS": "[authorization, X-Internal-Auth]",
    }
    config = parse(FILE, env)
    s = config.settings
    assert s.timeouts.total == 30.0
    assert s.timeouts.connect == 2.0  # the file's sibling value survives
    assert s.retries == 4
    assert s.direct_addressing is True
    assert s.key_headers == ("authorization", "x-internal-auth")
    assert config.from_env == (
        Override("LLM_PROXY__SETTINGS__DIRECT_ADDRESSING", "settings.direct_addressing"),
        Override("LLM_PROXY__SETTINGS__KEY_HEADERS", "settings.key_headers"),
        Override("LLM_PROXY__SETTINGS__RETRIES", "settings.retries"),
        Override("LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL", "settings.timeouts.total"),
    )


def test_a_settings_section_absent_from_the_file_is_created() -> None:
    config = parse(MINIMAL, {"LLM_PROXY__SETTINGS__TIMEOUTS__IDLE": "250ms"})
    assert config.settings.timeouts.idle == 0.25


def test_backend_base_url_and_api_key_enable_a_backend() -> None:
    env = {
        "LLM_PROXY__BACKENDS__OPENAI__BASE_URL": "http://127.0.0.1:9999/v1/",
        "LLM_PROXY__BACKENDS__OPENAI__API_KEY": "sk-from-env$1",
        "LLM_PROXY__BACKENDS__AZURE_EAST__API_KEY": "other",
    }
    config = parse(FILE, env)
    openai = config.backend("openai")
    assert openai.base_url == "http://127.0.0.1:9999/v1"
    assert openai.api_key is not None and openai.api_key.reveal() == "sk-from-env$1"  # literal $
    assert openai.enabled
    azure = config.backend("azure-east")
    assert azure.api_key is not None and azure.api_key.reveal() == "other"
    assert {o.path for o in config.from_env} == {
        "backends.openai.base_url",
        "backends.openai.api_key",
        "backends.azure-east.api_key",
    }


def test_a_bad_value_is_named_by_its_variable() -> None:
    found = problems(FILE, {"LLM_PROXY__SETTINGS__RETRIES": "many"})
    assert found == ["LLM_PROXY__SETTINGS__RETRIES: expected an integer from 0 to 10, got 'many'"]


def test_unknown_keys_and_paths_are_named_by_their_variable() -> None:
    found = problems(
        FILE,
        {
            "LLM_PROXY__SETTINGS__RETRYS": "1",
            "LLM_PROXY__MODELS__DEMO": "x",
            "LLM_PROXY__BACKENDS__NOPE__API_KEY": "x",
            "LLM_PROXY__BACKENDS__OPENAI__TYPE": "mock",
            "LLM_PROXY__SETTINGS____RETRIES": "1",
            "LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL__X": "1",
        },
    )
    by_var = {p.split(":", 1)[0]: p for p in found}
    assert set(by_var) == {
        "LLM_PROXY__SETTINGS__RETRYS",
        "LLM_PROXY__MODELS__DEMO",
        "LLM_PROXY__BACKENDS__NOPE__API_KEY",
        "LLM_PROXY__BACKENDS__OPENAI__TYPE",
        "LLM_PROXY__SETTINGS____RETRIES",
        "LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL__X",
    }
    assert "did you mean 'retries'" in by_var["LLM_PROXY__SETTINGS__RETRYS"]
    assert "azure-east" in by_var["LLM_PROXY__BACKENDS__NOPE__API_KEY"]
    assert "expected a single value" in by_var["LLM_PROXY__SETTINGS__TIMEOUTS__TOTAL__X"]


def test_a_bad_api_key_is_never_echoed() -> None:
    found = problems(FILE, {"LLM_PROXY__BACKENDS__OPENAI__API_KEY": "sk-secret\nline"})
    assert found and all("sk-secret" not in p for p in found)
    assert found[0].startswith("LLM_PROXY__BACKENDS__OPENAI__API_KEY: ")


def test_empty_values_and_other_variables_are_ignored() -> None:
    env = {"LLM_PROXY__SETTINGS__RETRIES": "", "LLM_PROXY_CONFIG": "x", "LLM_PROXY_X": "y"}
    config = parse(FILE, env)
    assert config.settings.retries == 1
    assert config.from_env == ()


def test_an_alias_shared_in_the_file_keeps_its_value_elsewhere() -> None:
    text = """\
version: 1
backends:
  b1: &same {type: openai, api_key: k}
  b2: *same
models:
  m: {targets: [{backend: b1}, {backend: b2}]}
"""
    config = parse(text, {"LLM_PROXY__BACKENDS__B1__BASE_URL": "http://127.0.0.1:1/v1"})
    assert config.backend("b1").base_url == "http://127.0.0.1:1/v1"
    assert config.backend("b2").base_url == "https://api.openai.com/v1"


def test_file_problems_keep_their_line_next_to_env_problems() -> None:
    text = FILE.replace("retries: 1", "retries: -1")
    found = problems(text, {"LLM_PROXY__SETTINGS__LOG_PROMPTS": "loud"})
    assert found[0].startswith("LLM_PROXY__SETTINGS__LOG_PROMPTS: expected one of")
    assert found[1].startswith("routes.yaml:3:12: ")


_NAME = st.text(string.ascii_uppercase + "_", min_size=0, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_NAME.map(lambda n: "LLM_PROXY__" + n), st.text(max_size=30), max_size=4))
def test_any_override_gives_a_config_or_named_problems(env: dict[str, str]) -> None:
    try:
        config = parse(FILE, env)
    except ConfigError as err:
        for problem in err.problems:
            assert problem.line == 0 and problem.path in env
    else:
        assert {o.variable for o in config.from_env} <= set(env)
        msgspec.to_builtins(config.settings, enc_hook=repr)  # a whole, typed Settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", 10), ("0x10", 16), ("3", 3)],
)
def test_numbers_are_typed_as_yaml_would(value: str, expected: int) -> None:
    config = parse(MINIMAL, {"LLM_PROXY__SETTINGS__FAILURE_THRESHOLD": value})
    assert config.settings.failure_threshold == expected
