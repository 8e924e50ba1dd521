"""The most a request may cost, estimated at admission (what a budget reserves for it).

``estimate = price(resolved model, input = ceil(request body bytes / bytes_per_token),
output = the body's output cap, else the route's configured default)``

- Input tokens: the decoded request body's size in bytes divided by ``bytes_per_token`` (default
  4, rounded up) — OpenAI's rule of thumb that one token is about four characters of English
  text (help.openai.com "What are tokens and how to count them"). The whole body counts (system
  prompt, tool definitions and JSON framing are billed input too, or make up for chat-template
  tokens); inline base64 images are over-counted, non-English text may be under-counted.
  ``bytes_per_token: 0`` turns the input estimate off.
- Output tokens: the request's own cap, read by its dialect (``Dialect.output_cap``) — OpenAI Chat ``max_completion_tokens`` / ``max_tokens``,
  OpenAI Responses ``max_output_tokens``, Anthropic ``max_tokens``, Gemini
  ``generationConfig.maxOutputTokens`` — a hard bound the provider enforces (reasoning tokens
  included); without one, ``output_tokens[provider]`` (else ``output_tokens["default"]``); times
  the number of choices asked for (``Dialect.choice_count``: OpenAI Chat ``n``, Gemini
  ``generationConfig.candidateCount``),
  each of which may reach the cap.
- Rates: the resolved model's (after ``auto`` routing) standard input and output rates from the
  price catalogue; cache reads are billed lower, cache writes higher than plain input.

The difference between the estimate and the priced cost is the request's estimate error; it
bounds how far a budget can be overshot (README, Budgets).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nadir_extproc.dialects.base import Dialect
from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.stats import count

def output_cap(body: dict[str, Any] | None, dialect: Dialect | None) -> int | None:
    """The request's own output-token cap (``Dialect.output_cap``: which field holds it is the
    dialect's), ``None`` when it sets none or the API is unknown."""
    return dialect.output_cap(body) if dialect is not None else None


def choices(body: dict[str, Any] | None, dialect: Dialect | None) -> int:
    """How many completions the request asks for (``Dialect.choice_count``: Chat ``n``, Gemini
    ``candidateCount``; default 1)."""
    return dialect.choice_count(body) if dialect is not None else 1


def tokens(body_bytes: int, body: dict[str, Any] | None, provider: str, cfg: Any,
           dialect: Dialect | None = None) -> tuple[int, int]:
    """(input tokens, output tokens) assumed for the estimate. ``cfg``: ``BudgetReservationSettings``;
    ``dialect``: the request's API (reads the cap and the choice count)."""
    bpt = cfg.bytes_per_token
    n_in = -(-body_bytes // bpt) if bpt else 0
    n_out = output_cap(body, dialect)
    if n_out is None:
        n_out = cfg.output_tokens.get(provider, cfg.output_tokens.get("default", 0))
    return n_in, n_out * choices(body, dialect)


def estimate_usd(provider: str, model: str | None, body_bytes: int, body: dict[str, Any] | None, cfg: Any,
                 catalogue: str | None = None, dialect: Dialect | None = None) -> Decimal:
    """The request's estimated maximum cost in USD (``Decimal``, exact): ``provider`` picks the
    route's output default, ``catalogue`` (default ``provider``) the rates. 0 when the model is
    unknown or cannot be priced (counted as ``budget_estimate_unpriced``: the request reserves
    nothing and is checked against spend and others' reservations only)."""
    n_in, n_out = tokens(body_bytes, body, provider, cfg, dialect)
    if not (n_in or n_out):
        return Decimal(0)
    if not model:
        count("budget_estimate_unpriced", "no model")
        return Decimal(0)
    cost = price(catalogue or provider, model, Usage(uncached_input_tokens=n_in, output_tokens=n_out))
    if cost.total_usd is None:
        count("budget_estimate_unpriced", cost.unpriced_reason or "unpriced")
        return Decimal(0)
    return cost.total_usd
