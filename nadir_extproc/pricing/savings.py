"""The saving of one request, and the baseline it is measured against.

Definition (what ``x-nadir-cost-saved`` and ``nadir-extproc cost`` report)::

    cost_saved = cost(the same usage on the baseline model) - actual cost      (USD, signed)

- *Same usage*: the token counts the provider reported for the request actually served (every
  class: uncached input, cache reads and writes, output with reasoning), at the same request time,
  service tier and batch flag. It is a counterfactual at equal tokens: another model would have
  tokenised and answered differently, which no one can know.
- *Baseline model*: configured per route (settings ``baseline_models``: provider -> model);
  by default the **most expensive** of that route's routing candidates (the provider's tier
  models) for this very usage, so the saving is what routing avoided paying compared with always
  sending the request to the priciest candidate.
- Negative when the routed model cost more than the baseline; ``None`` (not 0) when either side
  cannot be priced.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from nadir_extproc.pricing.cost import Cost, price, saving
from nadir_extproc.pricing.usage import Usage


def baseline_cost(
    provider: str,
    usage: Usage | None,
    candidates: Iterable[str],
    *,
    configured: str | None = None,
    when: datetime | None = None,
    service_tier: str | None = None,
    batch: bool = False,
) -> Cost | None:
    """The cost of ``usage`` on the baseline model of a route.

    ``configured``: the route's baseline model when the operator set one (it is priced even if it is
    not a candidate). Otherwise every model in ``candidates`` (the route's routing candidates, e.g.
    ``tiers[provider].values()``) is priced and the most expensive priced one is the baseline (the
    first such candidate on a tie). Returns ``None`` when no candidate can be priced (the configured
    baseline's ``Cost`` is returned even when unpriced, so its reason can be reported).
    """
    kw = {"when": when, "service_tier": service_tier, "batch": batch}
    if configured:
        return price(provider, configured, usage, **kw)
    best: Cost | None = None
    for model in dict.fromkeys(candidates):  # keep order, drop duplicates
        c = price(provider, model, usage, **kw)
        if c.total_usd is not None and (best is None or c.total_usd > best.total_usd):  # type: ignore[operator]
            best = c
    return best


#: The saving itself is ``cost.saving`` (one function); this name is kept for callers.
cost_saved = saving
