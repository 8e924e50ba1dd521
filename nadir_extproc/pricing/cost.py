"""The cost of one request in USD, by billing class, and the saving against a baseline model.

Money is ``Decimal`` end to end (never ``float``): rates are genai-prices' ``Decimal`` USD per million
tokens, token counts are ints, and every product is exact. Rates come from ``catalogue.py`` (the data
bundled with genai-prices, version in ``CATALOGUE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from nadir_extproc.pricing import catalogue, corrections
from nadir_extproc.pricing.catalogue import CATALOGUE
from nadir_extproc.pricing.usage import Usage

# Why a Cost has no total. Never a total of 0 for something we could not price.
UNKNOWN_PROVIDER: Final = "unknown_provider"  # provider id not in the catalogue
UNKNOWN_MODEL: Final = "unknown_model"  # provider known, model name matches none of its models
NO_USAGE: Final = "no_usage"  # the response carried no usage block
INVALID_USAGE: Final = "invalid_usage"  # negative counts, or reasoning > output
MISSING_RATE: Final = "missing_rate"  # the catalogue has no rate for a token class this usage has
PROVIDER_ERROR: Final = "provider_error"  # set by callers: the upstream failed, nothing to price
UNKNOWN_SERVICE_TIER: Final = "unknown_service_tier"  # served tier (flex, priority …) has no rates
NO_BATCH_PRICE: Final = "no_batch_price"  # a batch result, and the model has no batch rates
UNKNOWN_PRICE_VARIANT: Final = "unknown_price_variant"  # e.g. Anthropic speed=fast: no rates for it

BREAKDOWN_KEYS: Final = ("input", "cache_read", "cache_write", "output")
"""Keys of every priced ``Cost.breakdown``. Added when present: ``"input_audio"``,
``"input_image"``, ``"input_video"``, ``"output_audio"``, ``"output_image"`` (modality parts at their
own rates; ``"input"``/``"output"`` then hold the rest), ``"web_search"``, ``"file_search"``,
``"code_interpreter"`` (per call) and ``"request_fee"`` (per request)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one request.

    - ``provider``: the catalogue's provider id (``"openai"``, ``"anthropic"``, ``"google"`` …), or the
      caller's provider string when it is unknown.
    - ``model``: the model as priced — the catalogue's model id (``"gpt-4o-mini"`` for
      ``"gpt-4o-mini-2024-07-18"``), or the normalised name when it could not be priced.
    - ``total_usd``: USD, exact; ``None`` when unpriced (see ``unpriced_reason``).
    - ``breakdown``: USD per billing class, keys ``BREAKDOWN_KEYS``: ``"input"`` (uncached input),
      ``"cache_read"``, ``"cache_write"`` (5-minute and 1-hour writes together), ``"output"``
      (reasoning included). They sum to ``total_usd``. Empty when unpriced.
    - ``unpriced_reason``: ``None`` when priced, else one of the module constants
      ``UNKNOWN_PROVIDER``, ``UNKNOWN_MODEL``, ``NO_USAGE``, ``INVALID_USAGE``, ``MISSING_RATE``,
      ``PROVIDER_ERROR``, ``UNKNOWN_SERVICE_TIER``, ``NO_BATCH_PRICE``.
    - ``catalogue``: where the rates came from, e.g. ``"genai-prices 0.2.3"`` or
      ``"price file prices.yaml"`` (operator overrides, ``pricefile.py``).
    - ``rates``: the ``catalogue.Rates`` applied (USD per MTok per class), ``None`` when unpriced
      before rates were chosen.
    - ``service_tier``: the non-standard tier priced (``"flex"``, ``"priority"`` …), ``None`` = standard.
    - ``batch``: priced at the batch rates.
    - ``variant``: other price-variant values priced (``{"search_context_size": "low"}``), or the
      one the catalogue could not price (with ``UNKNOWN_PRICE_VARIANT``).
    - ``reported_usd``: the provider's own figure for this request (OpenRouter/Perplexity
      ``usage.cost``), USD; when present it *is* ``total_usd``.
    - ``catalogue_usd``: the catalogue's figure (``breakdown`` sums to it); equals ``total_usd``
      unless the provider reported its own cost. ``disagrees`` compares the two.
    - ``corrections``: ids of the catalogue corrections applied (``corrections.py``).
    """

    provider: str
    model: str
    total_usd: Decimal | None
    breakdown: dict[str, Decimal] = field(default_factory=dict, hash=False)
    unpriced_reason: str | None = None
    catalogue: str = CATALOGUE
    rates: catalogue.Rates | None = field(default=None, compare=False)
    service_tier: str | None = None
    batch: bool = False
    variant: dict[str, str] = field(default_factory=dict, hash=False)
    reported_usd: Decimal | None = None
    catalogue_usd: Decimal | None = None
    corrections: tuple[str, ...] = ()

    @property
    def disagrees(self) -> bool:
        """The provider reported a cost and the catalogue figure differs from it."""
        return self.reported_usd is not None and self.catalogue_usd is not None and self.reported_usd != self.catalogue_usd

    @property
    def priced(self) -> bool:
        """Whether ``total_usd`` is a real price (``False`` means: unknown, not free)."""
        return self.total_usd is not None

    @classmethod
    def unpriced(cls, provider: str, model: str, reason: str) -> Cost:
        """A ``Cost`` with no total, for ``reason`` (one of the module's reason constants)."""
        return cls(provider=provider, model=model, total_usd=None, unpriced_reason=reason)


def price(
    provider: str,
    model: str,
    usage: Usage | None,
    *,
    when: datetime | None = None,
    service_tier: str | None = None,
    batch: bool = False,
    variant: Mapping[str, str] | None = None,
    reported_usd: Decimal | None = None,
) -> Cost:
    """The cost in USD of ``usage`` (tokens, normalised by a dialect) on ``model`` served by ``provider``.

    ``provider``: ``"openai"``, ``"anthropic"``, ``"google"`` (or another exact genai-prices provider
    id, or one the installed price file adds). ``model``: the model that served the request (the
    response's model, never ``"auto"``); dated snapshots and vendor prefixes are resolved by
    ``catalogue.resolve``, never by substring. ``when``: request time for dated price changes
    (default: now, UTC; naive means UTC).
    ``service_tier``: the tier the *response* says served the request (OpenAI ``service_tier``,
    Anthropic ``usage.service_tier``, Gemini ``usageMetadata.serviceTier``); ``None``, ``"default"``,
    ``"standard"``, ``"on_demand"`` mean standard rates; ``"flex"``/``"priority"`` … use the catalogue's
    variant for that tier, and a tier it has no rates for leaves the cost unpriced
    (``UNKNOWN_SERVICE_TIER``). ``batch``: the request is a batch-API result (batch rates, else
    ``NO_BATCH_PRICE``). ``variant``: other price-variant values the response reported with a
    non-standard value (the provider module decides which are standard): priced with the catalogue
    or correction variant for them, else unpriced (``UNKNOWN_PRICE_VARIANT``), never at standard.

    Each ``Usage`` class is billed at its own rate (``catalogue.Rates``), per million tokens:
    uncached input, cache reads, 5-minute and 1-hour cache writes, output; reasoning is part of
    output and is not billed again; web-search calls per thousand. Long-context tiers are chosen on
    ``usage.input_tokens`` (all input, cache included): above the threshold every token moves.

    ``reported_usd``: the provider's cost for this request (OpenRouter and Perplexity
    ``usage.cost``), USD. When given, it is the request's cost (``total_usd``): the provider's
    bill is authoritative. The catalogue figure is still computed and kept in ``catalogue_usd``
    (``None`` when the catalogue cannot price it), so a disagreement can be counted
    (``Cost.disagrees``).

    Never raises for unknown providers/models, missing or malformed usage: the result is then unpriced
    with a reason. Source of rates: ``CATALOGUE`` (genai-prices' bundled data, no network), or the
    operator's price file.
    """
    cost = _catalogue_cost(provider, model, usage, when or datetime.now(UTC), service_tier, batch, variant)
    if reported_usd is None or reported_usd < 0:
        return cost
    return replace(cost, total_usd=reported_usd, reported_usd=reported_usd, unpriced_reason=None)


def catalogue_price(provider: str, model: str, usage: Usage | None, **kw: Any) -> Cost:
    """``price`` without a provider-reported figure: the catalogue's cost alone (same arguments
    but ``reported_usd``, which is ignored)."""
    kw.pop("reported_usd", None)
    return price(provider, model, usage, **kw)


def _resolve(provider: str, model: str, when: datetime) -> tuple[str, str, catalogue.CatalogueModel | None, tuple[str, ...]]:
    """``(provider, model, catalogue entry or None, corrections applied)`` after a redirect
    correction (``corrections.redirect``: retired aliases, gateway model names)."""
    pid0 = catalogue.catalogue_provider_id(provider)
    fix = corrections.redirect(pid0, model, when) if pid0 is not None else None
    if fix is not None and fix.target is not None:
        provider, model = fix.target
        return provider, model, catalogue.resolve(provider, model), (fix.id,)
    return provider, model, catalogue.resolve(provider, model), ()


def rates_for(provider: str, model: str, input_tokens: int, *, when: datetime, service_tier: str | None = None,
              batch: bool = False) -> catalogue.Rates | None:
    """The ``Rates`` ``price`` applies to ``model`` (no price variants) for a request of
    ``input_tokens`` input tokens at ``when``; ``None`` when it cannot price it (unknown
    provider or model, no rates for that service tier or batch)."""
    _, _, entry, _ = _resolve(provider, model, when)
    if entry is None:
        return None
    try:
        return catalogue.rates(entry, when, input_tokens, service_tier=catalogue.normalise_service_tier(service_tier),
                               batch=batch)
    except catalogue.VariantMissing:
        return None


def _catalogue_cost(provider: str, model: str, usage: Usage | None, when: datetime, service_tier: str | None,
                    batch: bool, variant: Mapping[str, str] | None) -> Cost:
    """The catalogue's ``Cost`` (``price`` without the reported figure)."""
    provider, model, entry, applied = _resolve(provider, model, when)
    if entry is None:
        provider_id = catalogue.catalogue_provider_id(provider)
        if provider_id is None:
            return Cost.unpriced(provider, model, UNKNOWN_PROVIDER)
        return Cost.unpriced(provider_id, catalogue.normalise_model_ref(model), UNKNOWN_MODEL)
    if usage is None:
        return Cost.unpriced(entry.provider_id, entry.model_id, NO_USAGE)
    if not _valid(usage):
        return Cost.unpriced(entry.provider_id, entry.model_id, INVALID_USAGE)

    tier = catalogue.normalise_service_tier(service_tier)
    var = dict(variant or {})
    try:
        r = catalogue.rates(entry, when, usage.input_tokens, service_tier=tier, batch=batch, variant=var)
    except catalogue.VariantMissing as e:
        reason = {"service_tier": UNKNOWN_SERVICE_TIER, "batch": NO_BATCH_PRICE}.get(e.what, UNKNOWN_PRICE_VARIANT)
        return Cost(entry.provider_id, entry.model_id, None, {}, reason, entry.source, None, tier, batch,
                    variant={e.what: e.value} if reason == UNKNOWN_PRICE_VARIANT else var, corrections=applied)
    applied += r.corrections
    try:
        breakdown = _breakdown(usage, r)
    except _MissingRate:
        return Cost(entry.provider_id, entry.model_id, None, {}, MISSING_RATE, entry.source, r, tier, batch,
                    variant=var, corrections=applied)
    total = sum(breakdown.values(), Decimal(0))
    return Cost(
        provider=entry.provider_id,
        model=entry.model_id,
        total_usd=total,
        breakdown=breakdown,
        catalogue=entry.source,
        rates=r,
        service_tier=tier,
        batch=batch,
        variant=var,
        catalogue_usd=total,
        corrections=applied,
    )


def _breakdown(usage: Usage, r: catalogue.Rates) -> dict[str, Decimal]:
    """USD per billing class (``BREAKDOWN_KEYS`` plus the optional keys); raises ``_MissingRate``
    when a class with tokens or calls has no rate."""
    text_in = usage.uncached_input_tokens - usage.input_audio_tokens - usage.input_image_tokens - usage.input_video_tokens
    plain_out = usage.output_tokens - usage.reasoning_tokens - usage.output_audio_tokens - usage.output_image_tokens
    breakdown = {
        "input": _tokens_usd(text_in, r.input),
        "cache_read": _tokens_usd(usage.cache_read_tokens, r.cache_read),
        "cache_write": _tokens_usd(usage.cache_write_tokens, r.cache_write_5m) + _tokens_usd(usage.cache_write_1h_tokens, r.cache_write_1h),
        "output": _tokens_usd(plain_out, r.output) + _tokens_usd(usage.reasoning_tokens, r.reasoning),
    }
    for key, tokens, rate in (
        ("input_audio", usage.input_audio_tokens, r.input_audio),
        ("input_image", usage.input_image_tokens, r.input_image),
        ("input_video", usage.input_video_tokens, r.input_video),
        ("output_audio", usage.output_audio_tokens, r.output_audio),
        ("output_image", usage.output_image_tokens, r.output_image),
    ):
        if tokens:
            breakdown[key] = _tokens_usd(tokens, rate)
    # *_kcount rates are USD per thousand calls.
    for key, calls, rate in (
        ("web_search", usage.web_search_requests, r.web_search),
        ("file_search", usage.file_search_calls, r.file_search),
        ("code_interpreter", usage.code_interpreter_calls, r.code_interpreter),
    ):
        if calls:
            breakdown[key] = _tokens_usd(calls * 1000, rate)
    if r.request is not None:
        breakdown["request_fee"] = r.request.scaleb(-3)
    return breakdown


def total_at(usage: Usage, r: catalogue.Rates) -> Decimal | None:
    """``usage`` priced at rates ``r``: the USD total ``price`` reports for them (the sum of
    ``_breakdown``), with no ``Cost`` built; ``None`` when a class with tokens or calls has no
    rate (``price`` then says ``missing_rate``). Used by ``pricing.savings`` to rule out a tie
    between baseline candidates from rates it has already read."""
    try:
        return sum(_breakdown(usage, r).values(), _ZERO)
    except _MissingRate:
        return None


def saving(actual: Cost, baseline: Cost | None) -> Decimal | None:
    """USD saved by ``actual`` against ``baseline`` (``baseline.total_usd - actual.total_usd``):
    the one savings function (``pricing.savings`` defines the baseline).

    Negative when the actual request cost more. ``None`` unless both are priced (or without a
    baseline).
    """
    if baseline is None or actual.total_usd is None or baseline.total_usd is None:
        return None
    return baseline.total_usd - actual.total_usd


class _MissingRate(Exception):
    pass


_ZERO = Decimal(0)


def _tokens_usd(tokens: int, rate_per_mtok: Decimal | None) -> Decimal:
    """``tokens`` x ``rate_per_mtok`` (USD per million tokens), exact."""
    if not tokens:
        return _ZERO
    if rate_per_mtok is None:
        raise _MissingRate
    return (rate_per_mtok * tokens).scaleb(-6)


def _valid(u: Usage) -> bool:
    return (
        min(
            u.uncached_input_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.cache_write_1h_tokens,
            u.output_tokens,
            u.reasoning_tokens,
            u.web_search_requests,
            u.file_search_calls,
            u.code_interpreter_calls,
            u.input_audio_tokens,
            u.input_image_tokens,
            u.input_video_tokens,
            u.output_audio_tokens,
            u.output_image_tokens,
        )
        >= 0
        and u.reasoning_tokens + u.output_audio_tokens + u.output_image_tokens <= u.output_tokens
        and u.input_audio_tokens + u.input_image_tokens + u.input_video_tokens <= u.uncached_input_tokens
    )
