"""Responses API client → Anthropic backend: `responses_chat` composed with `openai_anthropic`, the
OpenAI chat wire as the pivot (`responses_compose.Composed`). No mapping logic lives here:
what the pivot cannot carry is dropped as `responses_chat` says; what Anthropic cannot take is a
400 as `openai_anthropic` says.
"""

from proxy.translate import openai_anthropic
from proxy.translate.responses_compose import Composed

__all__ = ["Stream", "error", "request", "response"]

_composed = Composed(openai_anthropic)
request = _composed.request
response = _composed.response
error = _composed.error
Stream = _composed.Stream
