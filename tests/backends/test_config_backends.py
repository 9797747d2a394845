"""routes.yaml for the new backend types: fields, defaults, and problems at LINE:COL."""

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import ConfigError, parse
from proxy.template import PLACEHOLDERS, HttpTemplate


def _parse(text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse(textwrap.dedent(text), env or {}, "routes.yaml")


def _problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _parse(text, env)
    return [str(p) for p in err.value.problems]


def test_ollama_defaults_and_options() -> None:
    c = _parse(
        """
        version: 1
        backends:
          local:
            type: ollama
            options: {num_ctx: 8192, temperature: 0.1, use_mmap: true, stop: END}
            keep_alive: 10m
          plain: {type: ollama, discover: false, keep_alive: -1}
        models: {}
        """
    )
    local, plain = c.backends
    assert local.base_url == "http://127.0.0.1:11434"
    assert local.options == (
        ("num_ctx", 8192),
        ("temperature", 0.1),
        ("use_mmap", True),
        ("stop", "END"),
    )
    assert local.keep_alive == "10m"
    assert (local.discover, local.prefix) == (60.0, "ollama")
    assert (plain.discover, plain.keep_alive) == (0.0, "-1")


def test_discovery_on_openai_compatible_servers() -> None:
    c = _parse(
        """
        version: 1
        backends:
          vllm: {type: openai, base_url: "http://127.0.0.1:8000/v1", discover: true}
          lms: {type: openai, base_url: "http://127.0.0.1:1234/v1", discover: 5s, prefix: lm}
          openai: {type: openai, api_key: k}
        models: {}
        """
    )
    vllm, lms, openai = c.backends
    assert (vllm.discover, vllm.prefix) == (60.0, "vllm")
    assert (lms.discover, lms.prefix) == (5.0, "lm")
    assert openai.discover == 0.0


def test_huggingface_preset_takes_hf_token() -> None:
    text = """
        version: 1
        backends:
          hf: {type: huggingface}
          tgi: {type: huggingface, base_url: "https://x.endpoints.huggingface.cloud/v1"}
        models:
          m: {targets: [{backend: hf, model: "meta-llama/Llama-3.1-8B-Instruct"}]}
        """
    c = _parse(text, {"HF_TOKEN": "hf_secret"})
    hf, tgi = c.backends
    assert hf.base_url == "https://router.huggingface.co/v1"
    assert hf.api_key is not None and hf.api_key.reveal() == "hf_secret"
    assert tgi.api_key is not None and tgi.enabled
    c = _parse(text)
    hf, tgi = c.backends
    assert not hf.enabled and "HF_TOKEN" in str(hf.disabled)
    assert tgi.enabled and tgi.api_key is None  # a self-hosted endpoint may take no token
    assert any("HF_TOKEN" in str(w) for w in c.warnings)


HTTP = """
version: 1
backends:
  internal:
    type: http
    base_url: http://127.0.0.1:9000
    request:
      path: /v2/infer
      stream_path: /v2/infer/stream
      body:
        inputs: {prompt: "{{prompt}}", history: "{{messages}}"}
        params: {max_new_tokens: "{{max_tokens}}", temperature: "{{temperature}}", top_k: 5}
    response:
      text: output.text
      finish: output.stop
      usage: {prompt_tokens: meta.tokens_in, completion_tokens: meta.tokens_out}
      stream: {format: ndjson, text: delta.text}
models: {}
"""


def test_http_template_reads_whole() -> None:
    (b,) = _parse(HTTP).backends
    assert b.stream is True
    assert b.template == HttpTemplate(
        method="POST",
        path="/v2/infer",
        stream_path="/v2/infer/stream",
        body='{"inputs":{"prompt":"{{prompt}}","history":"{{messages}}"},'
        '"params":{"max_new_tokens":"{{max_tokens}}","temperature":"{{temperature}}","top_k":5}}',
        text=("output", "text"),
        prompt_tokens=("meta", "tokens_in"),
        completion_tokens=("meta", "tokens_out"),
        finish=("output", "stop"),
        stream_format="ndjson",
        stream_text=("delta", "text"),
    )


def test_http_without_a_stream_format_cannot_stream() -> None:
    (b,) = _parse(
        """
        version: 1
        backends:
          b: {type: http, base_url: "http://h", request: {path: /g}, response: {text: t}}
        models: {}
        """
    ).backends
    assert b.stream is False


def test_template_errors_have_line_and_column() -> None:
    found = _problems(
        """
        version: 1
        backends:
          internal:
            type: http
            base_url: http://127.0.0.1:9000
            request:
              method: PATCH
              path: generate
              body:
                text: "{{promt}}"
                list: ["ok {{model}}", "{{prompt}"]
            response:
              text: output..text
              usage: {prompt: a.b}
              stream: {format: grpc}
            stream: true
          ollama: {type: ollama, request: {}}
          openai: {type: openai, options: {a: 1}, prefix: "a b"}
        models: {}
        """
    )
    assert found == [
        "routes.yaml:8:15: expected one of POST, PUT; got 'PATCH'",
        "routes.yaml:9:13: expected a URL path starting with /, like /generate",
        "routes.yaml:11:15: unknown placeholder {{promt}}; expected one of: "
        + ", ".join(PLACEHOLDERS),
        "routes.yaml:12:32: unbalanced '{{' or '}}'; a placeholder is written {{name}}",
        "routes.yaml:14:13: path 'output..text' has an empty segment; write keys like output.text",
        "routes.yaml:15:15: unknown key 'prompt' in usage of backend 'internal'; did you mean "
        "'prompt_tokens'?",
        "routes.yaml:16:24: expected one of ndjson, sse; got 'grpc'",
        "routes.yaml:17:13: stream: true needs response.stream: {format: ndjson|sse}",
        "routes.yaml:18:26: request applies only to type: http backends",
        "routes.yaml:19:26: options applies only to type: ollama backends",
        "routes.yaml:19:51: prefix must be a name without spaces or '*', like ollama",
    ]


def test_http_needs_base_url_request_and_response_text() -> None:
    found = _problems(
        """
        version: 1
        backends:
          bare: {type: http}
          half: {type: http, base_url: "http://h", request: {path: /g}, response: {finish: f}}
        models: {}
        """
    )
    assert found == [
        "routes.yaml:4:3: http backend 'bare' needs base_url: http://HOST:PORT",
        "routes.yaml:4:3: http backend 'bare' needs request: {path: /generate, body: {...}}",
        "routes.yaml:4:3: http backend 'bare' needs response: {text: PATH like output.text}",
        "routes.yaml:5:75: response of backend 'half' needs text: PATH (like output.text)",
    ]


@given(st.from_regex(r"[A-Za-z0-9_. -]{1,12}", fullmatch=True))
def test_any_unknown_placeholder_is_a_check_error(name: str) -> None:
    text = HTTP.replace("{{prompt}}", "{{" + name + "}}")
    try:
        parse(text, {}, "routes.yaml")
    except ConfigError as err:
        assert any("placeholder" in p.message and p.line == 11 for p in err.problems)
        return
    assert name.strip() in PLACEHOLDERS  # `{{ prompt }}` is the same placeholder


def test_the_readme_template_example_checks_clean() -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    c = parse("version: 1\n" + example, {}, "README.md")
    (b,) = c.backends
    assert b.template is not None and b.template.stream_format == "ndjson"
    assert c.warnings == ()


def test_admin_view_shows_discovery_and_never_a_template_body() -> None:
    from proxy.front.views import config_view

    c = _parse(
        """
        version: 1
        backends:
          local: {type: ollama}
          internal:
            type: http
            base_url: http://h
            request: {path: /g, body: {key: "${SECRET}", prompt: "{{prompt}}"}}
            response: {text: t}
        models: {}
        """,
        {"SECRET": "s3cr3t-value"},
    )
    view = config_view(c)["backends"]
    assert view["local"]["discover"] == {"interval": 60.0, "prefix": "ollama"}
    assert view["internal"]["request"] == {"method": "POST", "path": "/g"}
    assert "s3cr3t-value" not in str(view)
    assert "s3cr3t-value" not in repr(c.backends[1]) and "s3cr3t-value" not in str(c)


def test_llm_proxy_check_prints_template_errors_at_line_and_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.conftest import REPO

    path = tmp_path / "routes.yaml"
    path.write_text(
        "version: 1\nbackends:\n  internal:\n    type: http\n    base_url: http://h\n"
        '    request: {path: /g, body: {prompt: "{{promt}}"}}\n'
        '    response: {text: "a..b"}\nmodels: {}\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "check", str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{path}:6:40: unknown placeholder {{{{promt}}}}" in done.stderr + done.stdout
    assert f"{path}:7:22: path 'a..b' has an empty segment" in done.stderr + done.stdout
