"""Importers: other gateways' config files → routes.yaml text (`llm-proxy import FILE`).

Pure: text in, text out. `convert` tells the formats apart by their top-level keys.
"""

from proxy.importers import litellm, providers
from proxy.importers.source import ImportFailed, load

__all__ = ["ImportFailed", "convert"]


def convert(text: str, name: str = "config.yaml") -> str:
    """routes.yaml text for a LiteLLM proxy config or a `providers:` list."""
    data = load(text)
    if "providers" in data:
        return providers.convert(text, name)
    if "model_list" in data:
        return litellm.convert(text, name)
    raise ImportFailed(
        "not a format `llm-proxy import` knows: expected a LiteLLM config (model_list:) "
        "or a providers: list"
    )
