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
- *Rates*: ``ModelInfo.get_prices(when)`` picks the price that was in force at ``when`` (genai-prices
  keeps dated price changes, e.g. o3's cut on 2025-06-10); tiered rates ("over 200K input tokens, every
  token at the higher rate") are selected here the way genai-prices' ``calc_unit_price`` does.
- *Arithmetic* is ours (``cost.py``): genai-prices' ``calc_price`` costs ~0.2 ms per call, too slow for
  the request path, and only returns input/output/total, not the per-class breakdown we report.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache

import genai_prices
from genai_prices import types as gp

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


@dataclass(frozen=True, slots=True)
class CatalogueModel:
    """One model of the catalogue: ``provider_id`` and ``model_id`` as genai-prices names them
    (e.g. ``("openai", "gpt-4o-mini")``), and genai-prices' ``ModelInfo`` for its prices."""

    provider_id: str
    model_id: str
    info: gp.ModelInfo


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
    """

    input: Decimal | None
    cache_read: Decimal | None
    cache_write_5m: Decimal | None
    cache_write_1h: Decimal | None
    output: Decimal | None
    reasoning: Decimal | None


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
    other exact genai-prices provider id maps to itself.
    """
    key = provider.strip().lower()
    pid = PROVIDER_IDS.get(key, key)
    return pid if pid in _providers() else None


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

    Rules, in order: normalise the name (``normalise_model_ref``); ask genai-prices'
    ``Provider.find_model`` (the provider's own match rules, plus its documented fallback providers,
    e.g. ``google`` -> ``anthropic`` for Claude on Vertex, and genai-prices' compact-date retry
    ``-20251211`` -> ``-2025-12-11``); if that fails and the name ends in a snapshot date
    (``-2024-07-18``, ``-20250929``, ``@20250929``), retry once without the date, so a snapshot the
    catalogue does not list is priced as its undated alias (the result's ``model_id`` says so).
    ``Provider.find_model`` returns ``None`` for no match; it raises nothing.

    Results, misses included, are cached per exact ``(provider, model)`` (bounded LRU: model names
    come from clients).
    """
    pid = catalogue_provider_id(provider)
    if pid is None:
        return None
    catalogue_provider = _providers()[pid]
    all_providers = _all_providers()
    ref = normalise_model_ref(model)
    info = catalogue_provider.find_model(ref, all_providers=all_providers)
    if info is None and (undated := _DATE_SUFFIX.sub("", ref)) != ref:
        info = catalogue_provider.find_model(undated, all_providers=all_providers)
    if info is None:
        return None
    return CatalogueModel(provider_id=pid, model_id=info.id, info=info)


def rates(model: CatalogueModel, when: datetime, input_tokens: int) -> Rates:
    """The ``Rates`` of ``model`` in force at ``when``, for a request of ``input_tokens`` input tokens.

    ``when``: request time (naive means UTC, as in genai-prices). ``input_tokens``: all input, cache
    reads and writes included — the quantity providers compare with a long-context threshold
    (genai-prices' ``TieredPrices``: above a tier's ``start`` every token is billed at that tier's rate).
    Service-tier and batch variants (genai-prices ``price_context``) are not applied: standard prices.
    """
    sheet = _sheet(model.info.get_prices(when))
    band = bisect_left(sheet.starts, input_tokens)  # how many tier thresholds input_tokens is above
    found = sheet.rates_by_band.get(band)
    if found is None:
        found = sheet.rates_by_band[band] = _rates_from(sheet.raw, input_tokens)
    return found


_PRICE_KEYS = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "output_mtok",
    "output_reasoning_mtok",
)


@dataclass(slots=True)
class _Sheet:
    """One catalogue ``ModelPrice``, read once: its token prices, every tier threshold, and the
    ``Rates`` already worked out per band between thresholds."""

    prices: gp.ModelPrice
    raw: dict[str, Decimal | gp.TieredPrices | None]
    starts: tuple[int, ...]
    rates_by_band: dict[int, Rates]


_sheets: dict[int, _Sheet] = {}


def _sheet(prices: gp.ModelPrice) -> _Sheet:
    # Reading a key a ModelPrice lacks goes through genai-prices' __getattr__ and unit registry (~4 us
    # each). get_prices() without a price context returns the catalogue's own long-lived objects, so
    # memoising per object is bounded by the catalogue's size.
    sheet = _sheets.get(id(prices))
    if sheet is None or sheet.prices is not prices:
        raw = {key: getattr(prices, key, None) for key in _PRICE_KEYS}
        starts = sorted({t.start for v in raw.values() if isinstance(v, gp.TieredPrices) for t in v.tiers})
        sheet = _sheets[id(prices)] = _Sheet(prices, raw, tuple(starts), {})
    return sheet


def _rates_from(raw: dict[str, Decimal | gp.TieredPrices | None], input_tokens: int) -> Rates:
    def rate(key: str) -> Decimal | None:
        value = raw[key]
        if isinstance(value, gp.TieredPrices):
            chosen = value.base
            for tier in value.tiers:  # sorted ascending by genai-prices
                if input_tokens > tier.start:
                    chosen = tier.price
            return chosen
        return value

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
    )


def _first(*values: Decimal | None) -> Decimal | None:
    """The first value that is not ``None`` (a rate of 0 is a real rate, not a missing one)."""
    for value in values:
        if value is not None:
            return value
    return None
