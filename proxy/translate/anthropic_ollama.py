"""Anthropic client → Ollama native backend: `anthropic_openai` composed with `openai_ollama`
(see `compose`), the OpenAI chat wire as the pivot. No mapping logic lives here."""

from proxy.translate import openai_ollama
from proxy.translate.compose import Composed

_composed = Composed(openai_ollama)

__all__ = ["Stream", "error", "request", "response"]

request = _composed.request
response = _composed.response
error = _composed.error
Stream = _composed.Stream
