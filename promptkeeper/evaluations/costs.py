"""What a model call cost: tokens times the model's price.

Prices are USD per million tokens, `(input, output)`. A run may give its own (`prices` in the run
request) for models missing here or negotiated rates; a model with no known price has no cost
rather than a wrong one. A response served from the cache cost nothing.
"""

from __future__ import annotations

#: List prices of common models (USD per 1M tokens). Matched by prefix, longest first.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "local": (0.0, 0.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}


def price_of(model: str, prices: dict[str, float] | None = None) -> tuple[float, float] | None:
    """`(input, output)` USD per 1M tokens: the run's own prices, else the table, else None."""
    if prices:
        return float(prices.get("input", 0.0)), float(prices.get("output", 0.0))
    for prefix in sorted(DEFAULT_PRICES, key=len, reverse=True):
        if model.startswith(prefix):
            return DEFAULT_PRICES[prefix]
    return None


def cost_usd(
    price: tuple[float, float] | None, input_tokens: int | None, output_tokens: int | None, *, cached: bool
) -> float | None:
    if cached:
        return 0.0
    if price is None or (input_tokens is None and output_tokens is None):
        return None
    return ((input_tokens or 0) * price[0] + (output_tokens or 0) * price[1]) / 1_000_000
