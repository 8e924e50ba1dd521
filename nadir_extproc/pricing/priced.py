"""Priced once: one request's priced result, from one pure function (``price_request``).

The request path prices each request exactly once, when its response is known (a JSON body, a
finished stream, or a stream cut short). The ``x-nadir-*`` response headers, the in-band SSE
comment block and the opt-in in-body JSON object are three formats of that one ``Priced`` result
(``Priced.fields``, rendered by ``nadir_extproc.inband`` and ``nadir_extproc.stream``), with one
latency value: the caller formats the fields once and reuses them.

Inputs (all plain values, no I/O; rates come from ``catalogue``, the genai-prices data bundled
with the package plus the operator's price file):

- ``PriceRoute`` — the provider side: the catalogue id prices are looked up under and the
  route's savings baseline (configured model, else its routing candidates);
- ``RequestFacts`` — the request side: whether routing chose the model (else the saving is 0)
  and the shadow-routing model to price as a what-if;
- ``Billed`` — the response side, as its dialect and provider read it: served model, usage,
  service tier, batch flag, price variants, the provider's own figure, or why there is nothing
  to price.

Money is USD ``Decimal``; tokens are ints; latency is ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from nadir_extproc import headers as hn
from nadir_extproc.pricing.cost import UNKNOWN_MODEL, Cost, price, saving
from nadir_extproc.pricing.money import format_usd
from nadir_extproc.pricing.savings import baseline_cost
from nadir_extproc.pricing.usage import Usage

_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class PriceRoute:
    """The provider side of pricing.

    - ``catalogue``: the genai-prices provider id the rates are looked up under
      (``Provider.catalogue_id``: Vertex AI -> ``google``).
    - ``baseline``: the route's configured baseline model (settings ``baseline_models``), else
      ``None``; ``candidates``: the route's routing models (its tier map's values), the most
      expensive of which is the baseline when none is configured (``pricing.savings``).
    """

    catalogue: str
    baseline: str | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The request side of pricing.

    - ``routed``: routing chose the model (``model: auto``); when ``False`` the client chose it and
      the saving is exactly 0.
    - ``shadow_model``: shadow routing's choice for an explicit-model request (priced as a what-if
      on the same usage), else ``None``.
    """

    routed: bool = False
    shadow_model: str | None = None


@dataclass(frozen=True, slots=True)
class Billed:
    """The response side of pricing: what the response says about its bill, read by its dialect
    (``Dialect.response_info`` / the stream reader) and its provider (``Provider.bill``).

    - ``served``: the model that served it (the provider's report, else the model sent upstream).
    - ``usage``: normalised usage (tokens); ``None`` when there is none to price.
    - ``unpriced``: why there is nothing to price (``provider_error``, ``no_usage``, ``cut`` …),
      set while reading; ``None`` when ``usage`` is to be priced.
    - ``service_tier`` / ``batch`` / ``variant``: what selects the rates (``cost.price``).
    - ``reported_usd``: the provider's own figure (OpenRouter ``usage.cost``), USD.
    - ``partial``: the usage a stream reported before its error event (priced apart, never as
      the request's cost).
    """

    served: str | None
    usage: Usage | None = None
    unpriced: str | None = None
    service_tier: str | None = None
    batch: bool = False
    variant: Mapping[str, str] = field(default_factory=dict)
    reported_usd: Decimal | None = None
    partial: Usage | None = None


@dataclass(frozen=True, slots=True)
class Priced:
    """One request's priced result.

    - ``served`` / ``usage``: as billed.
    - ``cost``: the ``Cost`` (USD by class, rates and catalogue used), ``None`` when nothing was
      priced; ``baseline``: the baseline model's ``Cost`` for the same usage.
    - ``saved_usd``: baseline - actual (USD, signed), 0 when the client chose the model, ``None``
      when the baseline cannot be priced.
    - ``unpriced_reason``: why there is no cost (``None`` when priced).
    - ``partial_cost``: a stream that ended with an error event, priced on what it reported.
    - ``shadow_cost`` / ``opportunity_usd``: shadow routing's what-if and actual - what-if when
      positive (else 0), USD.
    """

    served: str | None
    usage: Usage | None
    cost: Cost | None = None
    baseline: Cost | None = None
    saved_usd: Decimal | None = None
    unpriced_reason: str | None = None
    partial_cost: Cost | None = None
    shadow_cost: Cost | None = None
    opportunity_usd: Decimal | None = None

    @property
    def catalogue(self) -> str | None:
        """Where the rates came from (``genai-prices 0.2.3``, ``price file …``); ``None`` unpriced."""
        return self.cost.catalogue if self.cost is not None and self.cost.total_usd is not None else None

    def fields(self, latency_ms: float) -> dict[str, str]:
        """The ``x-nadir-*`` fields (header name -> text) of this result: ``routed-to`` (when the
        served model is safe to reflect), ``cost-usd`` + ``price-source`` + ``cost-saved`` or
        ``unpriced-reason``, and ``latency-ms`` (3 decimals). The headers, the SSE comment block
        and the in-body JSON object are all this one dict."""
        out: dict[str, str] = {}
        safe = hn.safe_model(self.served)
        if safe:
            out[hn.ROUTED_TO] = safe
        cost = self.cost
        if cost is not None and cost.total_usd is not None:
            out[hn.COST] = format_usd(cost.total_usd)
            out[hn.PRICE_SOURCE] = cost.catalogue
            if self.saved_usd is not None:
                out[hn.SAVED] = format_usd(self.saved_usd)
        if self.unpriced_reason is not None:
            out[hn.UNPRICED] = self.unpriced_reason
        out[hn.LATENCY] = f"{latency_ms:.3f}"
        return out


def price_request(route: PriceRoute, request: RequestFacts, response: Billed, when: datetime | None = None) -> Priced:
    """Price one request once: its cost, baseline and saving, or why it is unpriced; the partial
    cost of a stream that failed; the shadow what-if. Pure (rates from the catalogue); never
    raises for unknown models or odd usage — those are unpriced reasons.

    ``when``: the request time whose prices apply (default now, UTC).
    """
    served, usage, unpriced = response.served, response.usage, response.unpriced
    # One request time for every price below (the actual, the baseline candidates, the shadow).
    rate_kw = {"when": when or datetime.now(UTC), "service_tier": response.service_tier, "batch": response.batch}
    cost = baseline = saved = shadow_cost = opportunity = partial = None
    if unpriced is None and served is not None and usage is not None:
        cost = price(route.catalogue, served, usage, variant=response.variant, reported_usd=response.reported_usd, **rate_kw)
        if cost.total_usd is not None:
            if not request.routed:
                saved = _ZERO  # the client chose the model: routing changed nothing
            else:
                baseline = baseline_cost(route.catalogue, usage, route.candidates, configured=route.baseline, **rate_kw)
                saved = saving(cost, baseline)
            if request.shadow_model is not None:
                # Same usage at the shadow model's rates, same tier and batch flag (no reported
                # cost, no price variants: those belong to the model that served).
                shadow_cost = price(route.catalogue, request.shadow_model, usage, **rate_kw)
                if shadow_cost.total_usd is not None:
                    opportunity = max(cost.total_usd - shadow_cost.total_usd, _ZERO)
        else:
            unpriced = cost.unpriced_reason or UNKNOWN_MODEL
    if unpriced == "stream_error" and response.partial is not None and served is not None:
        partial = price(route.catalogue, served, response.partial, variant=response.variant, **rate_kw)
    return Priced(served, usage, cost, baseline, saved, unpriced, partial, shadow_cost, opportunity)
