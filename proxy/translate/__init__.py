"""Protocol translation between the wire a client speaks and the wire its backend speaks.

One module per direction, named `{front}_{backend}.py`, each exposing `request`, `response`,
`error` and `Stream` (see `common.Translator`). All of them are pure: no asyncio, aiohttp or
litestar, no clock, environment or randomness; ids and timestamps come in as arguments. What
they share lives in `common`; this package is the registry: `pick` gives the translator for a
(client wire, backend wire) pair.
"""

from proxy.translate import (
    anthropic_gemini,
    anthropic_ollama,
    anthropic_openai,
    openai_anthropic,
    openai_gemini,
    openai_http,
    openai_ollama,
    responses_anthropic,
    responses_chat,
    responses_gemini,
)
from proxy.translate.common import (
    StreamTranslator,
    TranslationError,
    Translator,
)
from proxy.translate.compose import Composed

__all__ = ["StreamTranslator", "TranslationError", "Translator", "choose", "error", "pick"]

_TABLE: dict[tuple[str, str], Translator] = {
    ("openai", "anthropic"): openai_anthropic,
    ("openai", "gemini"): openai_gemini,
    ("anthropic", "openai"): anthropic_openai,
    ("anthropic", "gemini"): anthropic_gemini,
    ("openai", "ollama"): openai_ollama,
    ("anthropic", "ollama"): anthropic_ollama,
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


def choose(front: str, wire: str, own: Translator | None) -> Translator | None:
    """The translator for a client on a backend: the backend's `own` when its mapping is
    configuration (`Adapter.translator`, type: http; OpenAI-front, so Anthropic clients get
    it composed), else `pick(front, wire)`."""
    if own is None:
        return pick(front, wire)
    if front == "openai":
        return own
    if front == "anthropic":
        return Composed(own)
    raise ValueError(f"no translation from {front!r} clients to this backend")


def error(front: str, wire: str, status: int, body: bytes) -> bytes | None:
    """An upstream error body in the client's protocol; None when the protocols are the same.
    `type: http` errors need no template (any error shape is read), so none is asked for."""
    if front == wire:
        return None
    if wire == "http":
        out = openai_http.error(status, body)
        return out if front == "openai" else anthropic_openai.error(status, out)
    found = pick(front, wire)
    return found.error(status, body) if found is not None else None
