"""What a request cost, in USD: prices per million tokens, pure.

A target's `price: {input, output, cached_input}` in routes.yaml is the default;
`LLM_PROXY_PRICES` (`metrics.load_prices`: `backend/model` or `model` -> (input, output))
overrides it. Input tokens count every prompt token; the cached part of them is charged at
`cached_input` (the input price when not given). Unknown price or usage: None, never a guess.
"""

from collections.abc import Mapping

from proxy.config.governance import Price


def price_for(
    configured: Price | None,
    backend: str,
    model: str,
    overrides: Mapping[str, tuple[float, float]],
) -> Price | None:
    found = overrides.get(f"{backend}/{model}") or overrides.get(model)
    if found is not None:
        return Price(input=found[0], output=found[1])
    return configured


def cost(
    price: Price | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int = 0,
) -> float | None:
    if price is None or (input_tokens is None and output_tokens is None):
        return None
    prompt = input_tokens or 0
    cached = min(max(0, cached_tokens), prompt)
    cached_price = price.input if price.cached_input is None else price.cached_input
    micro = (prompt - cached) * price.input + cached * cached_price
    return (micro + (output_tokens or 0) * price.output) / 1e6
