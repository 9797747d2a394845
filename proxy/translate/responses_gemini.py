"""Responses API client → Gemini backend: `responses_chat` composed with `openai_gemini`, the
OpenAI chat wire as the pivot (`responses_compose.Composed`). No mapping logic lives here:
what the pivot cannot carry is dropped as `responses_chat` says; what Gemini cannot take is a
400 as `openai_gemini` says.
"""

from proxy.translate import openai_gemini
from proxy.translate.responses_compose import Composed

__all__ = ["Stream", "error", "request", "response"]

_composed = Composed(openai_gemini)
request = _composed.request
response = _composed.response
error = _composed.error
Stream = _composed.Stream
