"""The price table: USD per million tokens, per model, versioned.

Costs are computed from provider-reported usage. A model the table does not know has a cost of
None (unknown), never 0. Dated and regional variants (gpt-4o-mini-2024-07-18,
us.anthropic.claude-3-5-sonnet-20241022-v2:0) match their family by the longest known prefix.
Prices are list prices as published by the providers for the version date; operators with
negotiated prices should treat costs as estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from parley.domain.chat import Usage

PRICE_VERSION = "2026-11-01"


@dataclass(frozen=True)
class Price:
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None  # None: cached tokens cost the input price


def _p(inp: str, out: str, cached: str | None = None) -> Price:
    return Price(Decimal(inp), Decimal(out), Decimal(cached) if cached is not None else None)


PRICES: dict[str, Price] = {
    "echo": _p("0", "0"),
    # OpenAI
    "gpt-4o": _p("2.50", "10.00", "1.25"),
    "gpt-4o-mini": _p("0.15", "0.60", "0.075"),
    "gpt-4.1": _p("2.00", "8.00", "0.50"),
    "gpt-4.1-mini": _p("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": _p("0.10", "0.40", "0.025"),
    "o3-mini": _p("1.10", "4.40", "0.55"),
    "o4-mini": _p("1.10", "4.40", "0.275"),
    # Anthropic (direct and on Bedrock)
    "claude-3-5-haiku": _p("0.80", "4.00", "0.08"),
    "claude-3-5-sonnet": _p("3.00", "15.00", "0.30"),
    "claude-3-7-sonnet": _p("3.00", "15.00", "0.30"),
    "claude-sonnet-4": _p("3.00", "15.00", "0.30"),
    "claude-opus-4": _p("15.00", "75.00", "1.50"),
    # Amazon Nova on Bedrock
    "amazon.nova-micro": _p("0.035", "0.14"),
    "amazon.nova-lite": _p("0.06", "0.24"),
    "amazon.nova-pro": _p("0.80", "3.20"),
    # Embeddings (input only). `local` is Parley's built-in local model (free).
    # OpenAI's pricing page, as of 2026-11-01: text-embedding-3-small $0.02, -3-large $0.13, ada-002 $0.10 per 1M.
    "local": _p("0", "0"),
    "text-embedding-3-small": _p("0.02", "0"),
    "text-embedding-3-large": _p("0.13", "0"),
    "text-embedding-ada-002": _p("0.10", "0"),
    # Amazon Bedrock pricing page (on-demand, us-east-1), as of 2026-11-01: Titan Text Embeddings V2
    # $0.00002 and Cohere Embed v3 (English, Multilingual) $0.0001 per 1,000 input tokens.
    "amazon.titan-embed-text-v2": _p("0.02", "0"),
    "cohere.embed-english-v3": _p("0.10", "0"),
    "cohere.embed-multilingual-v3": _p("0.10", "0"),
}
_BEDROCK_PREFIXES = ("us.", "eu.", "apac.", "global.", "anthropic.")


def price_for(model: str) -> Price | None:
    name = model.rsplit("/", 1)[-1] if "/" in model and not model.startswith(("amazon.", "cohere.")) else model
    candidates = [name]
    stripped = name
    for prefix in _BEDROCK_PREFIXES:
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix) :]
            candidates.append(stripped)
    best: str | None = None
    for candidate in candidates:
        for known in PRICES:
            if (candidate == known or candidate.startswith(known + "-") or candidate.startswith(known + ":")) and (
                best is None or len(known) > len(best)
            ):
                best = known
    return PRICES[best] if best is not None else None


def cost_usd(model: str, usage: Usage) -> Decimal | None:
    price = price_for(model)
    if price is None:
        return None
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    cached = min(cached, usage.prompt_tokens)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    total = (
        Decimal(usage.prompt_tokens - cached) * price.input
        + Decimal(cached) * cached_price
        + Decimal(usage.completion_tokens) * price.output
    )
    return total / Decimal(1_000_000)
