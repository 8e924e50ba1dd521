"""The price catalogue: which catalogue model a (provider, model) pair is, and its rates at a moment.

Source of every price: the data bundled with ``genai-prices`` (pinned to 0.2.3 in ``pyproject.toml``),
read from ``genai_prices.data.providers``. We never use ``genai_prices.UpdatePrices`` or the snapshot it
installs, so prices never come from the network and a cost is reproducible from the version string
``CATALOGUE``.

What we take from genai-prices and what we do ourselves:

- *Model matching* is genai-prices' own per-provider match rules (``Provider.find_model``): mostly
  exact (``equals``) for OpenAI and Gemini names, ``starts_with`` for Claude snapshots and a few
  families (``gemini-2.5-pro``). We never match by substring or prefix ourselves, so ``gpt-4o-mini``
  can never resolve to ``gpt-4o``.
- *Rates*: ``ModelInfo.get_prices(when, price_context)`` picks the price that was in force at ``when``
  (genai-prices keeps dated price changes, e.g. o3's cut on 2025-06-10, and time-of-day prices, e.g.
  DeepSeek's off-peak discount) and the variant for the service tier served (``service_tier``:
  ``flex`` / ``priority`` …) or a batch result (``processing: batch``); tiered rates ("over 200K input
  tokens, every token at the higher rate") are selected here the way genai-prices' ``calc_unit_price``
  does.
- *Operator overrides* (``pricefile.py``): a price file adds models (self-hosted, OpenAI-compatible),
  replaces a model's rates, applies a negotiated discount, or maps deployment names (Azure) to models;
  installed with ``use_price_file`` and consulted by ``resolve`` before the catalogue.
- *Arithmetic* is ours (``cost.py``): genai-prices' ``calc_price`` costs ~0.2 ms per call, too slow for
  the request path, and only returns input/output/total, not the per-class breakdown we report.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping
from copy import copy
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache

import genai_prices
from genai_prices import types as gp

from nadir_extproc.pricing import corrections

CATALOGUE = f"genai-prices {genai_prices.__version__}"
"""Name and version of the catalogue every price comes from, e.g. ``"genai-prices 0.2.3"``."""

PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
}
"""Our provider ids -> genai-prices provider ids. Other exact genai-prices ids (``groq``, ``mistral`` …)
are accepted as they are; anything else is an unknown provider (no fuzzy provider matching)."""

# Leading path segments that name a vendor or an API collection, not the model:
# ``models/gemini-2.5-flash`` (Gemini API), ``anthropic/claude-…`` and ``openai/gpt-…`` (OpenRouter /
# LiteLLM style), ``publishers/google/models/gemini-…`` (Vertex AI).
_PREFIX_SEGMENTS = frozenset({"models", "publishers", "openai", "anthropic", "google", "gemini"})
# A snapshot date at the end of a model name: ``-2024-07-18``, ``-20250929``, Vertex's ``@20250929``.
_DATE_SUFFIX = re.compile(r"[-@](?:20\d{2}-\d{2}-\d{2}|20\d{6})$")


STANDARD_TIERS = frozenset({"default", "standard", "on_demand", "auto"})
"""Service-tier names that providers report for standard processing: OpenAI ``default`` (``auto``
when the request asked for it and the default served it), Anthropic and Gemini ``standard``, Groq
``on_demand``. Priced at the standard rates."""


@dataclass(frozen=True, slots=True)
class CatalogueModel:
    """One priced model: ``provider_id`` and ``model_id`` as genai-prices names them
    (e.g. ``("openai", "gpt-4o-mini")``), and genai-prices' ``ModelInfo`` for its prices.

    ``source``: where the rates come from (``CATALOGUE``, or the operator's price file).
    ``multiplier``: every rate is multiplied by it (``Decimal("0.8")`` for a negotiated 20 % discount).
    """

    provider_id: str
    model_id: str
    info: gp.ModelInfo
    source: str = CATALOGUE
    multiplier: Decimal = Decimal(1)


class VariantMissing(LookupError):
    """The request was served under a price variant the model has no rates for (``what`` is
    ``"service_tier"``, ``"batch"``, or another variant key the response reported such as
    ``"speed"`` / ``"inference_geo"`` / ``"search_context_size"``; ``value`` its value)."""

    def __init__(self, what: str, value: str) -> None:
        super().__init__(f"no {what} price {value!r}")
        self.what = what
        self.value = value


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for each billing class of ``Usage``, at one moment and input size.

    ``None`` means the catalogue has no rate for that class; tokens of that class cannot be priced.
    Fallbacks already applied (they follow genai-prices' own semantics, where a class without its own
    price is billed at its parent's rate):

    - ``cache_read``: the input rate when the model has no cache-read price (no caching discount).
    - ``cache_write_5m``: ``cache_write_5m_mtok``, else ``cache_write_mtok``, else the input rate
      (no write surcharge: gpt-4o, gpt-4.1, o-series and Gemini entries have no write price).
    - ``cache_write_1h``: ``cache_write_1h_mtok``; else the input rate when the model has no write
      surcharge at all; else ``None``. genai-prices would bill 1-hour writes at the 5-minute rate when
      only ``cache_write_mtok`` exists — an under-charge (Anthropic bills 1h at 2x input, 5m at
      1.25x) — so we refuse to price instead. In 0.2.3 every ``anthropic`` model with a write price
      has a 1h price; some Vertex-hosted Claude entries under ``google`` and the gpt-5.6+/gpt-6
      entries under ``openai`` have a write price but no 1h price.
    - ``reasoning``: ``output_reasoning_mtok`` when the catalogue has it, else the output rate
      (OpenAI, Anthropic and Gemini bill reasoning/thinking as output).
    - ``web_search``: USD per *thousand* web-search calls (``web_searches_kcount``), no fallback.
    - ``file_search`` / ``code_interpreter``: USD per thousand hosted file-search calls
      (``storage_searches_kcount``) / code executions (``code_executions_kcount``), no fallback.
    - ``request``: USD per thousand requests (``requests_kcount``, e.g. Perplexity's request fee);
      ``None`` = no per-request fee.
    - ``input_audio`` / ``input_image`` / ``input_video``: ``input_audio_mtok`` … else the input
      rate; ``output_audio`` / ``output_image``: ``output_audio_mtok`` … else the output rate
      (genai-prices: a modality without its own price is billed at its parent's).
    - ``corrections``: ids of the ``corrections`` entries that chose these rates.

    ``tier_start``: the long-context threshold (input tokens) this request is above, whose rates
    these are; ``None`` for the base rates.
    """

    input: Decimal | None
    cache_read: Decimal | None
    cache_write_5m: Decimal | None
    cache_write_1h: Decimal | None
    output: Decimal | None
    reasoning: Decimal | None
    web_search: Decimal | None = None
    tier_start: int | None = None
    file_search: Decimal | None = None
    code_interpreter: Decimal | None = None
    request: Decimal | None = None
    input_audio: Decimal | None = None
    input_image: Decimal | None = None
    input_video: Decimal | None = None
    output_audio: Decimal | None = None
    output_image: Decimal | None = None
    corrections: tuple[str, ...] = ()


@cache
def _all_providers() -> list[gp.Provider]:
    # genai_prices.data is a 1.6 MB module (~0.3 s to import): loaded on first use, or by load().
    from genai_prices.data import providers

    return providers


@cache
def _providers() -> dict[str, gp.Provider]:
    return {p.id: p for p in _all_providers()}


def load() -> None:
    """Import the catalogue data now (~0.3 s) so the first priced request does not pay for it."""
    _providers()


def catalogue_provider_id(provider: str) -> str | None:
    """The genai-prices provider id for our ``provider`` (case-insensitive), or ``None`` if unknown.

    ``"openai"``, ``"anthropic"``, ``"google"`` (and ``"gemini"``) map through ``PROVIDER_IDS``; any
    other exact genai-prices provider id, or a provider the installed price file adds models for,
    maps to itself.
    """
    key = provider.strip().lower()
    pid = PROVIDER_IDS.get(key, key)
    if pid in _providers() or (_price_file is not None and pid in _price_file.providers):
        return pid
    return None


def normalise_model_ref(model: str) -> str:
    """``model`` lower-cased, trimmed, with leading vendor/collection path segments removed.

    ``"models/gemini-2.5-flash"`` -> ``"gemini-2.5-flash"``; ``"anthropic/claude-sonnet-4-5"`` ->
    ``"claude-sonnet-4-5"``; ``"publishers/google/models/gemini-2.5-pro"`` -> ``"gemini-2.5-pro"``.
    Nothing else is rewritten.
    """
    parts = model.strip().lower().split("/")
    while len(parts) > 1 and parts[0] in _PREFIX_SEGMENTS:
        del parts[0]
    return "/".join(parts)


@lru_cache(maxsize=4096)
def resolve(provider: str, model: str) -> CatalogueModel | None:
    """The catalogue model for ``model`` as served by ``provider``, or ``None`` (unknown provider/model).

    Rules: ask genai-prices' ``Provider.find_model`` (the provider's own match rules, plus its
    documented fallback providers, e.g. ``google`` -> ``anthropic`` for Claude on Vertex, and
    genai-prices' compact-date retry ``-20251211`` -> ``-2025-12-11``) for, in order, the name as
    served (lower-cased; gateways such as OpenRouter and Groq keep a vendor prefix in their own ids),
    the name without vendor/collection prefixes (``normalise_model_ref``), and both without a
    trailing snapshot date (``-2024-07-18``, ``-20250929``, ``@20250929``), so a snapshot the catalogue
    does not list is priced as its undated alias (the result's ``model_id`` says so).
    ``Provider.find_model`` returns ``None`` for no match; it raises nothing.

    With a price file installed (``use_price_file``), first: an alias (Azure deployment name …)
    is replaced by its target; a model the file prices itself (exact name, case-insensitive) is
    returned with the file's rates; a catalogue model the file discounts gets its ``multiplier``.

    Results, misses included, are cached per exact ``(provider, model)`` (bounded LRU: model names
    come from clients); ``use_price_file`` clears the cache.
    """
    pf = _price_file
    if pf is not None:
        target = pf.aliases.get((PROVIDER_IDS.get(provider.strip().lower(), provider.strip().lower()), model.strip().lower()))
        if target is not None:
            provider, model = target
    pid = catalogue_provider_id(provider)
    if pid is None:
        return None
    ref = normalise_model_ref(model)
    if pf is not None:
        own = pf.models.get((pid, model.strip().lower())) or pf.models.get((pid, ref))
        if own is not None:
            return own
    found = resolve_in_catalogue(pid, model)
    if found is not None and pf is not None and (discount := pf.discounts.get((pid, found.model_id))) is not None:
        return CatalogueModel(found.provider_id, found.model_id, found.info, source=discount[1], multiplier=discount[0])
    return found


def resolve_in_catalogue(provider: str, model: str) -> CatalogueModel | None:
    """``resolve`` against the genai-prices catalogue alone (no price file), not cached."""
    pid = PROVIDER_IDS.get(provider.strip().lower(), provider.strip().lower())
    catalogue_provider = _providers().get(pid)
    if catalogue_provider is None:
        return None
    all_providers = _all_providers()
    info = None
    for name in _candidate_names(model):
        info = catalogue_provider.find_model(name, all_providers=all_providers)
        if info is not None:
            break
    if info is None:
        return _by_vendor_prefix(pid, model)
    return CatalogueModel(provider_id=pid, model_id=info.id, info=info)


VENDOR_PREFIXES: dict[str, str] = {
    "x-ai": "x-ai",
    "xai": "x-ai",
    "anthropic": "anthropic",
    "openai": "openai",
    "google": "google",
    "deepseek": "deepseek",
    "deepseek-ai": "deepseek",
    "mistralai": "mistral",
    "mistral": "mistral",
    "moonshotai": "moonshotai",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "z-ai": "zai",
    "zai": "zai",
}
"""Vendor prefixes gateways and resellers put on model ids (``x-ai/grok-3-mini`` on OpenRouter,
``anthropic/claude-…``) -> the genai-prices provider that lists the vendor's own models."""


def _by_vendor_prefix(pid: str, model: str) -> CatalogueModel | None:
    """A vendor-prefixed name the serving provider's catalogue lacks (``x-ai/grok-3-mini`` served
    by OpenRouter) resolves to the model it names at the vendor (``x-ai`` ``grok-3-mini``): the
    vendor's list price, which gateways such as OpenRouter pass through. ``None`` otherwise."""
    head, sep, rest = model.strip().lower().partition("/")
    vendor = VENDOR_PREFIXES.get(head)
    if not sep or vendor is None or vendor == pid or "/" in rest:
        return None
    return resolve_in_catalogue(vendor, rest)


def _candidate_names(model: str) -> list[str]:
    """Names to look up, in order: the name as served (lower-cased: OpenRouter and Groq ids keep
    their vendor prefix, ``anthropic/claude-sonnet-4.6``, ``openai/gpt-oss-120b``), then without
    vendor/collection prefixes (``normalise_model_ref``), then each without a snapshot date."""
    raw = model.strip().lower()
    ref = normalise_model_ref(model)
    names = [raw, ref, _DATE_SUFFIX.sub("", raw), _DATE_SUFFIX.sub("", ref)]
    return list(dict.fromkeys(n for n in names if n))


class PriceOverrides:
    """What an operator's price file adds to the catalogue (built by ``pricefile.load_price_file``).

    - ``models``: ``(provider id, lower-cased model name)`` -> ``CatalogueModel`` with the file's rates.
    - ``discounts``: ``(provider id, catalogue model id)`` -> ``(multiplier, source)``.
    - ``aliases``: ``(provider id, lower-cased name)`` -> ``(provider, model)`` it stands for.
    - ``providers``: provider ids the file adds models for.
    - ``source``: text for ``Cost.catalogue``, e.g. ``"price file prices.yaml"``.
    """

    def __init__(
        self,
        models: dict[tuple[str, str], CatalogueModel],
        discounts: dict[tuple[str, str], tuple[Decimal, str]],
        aliases: dict[tuple[str, str], tuple[str, str]],
        source: str,
    ) -> None:
        self.models = models
        self.discounts = discounts
        self.aliases = aliases
        self.providers = frozenset(p for p, _ in models)
        self.source = source


_price_file: PriceOverrides | None = None


def use_price_file(overrides: PriceOverrides | None) -> None:
    """Install ``overrides`` (from ``pricefile.load_price_file``) for every later ``resolve``;
    ``None`` goes back to the catalogue alone. Clears the resolution and rate caches."""
    global _price_file
    _price_file = overrides
    resolve.cache_clear()
    _sheets.clear()


def price_file() -> PriceOverrides | None:
    """The installed price-file overrides, or ``None``."""
    return _price_file


def normalise_service_tier(tier: str | None) -> str | None:
    """The service tier a response reports, as a genai-prices ``service_tier`` context value:
    ``None`` for standard processing (absent, ``STANDARD_TIERS``), else the lower-cased name
    (``"flex"``, ``"priority"``, ``"scale"`` …)."""
    if not isinstance(tier, str):
        return None
    t = tier.strip().lower()
    return None if not t or t in STANDARD_TIERS else t


def rates(
    model: CatalogueModel,
    when: datetime,
    input_tokens: int,
    *,
    service_tier: str | None = None,
    batch: bool = False,
    variant: Mapping[str, str] | None = None,
) -> Rates:
    """The ``Rates`` of ``model`` in force at ``when``, for a request of ``input_tokens`` input tokens.

    ``when``: request time (naive means UTC, as in genai-prices). ``input_tokens``: all input, cache
    reads and writes included — the quantity providers compare with a long-context threshold
    (genai-prices' ``TieredPrices``: above a tier's ``start`` every token is billed at that tier's rate;
    200,000 is below a 200,000 threshold, 200,001 above).
    ``service_tier``: the tier that served the request (``normalise_service_tier``; ``None`` = standard).
    ``batch``: the request is a batch-API result. Both select genai-prices price variants
    (``{"service_tier": …}``, ``{"processing": "batch"}``) active at ``when``; classes a variant does
    not name keep their standard rate (genai-prices' semantics).

    ``variant``: other price-variant keys the response reported with a non-standard value
    (Anthropic ``{"speed": "fast"}``, ``{"inference_geo": "us"}``, Perplexity
    ``{"search_context_size": "low"}``): each must match a catalogue variant or a
    ``corrections.PRICE_VARIANT`` entry.

    Catalogue corrections (``corrections.py``) apply here: time-of-day prices only from their
    start (``TIME_OF_DAY_START``) and variant rates the catalogue lacks (``PRICE_VARIANT``); the
    result's ``corrections`` names those that changed the rates.

    Raises ``VariantMissing`` when a non-standard tier, batch or variant was asked for and the model
    has no such variant at ``when`` (pricing it at standard rates would be wrong by its factor).
    """
    tier = normalise_service_tier(service_tier)
    info = model.info
    standard, applied = _standard_prices(model, when)
    variants: tuple[gp.PriceVariant, ...] = ()
    ctx: dict[str, str] = dict(variant or {})
    if tier is not None or batch or ctx:
        if tier is not None:
            ctx["service_tier"] = tier
        if batch:
            ctx["processing"] = "batch"
        fixes = _correction_variants(model)
        candidates = [(v, None) for v in info.price_variants or ()] + fixes
        chosen = [
            (v, cid)
            for v, cid in candidates
            if (v.constraint is None or v.constraint.active(when))
            and all(ctx.get(k) == value for k, value in v.when.items())
        ]
        variants = tuple(v for v, _ in chosen)
        applied += tuple(cid for _, cid in chosen if cid is not None)
        if tier is not None and not any("service_tier" in v.when for v in variants):
            raise VariantMissing("service_tier", tier)
        if batch and not any(v.when.get("processing") == "batch" for v in variants):
            raise VariantMissing("batch", "batch")
        for key, value in (variant or {}).items():
            if not any(v.when.get(key) == value for v in variants):
                raise VariantMissing(key, value)
    sheet = _sheet(standard, variants, model.multiplier)
    band = bisect_left(sheet.starts, input_tokens)  # how many tier thresholds input_tokens is above
    found = sheet.rates_by_band.get(band)
    if found is None:
        found = sheet.rates_by_band[band] = _rates_from(sheet.raw, input_tokens, model.multiplier)
    return replace(found, corrections=applied) if applied else found


def _standard_prices(model: CatalogueModel, when: datetime) -> tuple[gp.ModelPrice, tuple[str, ...]]:
    """The model's prices in force at ``when`` (genai-prices' own rule: the last conditional price
    whose constraint is active, else the first), with a ``TIME_OF_DAY_START`` correction: the
    catalogue's time-of-day prices count only from their start and on their weekdays. Returns the
    prices and the ids of corrections that changed the choice."""
    info = model.info
    if isinstance(info.prices, gp.ModelPrice):
        return info.prices, ()
    fix = corrections.time_of_day(model.provider_id, model.model_id)
    if fix is None or model.source != CATALOGUE:
        return info.get_prices(when), ()
    peak_ok = corrections.peak_applies(fix, when)
    chosen = info.prices[0].prices
    for cp in reversed(info.prices):
        c = cp.constraint
        if c is None or c.active(when):
            if isinstance(c, gp.TimeOfDateConstraint) and not peak_ok:
                continue
            chosen = cp.prices
            break
    catalogue_choice = info.get_prices(when)
    return chosen, (() if chosen is catalogue_choice else (fix.id,))


@cache
def _correction_variant_objects(provider_id: str, model_id: str) -> tuple[tuple[gp.PriceVariant, str], ...]:
    out = []
    for c in corrections.variants(provider_id, model_id):
        out.append((gp.PriceVariant(when=dict(c.when), prices=gp.ModelPrice(**dict(c.prices)), constraint=None), c.id))
    return tuple(out)


def _correction_variants(model: CatalogueModel) -> list[tuple[gp.PriceVariant, str | None]]:
    """``PRICE_VARIANT`` corrections of a catalogue model as genai-prices ``PriceVariant`` objects
    (built once), each with its correction id; none for price-file models."""
    if model.source != CATALOGUE and model.multiplier == 1:
        return []
    return list(_correction_variant_objects(model.provider_id, model.model_id))


#: Every rate field of a genai-prices ``ModelPrice`` (USD per million tokens ``*_mtok``, per
#: thousand calls ``*_kcount``); the price file accepts a subset (``pricefile.RATE_KEYS``).
PRICE_KEYS = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
    "output_reasoning_mtok",
    "web_searches_kcount",
    "storage_searches_kcount",
    "code_executions_kcount",
    "requests_kcount",
    "input_audio_mtok",
    "input_image_mtok",
    "input_video_mtok",
    "output_audio_mtok",
    "output_image_mtok",
)


@dataclass(slots=True)
class _Sheet:
    """One catalogue ``ModelPrice`` (with the price variants applied), read once: its token prices,
    every tier threshold, and the ``Rates`` already worked out per band between thresholds."""

    standard: gp.ModelPrice
    raw: dict[str, Decimal | gp.TieredPrices | None]
    starts: tuple[int, ...]
    rates_by_band: dict[int, Rates]


_sheets: dict[tuple[int, tuple[int, ...], Decimal], _Sheet] = {}


def _sheet(standard: gp.ModelPrice, variants: tuple[gp.PriceVariant, ...], multiplier: Decimal) -> _Sheet:
    # Reading a key a ModelPrice lacks goes through genai-prices' __getattr__ and unit registry (~4 us
    # each). get_prices() without a price context returns the catalogue's own long-lived objects, and
    # variants are catalogue objects too, so memoising per (standard, variants) is bounded by the
    # catalogue's size (get_prices(when, ctx) would return a fresh copy per call, so we lay the
    # variants over the standard prices ourselves, the way it does).
    key = (id(standard), tuple(id(v) for v in variants), multiplier)
    sheet = _sheets.get(key)
    if sheet is None or sheet.standard is not standard:
        prices = _apply_variants(standard, variants)
        raw = {key_: getattr(prices, key_, None) for key_ in PRICE_KEYS}
        starts = sorted({t.start for v in raw.values() if isinstance(v, gp.TieredPrices) for t in v.tiers})
        sheet = _sheets[key] = _Sheet(standard, raw, tuple(starts), {})
    return sheet


def _apply_variants(standard: gp.ModelPrice, variants: tuple[gp.PriceVariant, ...]) -> gp.ModelPrice:
    """``standard`` with the variants' prices laid over it, first variant winning per key — the
    same resolution as genai-prices' ``ModelInfo.get_prices(when, price_context)``."""
    if not variants:
        return standard
    overrides: dict[str, Decimal | gp.TieredPrices] = {}
    for variant in variants:
        for key, value in variant.prices.__dict__.items():
            if value is not None:
                overrides.setdefault(key, value)
    resolved = copy(standard)
    resolved.__dict__.update(overrides)
    return resolved


def _rates_from(raw: dict[str, Decimal | gp.TieredPrices | None], input_tokens: int, multiplier: Decimal) -> Rates:
    crossed: list[int] = []

    def rate(key: str) -> Decimal | None:
        value = raw[key]
        if isinstance(value, gp.TieredPrices):
            chosen = value.base
            for tier in value.tiers:  # sorted ascending by genai-prices
                if input_tokens > tier.start:
                    chosen = tier.price
                    crossed.append(tier.start)
            return chosen if multiplier == 1 else chosen * multiplier
        return value if value is None or multiplier == 1 else value * multiplier

    input_rate = rate("input_mtok")
    write = _first(rate("cache_write_5m_mtok"), rate("cache_write_mtok"))
    write_1h = rate("cache_write_1h_mtok")
    if write_1h is None and write is None:
        write_1h = input_rate
    output = rate("output_mtok")
    return Rates(
        input=input_rate,
        cache_read=_first(rate("cache_read_mtok"), input_rate),
        cache_write_5m=_first(write, input_rate),
        cache_write_1h=write_1h,
        output=output,
        reasoning=_first(rate("output_reasoning_mtok"), output),
        web_search=rate("web_searches_kcount"),
        tier_start=max(crossed) if crossed else None,
        file_search=rate("storage_searches_kcount"),
        code_interpreter=rate("code_executions_kcount"),
        request=rate("requests_kcount"),
        input_audio=_first(rate("input_audio_mtok"), input_rate),
        input_image=_first(rate("input_image_mtok"), input_rate),
        input_video=_first(rate("input_video_mtok"), input_rate),
        output_audio=_first(rate("output_audio_mtok"), output),
        output_image=_first(rate("output_image_mtok"), output),
    )


def _first(*values: Decimal | None) -> Decimal | None:
    """The first value that is not ``None`` (a rate of 0 is a real rate, not a missing one)."""
    for value in values:
        if value is not None:
            return value
    return None
