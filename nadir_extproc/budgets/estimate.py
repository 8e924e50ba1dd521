"""The most a request may cost, estimated at admission (what a budget reserves for it).

``estimate = price(resolved model, input = ceil(request body bytes / bytes_per_token),
output = the body's output cap, else the route's configured default)``

- Input tokens: the decoded request body's size in bytes divided by ``bytes_per_token`` (default
  4, rounded up) — OpenAI's rule of thumb that one token is about four characters of English
  text (help.openai.com "What are tokens and how to count them"). The whole body counts (system
  prompt, tool definitions and JSON framing are billed input too, or make up for chat-template
  tokens); inline base64 images are over-counted, non-English text may be under-counted.
  ``bytes_per_token: 0`` turns the input estimate off.
- Output tokens: the request's own cap — OpenAI Chat ``max_completion_tokens`` / ``max_tokens``,
  OpenAI Responses ``max_output_tokens``, Anthropic ``max_tokens``, Gemini
  ``generationConfig.maxOutputTokens`` — a hard bound the provider enforces (reasoning tokens
  included); without one, ``output_tokens[provider]`` (else ``output_tokens["default"]``); times
  the number of choices asked for (OpenAI Chat ``n``, Gemini ``generationConfig.candidateCount``),
  each of which may reach the cap.
- Rates: the resolved model's (after ``auto`` routing) standard input and output rates from the
  price catalogue; cache reads are billed lower, cache writes higher than plain input.

The difference between the estimate and the priced cost is the request's estimate error; it
bounds how far a budget can be overshot (README, Budgets).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.stats import count

#: Output-cap fields of the dialects' request bodies (top level), in order of precedence.
_TOP_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_GEMINI_CONFIG = ("generationConfig", "generation_config")
_GEMINI_CAPS = ("maxOutputTokens", "max_output_tokens")


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def output_cap(body: dict[str, Any] | None) -> int | None:
    """The request's own output-token cap (see module docstring), ``None`` when it sets none."""
    if not isinstance(body, dict):
        return None
    for k in _TOP_CAPS:
        n = _int(body.get(k))
        if n is not None:
            return n
    for c in _GEMINI_CONFIG:
        cfg = body.get(c)
        if isinstance(cfg, dict):
            for k in _GEMINI_CAPS:
                n = _int(cfg.get(k))
                if n is not None:
                    return n
    return None


def choices(body: dict[str, Any] | None) -> int:
    """How many completions the request asks for (``n`` / ``candidateCount``; default 1)."""
    if not isinstance(body, dict):
        return 1
    n = _int(body.get("n"))
    if n is None:
        for c in _GEMINI_CONFIG:
            cfg = body.get(c)
            if isinstance(cfg, dict):
                n = _int(cfg.get("candidateCount", cfg.get("candidate_count")))
                if n is not None:
                    break
    return n if n else 1


def tokens(body_bytes: int, body: dict[str, Any] | None, provider: str, cfg: Any) -> tuple[int, int]:
    """(input tokens, output tokens) assumed for the estimate. ``cfg``: ``BudgetReservationSettings``."""
    bpt = cfg.bytes_per_token
    n_in = -(-body_bytes // bpt) if bpt else 0
    n_out = output_cap(body)
    if n_out is None:
        n_out = cfg.output_tokens.get(provider, cfg.output_tokens.get("default", 0))
    return n_in, n_out * choices(body)


def estimate_usd(provider: str, model: str | None, body_bytes: int, body: dict[str, Any] | None, cfg: Any,
                 catalogue: str | None = None) -> Decimal:
    """The request's estimated maximum cost in USD (``Decimal``, exact): ``provider`` picks the
    route's output default, ``catalogue`` (default ``provider``) the rates. 0 when the model is
    unknown or cannot be priced (counted as ``budget_estimate_unpriced``: the request reserves
    nothing and is checked against spend and others' reservations only)."""
    n_in, n_out = tokens(body_bytes, body, provider, cfg)
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
