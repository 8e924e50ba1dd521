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

from nadir_extproc.pricing.catalogue import Rates
from nadir_extproc.pricing.cost import Cost, price, rates_for, saving, total_at
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

    Cost: when one candidate's rates are at least every other's in every class (the usual case: the
    strong model), it is the baseline for any usage, so it alone is priced; which candidate that is
    is remembered per set of rates (``_dominant``).
    """
    kw = {"when": when, "service_tier": service_tier, "batch": batch}
    if configured:
        return price(provider, configured, usage, **kw)
    models = tuple(dict.fromkeys(candidates))  # keep order, drop duplicates
    if len(models) > 1 and usage is not None and when is not None:
        rates = tuple(rates_for(provider, m, usage.input_tokens, when=when, service_tier=service_tier, batch=batch)
                      for m in models)
        i = _dominant(rates) if None not in rates else None
        if i is not None:
            c = price(provider, models[i], usage, **kw)
            if c.total_usd is not None:
                # An earlier candidate can only tie with it (dominated): the first on a tie wins.
                # Its total from the rates already read (``cost.total_at``) rules a tie out without
                # pricing it in full (a ``Cost`` each: ~2/3 of a request's pricing time).
                for m, r in zip(models[:i], rates[:i]):
                    t = total_at(usage, r)
                    if t is None or t < c.total_usd:
                        continue
                    e = price(provider, m, usage, **kw)
                    if e.total_usd is not None and e.total_usd >= c.total_usd:
                        return e
                return c
    best: Cost | None = None
    for model in models:
        c = price(provider, model, usage, **kw)
        if c.total_usd is not None and (best is None or c.total_usd > best.total_usd):  # type: ignore[operator]
            best = c
    return best


_RATE_FIELDS = tuple(f for f in Rates.__dataclass_fields__ if f not in ("tier_start", "corrections"))
_DOMINANT: dict[tuple[Rates, ...], int | None] = {}
_DOMINANT_MAX = 4096


def _dominates(a: Rates, b: Rates) -> bool:
    """Every class ``b`` prices, ``a`` prices at a rate at least as high (so ``a`` costs at least
    as much as ``b`` for any valid usage, and can price whatever ``b`` can)."""
    for f in _RATE_FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if y is not None and (x is None or x < y):
            return False
    return True


def _dominant(rates: tuple[Rates, ...]) -> int | None:
    """The index of the first candidate whose rates dominate every other's, else ``None``
    (remembered per tuple of rates; bounded)."""
    try:
        return _DOMINANT[rates]
    except KeyError:
        pass
    i = next((i for i, a in enumerate(rates) if all(_dominates(a, b) for j, b in enumerate(rates) if j != i)), None)
    if len(_DOMINANT) >= _DOMINANT_MAX:
        _DOMINANT.clear()
    _DOMINANT[rates] = i
    return i


#: The saving itself is ``cost.saving`` (one function); this name is kept for callers.
cost_saved = saving
