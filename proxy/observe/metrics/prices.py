"""Estimated cost of a request: USD per million tokens per model, from `LLM_PROXY_PRICES`.

The table is loaded once per process (`set_prices`, from telemetry's configure); a price that
is unknown or unreadable is never guessed: the cost stays None.
"""

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from proxy.record import RequestRecord

log = logging.getLogger("llm_proxy.metrics")

_prices: dict[str, tuple[float, float]] = {}  # model -> USD per million (input, output) tokens


def load_prices(env: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """`LLM_PROXY_PRICES`: inline JSON or a JSON file path, `{"model": [in, out]}` or
    `{"model": {"input": x, "output": y}}`, USD per million tokens; keys may be `backend/model`.
    """
    value = env.get("LLM_PROXY_PRICES", "").strip()
    if not value:
        return {}
    try:
        raw = json.loads(value if value.startswith("{") else Path(value).read_text("utf-8"))
        prices: dict[str, tuple[float, float]] = {}
        for model, price in raw.items():
            pin, pout = (price["input"], price["output"]) if isinstance(price, dict) else price
            prices[str(model)] = (float(pin), float(pout))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("LLM_PROXY_PRICES ignored (%s): costs are not reported", exc)
        return {}
    return prices


def set_prices(env: Mapping[str, str]) -> None:
    global _prices
    _prices = load_prices(env)


def cost_of(rec: RequestRecord) -> float | None:
    """USD for the request's tokens; None when usage or the model's price is unknown."""
    if not _prices or (rec.tokens_in is None and rec.tokens_out is None):
        return None
    model = rec.provider_model or rec.alias or ""
    price = _prices.get(f"{rec.backend}/{model}") or _prices.get(model)
    if price is None:
        return None
    return ((rec.tokens_in or 0) * price[0] + (rec.tokens_out or 0) * price[1]) / 1e6
