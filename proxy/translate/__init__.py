"""Protocol translation between the wire a client speaks and the wire its backend speaks.

One module per direction, named `{front}_{backend}.py`, each exposing `request`, `response`,
`error` and `Stream` (see `common.Translator`). All of them are pure: no asyncio, aiohttp or
litestar, no clock, environment or randomness; ids and timestamps come in as arguments. What
they share lives in `common`; this package is the registry: `pick` gives the translator for a
(client wire, backend wire) pair.
"""

from proxy.translate import (
    anthropic_gemini,
    anthropic_openai,
    openai_anthropic,
    openai_gemini,
    responses_anthropic,
    responses_chat,
    responses_gemini,
)
from proxy.translate.common import (
    StreamTranslator,
    TranslationError,
    Translator,
)

__all__ = ["StreamTranslator", "TranslationError", "Translator", "pick"]

_TABLE: dict[tuple[str, str], Translator] = {
    ("openai", "anthropic"): openai_anthropic,
    ("openai", "gemini"): openai_gemini,
    ("anthropic", "openai"): anthropic_openai,
    ("anthropic", "gemini"): anthropic_gemini,
    # Responses clients: every backend is reached through the chat wire, except an OpenAI
    # backend with `responses: true`, which the caller passes through (proxy.responses_route).
    ("responses", "openai"): responses_chat,
    ("responses", "anthropic"): responses_anthropic,
    ("responses", "gemini"): responses_gemini,
}


def pick(front: str, backend: str) -> Translator | None:
    """The translator for a (client wire, backend wire) pair; None when they are the same."""
    if front == backend:
        return None
    found = _TABLE.get((front, backend))
    if found is None:
        raise ValueError(f"no translation from {front!r} clients to {backend!r} backends")
    return found
