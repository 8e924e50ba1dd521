"""Perplexity (api.perplexity.ai): Sonar models over OpenAI Chat Completions.

Billed beyond tokens (shared case 39): a per-request fee by ``search_context_size`` (per 1000
requests: sonar $5 / $8 / $12, sonar-pro and sonar-reasoning-pro $6 / $10 / $14 for low / medium /
high). The response reports the size in ``usage.search_context_size`` and Perplexity's own bill in
``usage.cost`` (``input_tokens_cost``, ``output_tokens_cost``, ``request_cost``, ``total_cost``,
USD). Sources: Perplexity pricing (https://docs.perplexity.ai/getting-started/pricing;
https://perplexity.mintlify.app/guides/models/sonar) and the response in case 39. The catalogue has
one flat fee per model; the fee by size is a catalogue correction
(``nadir_extproc.pricing.corrections``, ``perplexity-*-request-fee-*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from nadir_extproc.providers.common import usd


def reported_cost(body: Mapping[str, Any]) -> Decimal | None:
    """``usage.cost.total_cost`` (USD) as an exact ``Decimal``; ``None`` when absent or not a number."""
    u = body.get("usage")
    c = u.get("cost") if isinstance(u, Mapping) else None
    return usd(c.get("total_cost")) if isinstance(c, Mapping) else None


def price_variant(body: Mapping[str, Any], request: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"search_context_size": size}`` from the response's ``usage.search_context_size``, else
    the request's ``web_search_options.search_context_size``; ``{}`` when neither says (the
    catalogue's own fee then applies)."""
    u = body.get("usage")
    size = u.get("search_context_size") if isinstance(u, Mapping) else None
    if not isinstance(size, str) and isinstance(request, Mapping):
        wso = request.get("web_search_options")
        size = wso.get("search_context_size") if isinstance(wso, Mapping) else None
    return {"search_context_size": size.strip().lower()} if isinstance(size, str) and size.strip() else {}
