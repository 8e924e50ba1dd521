"""OpenRouter (openrouter.ai/api/v1): a gateway over many vendors, OpenAI Chat Completions.

Model ids carry the vendor (``anthropic/claude-sonnet-4.6``, ``x-ai/grok-3-mini``); an id the
catalogue's openrouter provider lacks resolves to the vendor's model
(``nadir_extproc.pricing.catalogue.VENDOR_PREFIXES``). Every response reports OpenRouter's own
charge in ``usage.cost`` (credits, 1 credit = 1 USD), which is what the request cost. Source:
OpenRouter docs, "Usage Accounting" (https://openrouter.ai/docs/use-cases/usage-accounting):
"Cost in credits", included in every response and in the last SSE message of a stream; recorded
response 45 (``"cost": 0.00219855``). Cache writes are reported as
``prompt_tokens_details.cache_write_tokens`` (read by the Chat dialect).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from nadir_extproc.providers.common import usd


def reported_cost(body: Mapping[str, Any]) -> Decimal | None:
    """``usage.cost`` (USD) as an exact ``Decimal``; ``None`` when absent or not a number."""
    u = body.get("usage")
    return usd(u.get("cost")) if isinstance(u, Mapping) else None
