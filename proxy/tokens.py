"""A token estimate for `/v1/messages/count_tokens` when no backend can count for us.

Anthropic backends answer count_tokens themselves (passed through); for every other backend
there is no counting endpoint, so the gateway estimates from the text: about four characters
per token, the usual rule of thumb for English with BPE tokenizers. The answer says so in an
`x-proxy-estimate: true` header.
"""

from typing import Any

import msgspec

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _text(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text(v) for v in value)
    if isinstance(value, dict):
        return sum(_text(v) for k, v in value.items() if k not in ("type", "id", "cache_control"))
    return 0


def estimate_input_tokens(body: bytes) -> int:
    req = _decode(body)
    chars = _text(req.get("system")) + _text(req.get("messages")) + _text(req.get("tools"))
    return max(1, (chars + 3) // 4)
