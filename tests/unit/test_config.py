"""proxy.config: routes.yaml text + env → Config, or ConfigError with every problem at LINE:COL.

The DESIGN.md example, the problems each document reports and where, and that no text or
config-shaped document makes the parser do anything but that. What single values become
(keys, interpolation, durations, sizes, secrets) is test_config_values.
"""

import hashlib
import string

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.config import (
    Backend,
    ConfigError,
    Secret,
    Settings,
    Target,
    Timeouts,
    parse,
)
from tests.unit.config_support import MINIMAL, problems, with_backend, with_settings

# The example from DESIGN.md, verbatim.
DESIGN_EXAMPLE = """\
version: 1
settings:                         # every key optional; these are the defaults
  failure_threshold: 3            # consecutive failures that open a target's circuit
  cooldown: 600s                  # how long an open circuit stays open before one probe
  retries: 2                      # extra upstream attempts per request, across targets
  timeouts: {connect: 5s, first_byte: 60s, idle: 60s, total: 600s}
  max_body: 16MiB                 # larger request bodies get 413
  log_prompts: none               # none | redacted | full
  admin_key: ${LLM_PROXY_ADMIN_KEY:-}
  keepalive: 15s                 # SSE comment interval while an upstream is silent
  on_disconnect: cancel          # cancel | drain
backends:
  openai:
    type: openai                  # openai | azure | anthropic | gemini | mock
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY:-}  # a backend whose key resolves empty is disabled, with a warning
    headers: {}                   # extra headers sent upstream
    max_connections: 256
    stream: true                  # false: backend cannot stream; the gateway synthesizes SSE
  azure:
    type: azure                   # deployments URL, api-version, api-key header
    base_url: https://my-resource.openai.azure.com
    api_version: "2024-10-21"
    api_key: ${AZURE_OPENAI_KEY:-}
  groq:
    type: openai                  # any OpenAI-compatible server: vLLM, Ollama, OpenRouter, ...
    base_url: https://api.groq.com/openai/v1
    api_key: ${GROQ_API_KEY:-}
  ollama:
    type: openai
    base_url: ${OLLAMA_URL:-http://127.0.0.1:11434/v1}
  demo:
    type: mock                    # built in: no network, deterministic text, streams
models:
  demo:
    targets: [{backend: demo}]
  gpt-4o:
    targets:
      - backend: openai           # model defaults to the alias
      - backend: azure
        model: gpt4o-prod         # the provider-side model id
        priority: 1               # lower tiers are tried first; default 0
  fast:
    targets:
      - {backend: groq, model: llama-3.1-8b-instant, weight: 3}   # weighted within a tier
      - {backend: ollama, model: llama3.2, weight: 1}
  "ollama/*":                     # glob alias; `*` in a target's model is the matched text
    targets: [{backend: ollama, model: "*"}]
keys:                             # absent: no client auth (local use)
  - name: team-a
    key: ${TEAM_A_KEY}            # or sha256: <hex of the key>
    models: ["gpt-*", demo]       # globs; absent = all
    rpm: 600
    tpm: 200000
"""


# --- the DESIGN.md example -------------------------------------------------------------------


def test_design_example_parses_with_only_team_a_key_set() -> None:
    config = parse(DESIGN_EXAMPLE, {"TEAM_A_KEY": "sk-team-a"})

    assert config.version == 1
    assert config.settings == Settings()
    assert [b.name for b in config.backends] == ["openai", "azure", "groq", "ollama", "demo"]
    openai, azure, groq, ollama, demo = config.backends
    assert openai.disabled == "api_key is empty (set OPENAI_API_KEY)"
    assert azure.disabled == "api_key is empty (set AZURE_OPENAI_KEY)"
    assert groq.disabled == "api_key is empty (set GROQ_API_KEY)"
    assert not any(b.enabled for b in (openai, azure, groq))
    assert ollama == Backend(name="ollama", type="openai", base_url="http://127.0.0.1:11434/v1")
    assert ollama.enabled and ollama.api_key is None
    assert demo == Backend(name="demo", type="mock")
    assert azure.api_version == "2024-10-21"
    assert azure.base_url == "https://my-resource.openai.azure.com"
    assert config.backend("groq") is groq

    assert [m.alias for m in config.models] == ["demo", "gpt-4o", "fast", "ollama/*"]
    gpt4o = config.models[1]
    assert gpt4o.targets == (
        Target(backend="openai"),
        Target(backend="azure", model="gpt4o-prod", priority=1),
    )
    assert gpt4o.strategy == "weighted"
    assert config.models[2].targets[0] == Target(
        backend="groq", model="llama-3.1-8b-instant", weight=3
    )
    assert config.models[3].targets == (Target(backend="ollama", model="*"),)

    assert config.keys is not None
    (team_a,) = config.keys
    assert team_a.name == "team-a"
    assert team_a.digest == hashlib.sha256(b"sk-team-a").digest()
    assert team_a.models == ("gpt-*", "demo")
    assert (team_a.rpm, team_a.tpm) == (600, 200000)

    assert [str(w) for w in config.warnings] == [
        "routes.yaml:16:14: backend 'openai' is disabled: api_key is empty (set OPENAI_API_KEY)",
        "routes.yaml:24:14: backend 'azure' is disabled: api_key is empty (set AZURE_OPENAI_KEY)",
        "routes.yaml:28:14: backend 'groq' is disabled: api_key is empty (set GROQ_API_KEY)",
        "routes.yaml:37:3: model 'gpt-4o' is unavailable: its backends are disabled"
        " (openai, azure)",
    ]


def test_design_example_with_every_variable_set() -> None:
    env = {
        "TEAM_A_KEY": "k",
        "OPENAI_API_KEY": "sk-openai",
        "AZURE_OPENAI_KEY": "az",
        "GROQ_API_KEY": "gq",
        "OLLAMA_URL": "http://gpu-box:11434/v1/",
        "LLM_PROXY_ADMIN_KEY": "admin-secret",
    }
    config = parse(DESIGN_EXAMPLE, env, path="/etc/llm-proxy/routes.yaml")
    assert config.warnings == ()
    assert all(b.enabled for b in config.backends)
    assert config.backend("openai").api_key == Secret("sk-openai")
    assert config.backend("ollama").base_url == "http://gpu-box:11434/v1"  # "/" stripped
    assert config.settings.admin_key is not None
    assert config.settings.admin_key.reveal() == "admin-secret"


def test_design_example_without_team_a_key_names_the_variable() -> None:
    assert problems(DESIGN_EXAMPLE) == [
        "routes.yaml:51:10: environment variable TEAM_A_KEY is not set;"
        " set it or write ${TEAM_A_KEY:-default}"
    ]


# --- problems at LINE:COL --------------------------------------------------------------------


def test_empty_file() -> None:
    assert problems("") == ["routes.yaml:1:1: config is empty"]
    assert problems("# only a comment\n") == ["routes.yaml:1:1: config is empty"]


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- a\n- b\n") == [
        "routes.yaml:1:1: the top level must be a mapping with version, backends and models"
    ]


def test_yaml_syntax_error_is_one_problem_at_its_mark() -> None:
    found = problems("version: 1\nbackends: {a: [1, 2}\n", {})
    assert len(found) == 1
    assert found[0].startswith("routes.yaml:2:")
    assert "invalid YAML" in found[0]


def test_custom_path_in_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("", {}, path="conf/r.yaml")
    assert str(caught.value) == "conf/r.yaml:1:1: config is empty"


def test_missing_required_keys() -> None:
    assert problems("settings: {}\n") == [
        "routes.yaml:1:1: missing required key 'version' (version: 1)",
        "routes.yaml:1:1: missing required key 'backends'",
        "routes.yaml:1:1: missing required key 'models'",
    ]


def test_wrong_version() -> None:
    assert problems(MINIMAL.replace("version: 1", "version: 2")) == [
        "routes.yaml:1:10: unsupported version 2; this gateway reads version: 1"
    ]
    assert problems(MINIMAL.replace("version: 1", 'version: "one"')) == [
        "routes.yaml:1:10: expected an integer, got 'one'"
    ]


def test_unknown_keys_with_did_you_mean() -> None:
    assert problems(with_settings("retrys: 3")) == [
        "routes.yaml:8:3: unknown key 'retrys' in settings; did you mean 'retries'?"
    ]
    assert problems(MINIMAL + "backend: {}\n") == [
        "routes.yaml:7:1: unknown key 'backend' in the top level; did you mean 'backends'?"
    ]
    assert problems(with_settings("timeouts: {conect: 1s}")) == [
        "routes.yaml:8:14: unknown key 'conect' in settings.timeouts; did you mean 'connect'?"
    ]
    found = problems(with_backend("type: openai\nzzz: 1"))
    assert found == [
        "routes.yaml:5:5: unknown key 'zzz' in backend 'b'; expected one of: type, base_url,"
        " api_key, api_version, headers, max_connections, stream, max_output_tokens, responses,"
        " latency, interval, tokens, chunks, options, keep_alive, discover, prefix, request,"
        " response"
    ]


def test_bad_values_are_reported_at_the_value() -> None:
    text = with_settings(
        "cooldown: fast\nretries: x\nfailure_threshold: 0\nmax_body: lots\n"
        "log_prompts: ful\ntimeouts: {connect: 0s}\non_disconnect: drian\nkeepalive: -1"
    )
    assert problems(text) == [
        "routes.yaml:8:13: expected a duration like 5s or 250ms, got 'fast'",
        "routes.yaml:9:12: expected an integer from 0 to 10, got 'x'",
        "routes.yaml:10:22: expected an integer >= 1, got 0",
        "routes.yaml:11:13: expected a size like 16MiB or 512KiB, got 'lots'",
        "routes.yaml:12:16: expected one of none, redacted, full; got 'ful'; did you mean 'full'?",
        "routes.yaml:13:23: expected a duration above 0 like 5s, got '0s'",
        "routes.yaml:14:18: expected one of cancel, drain; got 'drian'; did you mean 'drain'?",
        "routes.yaml:15:14: expected a duration like 5s or 250ms, got -1",
    ]


def test_settings_values_convert() -> None:
    text = with_settings(
        "cooldown: 0\nretries: 0\nmax_body: 1KiB\ntimeouts: {connect: 250ms, total: 1h}\n"
        "log_prompts: redacted\nkeepalive: 1.5\non_disconnect: drain\nadmin_key: hunter2"
    )
    s = parse(text, {}).settings
    assert (s.cooldown, s.retries, s.max_body) == (0.0, 0, 1024)
    assert s.timeouts == Timeouts(connect=0.25, total=3600.0)
    assert (s.log_prompts, s.keepalive, s.on_disconnect) == ("redacted", 1.5, "drain")
    assert s.admin_key == Secret("hunter2")


def test_backend_type_problems() -> None:
    assert problems(with_backend("type: opnai")) == [
        "routes.yaml:4:11: expected one of openai, azure, anthropic, gemini, mock, ollama,"
        " http, huggingface; got 'opnai'; did you mean 'openai'?"
    ]
    assert problems(with_backend("base_url: http://x")) == [
        "routes.yaml:3:3: backend 'b' needs a type: openai, azure, anthropic, gemini, mock,"
        " ollama, http, huggingface"
    ]


def test_mock_knobs_only_on_mock_and_azure_needs_base_url() -> None:
    assert problems(with_backend("type: openai\nlatency: 1s\ntokens: 3")) == [
        "routes.yaml:5:5: latency applies only to type: mock backends",
        "routes.yaml:6:5: tokens applies only to type: mock backends",
    ]
    assert problems(with_backend("type: azure\napi_key: k")) == [
        "routes.yaml:3:3: azure backend 'b' needs base_url: https://RESOURCE.openai.azure.com"
    ]
    assert problems(with_backend("type: openai\napi_version: '1'")) == [
        "routes.yaml:5:5: api_version applies only to type: azure backends"
    ]


def test_backend_defaults_and_mock_knobs() -> None:
    text = (
        "version: 1\nbackends:\n"
        "  a: {type: anthropic, api_key: k, stream: no, max_connections: 8}\n"
        "  g: {type: gemini, base_url: 'https://proxy.example/gem///'}\n"
        "  m: {type: mock, latency: 50ms, interval: 0, tokens: 5, chunks: 2}\n"
        "models: {}\n"
    )
    config = parse(text, {})
    a, g, m = config.backends
    assert a.base_url == "https://api.anthropic.com"
    assert (a.stream, a.max_connections, a.api_key) == (False, 8, Secret("k"))
    assert g.base_url == "https://proxy.example/gem"
    assert (m.latency, m.interval, m.tokens, m.chunks) == (0.05, 0.0, 5, 2)
    assert [str(w) for w in config.warnings] == [
        "routes.yaml:6:1: no models are defined; every request will get 404 model_not_found"
    ]


def test_bad_base_url_is_not_echoed() -> None:
    found = problems(with_backend("type: openai\nbase_url: ftp://user:pw@host"))
    assert found == ["routes.yaml:5:15: expected an http:// or https:// URL without a query"]


def test_literal_empty_api_key_disables_without_a_variable_name() -> None:
    config = parse(with_backend('type: openai\napi_key: ""'), {})
    assert config.backends[0].disabled == "api_key is empty"
    assert str(config.warnings[0]) == (
        "routes.yaml:5:14: backend 'b' is disabled: api_key is empty"
    )


def test_headers() -> None:
    text = with_backend(
        "type: openai\nheaders:\n  X-Org: ${ORG:-}\n  X-Team: '${TEAM}-x'\n  X-Num: 7"
    )
    backend = parse(text, {"TEAM": "t1"}).backends[0]
    assert backend.headers == (("X-Team", "t1-x"), ("X-Num", "7"))  # empty X-Org dropped
    assert "t1-x" not in repr(backend)
    assert "('X-Team', '***')" in repr(backend)

    bad = with_backend("type: openai\nheaders: {'X Y': a, x-a: b, X-A: \"c\\nd\"}")
    assert problems(bad) == [
        "routes.yaml:5:15: 'X Y' is not a valid HTTP header name",
        "routes.yaml:5:33: header 'X-A' repeats 'x-a' (header names ignore case)",
        "routes.yaml:5:38: expected a single line of text (it has a line break or NUL)",
    ]


def test_target_problems() -> None:
    text = (
        "version: 1\nbackends:\n  openai: {type: mock}\n  azure: {type: mock}\nmodels:\n"
        "  a:\n    targets: [{backend: opena, weight: 0}]\n"
        "  b: {}\n"
        "  c: {targets: []}\n"
        "  d: {targets: [openai, {model: x}], strategy: least_busy}\n"
        "  e: {targets: [{backend: azure, prio: 1}], strategy: fastest}\n"
    )
    assert problems(text) == [
        "routes.yaml:7:25: unknown backend 'opena'; did you mean 'openai'?"
        " (defined: openai, azure)",
        "routes.yaml:7:40: expected an integer >= 1, got 0",
        "routes.yaml:8:3: model 'b' needs targets: a list like [{backend: NAME}]",
        "routes.yaml:9:16: model 'c' has no targets; add at least one {backend: NAME}",
        "routes.yaml:10:17: expected a target like {backend: NAME}, got 'openai'",
        "routes.yaml:10:25: a target of model 'd' needs backend: NAME",
        "routes.yaml:11:34: unknown key 'prio' in a target of model 'e'; did you mean 'priority'?",
        "routes.yaml:11:55: expected one of weighted, least_busy, latency; got 'fastest'",
    ]


def test_many_problems_are_reported_together_in_file_order() -> None:
    text = (
        "version: 1\n"
        "settings: {retries: 11}\n"
        "backends:\n"
        "  x: {type: nope}\n"
        "models:\n"
        "  m: {targets: [{backend: y}]}\n"
        "keys: [{name: k}]\n"
    )
    found = problems(text)
    assert len(found) == 4
    assert [p.split(": ", 1)[0] for p in found] == [
        "routes.yaml:2:21",
        "routes.yaml:4:13",
        "routes.yaml:6:27",
        "routes.yaml:7:8",
    ]


def test_duplicate_keys_are_problems() -> None:
    text = (
        "version: 1\nbackends:\n  a: {type: mock}\n  a: {type: mock}\n"
        "models:\n  m: {targets: [{backend: a}], targets: []}\n"
    )
    assert problems(text) == [
        "routes.yaml:4:3: duplicate key 'a' in backends (first on line 3)",
        "routes.yaml:6:32: duplicate key 'targets' in model 'm' (first on line 6)",
        "routes.yaml:6:41: model 'm' has no targets; add at least one {backend: NAME}",
    ]


def test_merge_keys_apply_and_own_keys_win() -> None:
    text = (
        "version: 1\nbackends:\n"
        "  base: &base {type: mock, tokens: 4, latency: 1s}\n"
        "  fast: {<<: *base, latency: 0}\n"
        "models: {m: {targets: [{backend: fast}]}}\n"
    )
    fast = parse(text, {}).backend("fast")
    assert (fast.type, fast.tokens, fast.latency) == ("mock", 4, 0.0)


def test_backend_lookup_raises_key_error() -> None:
    with pytest.raises(KeyError):
        parse(MINIMAL, {}).backend("nope")


# --- never crash -----------------------------------------------------------------------------


@given(st.text())
@example("a: [" * 2000)
@example('a: "\\UFFFFFFFF"')
@example('a: "\\uD800"')
@example("a: \x01")
@example("version: 1\nbackends: {b: {<<: 5}}\nmodels: {}\n")
@example("version: 1\nbackends: {b: &x {type: mock, <<: *x}}\nmodels: {}\n")
@example("version: !!int x\nbackends: !!bool x\nmodels: !!float x\n")
def test_arbitrary_text_only_ever_raises_config_error(text: str) -> None:
    try:
        parse(text, {})
    except ConfigError as err:
        assert err.problems
        assert all(p.line >= 1 and p.col >= 1 for p in err.problems)


KNOWN = [
    *("version", "settings", "backends", "models", "keys", "failure_threshold", "cooldown"),
    *("retries", "timeouts", "max_body", "log_prompts", "admin_key", "keepalive", "connect"),
    *("on_disconnect", "type", "base_url", "api_key", "api_version", "headers", "stream"),
    *("max_connections", "latency", "interval", "tokens", "chunks", "targets", "strategy"),
    *("backend", "model", "priority", "weight", "name", "key", "sha256", "rpm", "tpm", "b", "m"),
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from(["mock", "openai", "azure", "5s", "16MiB", "${X}", "${Y:-}", "b", "*"])
    | st.text(max_size=8)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KNOWN), inner),
    max_leaves=30,
)


@given(
    st.fixed_dictionaries(
        {"version": st.just(1) | scalars}, optional={k: documents for k in KNOWN[1:5]}
    )
)
def test_config_shaped_documents_only_ever_raise_config_error(doc: dict[str, object]) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        config = parse(text, {"X": "1"})
    except ConfigError as err:
        assert err.problems
    else:
        assert {t.backend for m in config.models for t in m.targets} <= {
            b.name for b in config.backends
        }


@given(st.text(string.ascii_letters + "-_", min_size=8, max_size=20))
def test_a_secret_in_any_field_is_never_echoed(secret: str) -> None:
    # The secret lands in fields that take secrets, each with something else wrong nearby.
    text = (
        "version: 1\nsettings: {admin_key: [x]}\nbackends:\n"
        f"  b: {{type: openai, api_key: '{secret}',\n"
        f"      headers: {{X-K: '{secret}', 'a b': '{secret}'}}}}\n"
        f"models: {{}}\nkeys: [{{name: a, key: '{secret}', sha256: '{secret}'}}]\n"
    )
    found = problems(text)
    assert found
    assert secret not in "\n".join(found)
