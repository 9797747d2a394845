"""Small routes.yaml documents and the problems `proxy.config.parse` reports for them, shared
by the config test modules."""

import pytest

from proxy.config import ConfigError, parse

MINIMAL = """\
version: 1
backends:
  demo: {type: mock}
models:
  demo:
    targets: [{backend: demo}]
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env or {})
    return [str(p) for p in caught.value.problems]


def with_settings(lines: str) -> str:
    return MINIMAL + "settings:\n" + "".join(f"  {line}\n" for line in lines.splitlines())


def with_backend(lines: str, name: str = "b") -> str:
    body = "".join(f"    {line}\n" for line in lines.splitlines())
    return f"version: 1\nbackends:\n  {name}:\n{body}models: {{}}\n"
