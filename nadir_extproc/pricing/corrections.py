"""Catalogue corrections: where the pinned genai-prices catalogue (0.2.3) is wrong, and what we price
instead. Data with sources, read by pure functions; ``catalogue.py`` and ``cost.py`` apply them and
every ``Cost`` names the corrections it used (``Cost.corrections``; ``nadir-extproc cost`` prints
them).

Each ``Correction`` carries its ``source`` (the provider's own page, or the upstream catalogue
report), the ``test`` that proves it, and ``remove_when``: the condition under which the catalogue
is right again and the entry must go (each is checked against the pinned version by
``tests/pricing/test_corrections.py``, which fails when a correction no longer changes anything).

Kinds:

- ``TIME_OF_DAY_START``: the catalogue's time-of-day prices (genai-prices ``TimeOfDateConstraint``)
  carry no start date, so peak rates apply to dates before peak pricing existed, and on every day
  of the week. The correction makes those entries active only from ``start`` (UTC) and on
  ``weekdays`` (0 = Monday).
- ``LATEST_ALIAS``: a ``-latest`` alias matched to a retired model's entry; from ``start`` the
  provider serves (and bills) ``target`` instead.
- ``GATEWAY_MODEL``: a gateway's model id missing from the catalogue, priced as ``target``
  ``(provider, model)`` whose list price the gateway charges (source says so).
- ``PRICE_VARIANT``: rates that depend on a request option the response reports (``when``, e.g.
  Perplexity ``search_context_size``) where the catalogue has one flat rate; applied like a
  genai-prices ``PriceVariant`` (classes it names replace the standard ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

TIME_OF_DAY_START: Final = "time_of_day_start"
LATEST_ALIAS: Final = "latest_alias"
GATEWAY_MODEL: Final = "gateway_model"
PRICE_VARIANT: Final = "price_variant"

WEEKDAYS: Final = frozenset(range(5))
"""Monday to Friday (``datetime.weekday()`` 0-4)."""


@dataclass(frozen=True, slots=True)
class Correction:
    """One correction of the catalogue (see the module docstring for the kinds).

    ``provider``: genai-prices provider id. ``models``: catalogue model ids it applies to
    (``TIME_OF_DAY_START``, ``PRICE_VARIANT``) or lower-cased served names (``LATEST_ALIAS``,
    ``GATEWAY_MODEL``). ``start``: UTC instant from which it applies (``None`` = always).
    ``target``: ``(provider, model)`` to price instead. ``weekdays``: days peak prices apply on.
    ``when`` / ``prices``: the variant's condition and its USD rates by genai-prices price key
    (``requests_kcount``: USD per 1000 requests).
    """

    id: str
    kind: str
    provider: str
    models: tuple[str, ...]
    source: str
    test: str
    remove_when: str
    start: datetime | None = None
    target: tuple[str, str] | None = None
    weekdays: frozenset[int] = WEEKDAYS
    when: tuple[tuple[str, str], ...] = ()
    prices: tuple[tuple[str, Decimal], ...] = field(default=())


def _perplexity_fees(model: str, low: str, medium: str, high: str) -> list[Correction]:
    return [
        Correction(
            id=f"perplexity-{model}-request-fee-{size}",
            kind=PRICE_VARIANT,
            provider="perplexity",
            models=(model,),
            source="Perplexity pricing, request fees per 1000 requests by search_context_size "
            "(https://docs.perplexity.ai/getting-started/pricing; "
            "https://perplexity.mintlify.app/guides/models/sonar): sonar $5/$8/$12, "
            "sonar-pro and sonar-reasoning-pro $6/$10/$14 (low/medium/high)",
            test="tests/pricing/test_corrections.py::test_perplexity_request_fee_by_search_context_size",
            remove_when="genai-prices prices perplexity requests by search_context_size "
            "(0.2.3 has one flat requests_kcount, the high-context fee)",
            when=(("search_context_size", size),),
            prices=(("requests_kcount", Decimal(fee)),),
        )
        for size, fee in (("low", low), ("medium", medium), ("high", high))
    ]


def _deepseek_peak_start(cid: str, models: tuple[str, ...], start: datetime) -> Correction:
    """A DeepSeek time-of-day correction: peak rates only from ``start`` (UTC), on weekdays."""
    return Correction(
        id=cid,
        kind=TIME_OF_DAY_START,
        provider="deepseek",
        models=models,
        source=_DEEPSEEK_SOURCE,
        test="tests/pricing/test_corrections.py::test_deepseek_peak_rates_only_from_their_start_and_on_weekdays",
        remove_when=f"the {' / '.join(models)} time-of-day prices carry a start date and a weekday rule",
        start=start,
    )


_DEEPSEEK_SOURCE = (
    "DeepSeek Models & Pricing (https://api-docs.deepseek.com/quick_start/pricing): peak hours "
    "01:00-04:00 and 06:00-10:00 UTC, Monday through Friday, peak = 2x off-peak, since 2026-08-16; "
    "the catalogue's own report: pydantic/genai-prices PR #581 (time-of-day prices without a start "
    "date apply peak rates before the peak tariff existed)"
)

CORRECTIONS: Final[tuple[Correction, ...]] = (
    # -- time-of-day prices without a start date ------------------------------------------------
    # v4-pro: the catalogue's peak 1.32/3.96 is 2x the 2026-08-17 off-peak 0.66/1.98.
    _deepseek_peak_start("deepseek-v4-pro-peak-start", ("deepseek-v4-pro",), datetime(2026, 8, 17, tzinfo=UTC)),
    # v4-flash / deepseek-flash: peak 0.3/1.2 is 2x the 2026-09-10 off-peak 0.15/0.6.
    _deepseek_peak_start("deepseek-flash-peak-start", ("deepseek-v4-flash", "deepseek-flash"),
                         datetime(2026, 9, 10, tzinfo=UTC)),
    # -- -latest aliases of retired models ------------------------------------------------------
    Correction(
        id="xai-retired-latest-aliases",
        kind=LATEST_ALIAS,
        provider="x-ai",
        models=("grok-3-latest", "grok-3-mini-latest", "grok-3-fast-latest", "grok-3-mini-fast-latest", "grok-4-latest"),
        source="xAI May 15 2026 retirement notice (https://docs.x.ai/developers/migration/may-15-retirement): "
        "requests to the retired grok-3 / grok-3-mini / grok-3-fast / grok-3-mini-fast / grok-4 slugs and "
        "their -latest aliases are served by grok-4.3 and billed at grok-4.3 pricing from 2026-05-15 "
        "(quoted in anomalyco/models.dev PR #1790)",
        test="tests/pricing/test_corrections.py::test_retired_xai_latest_alias_priced_as_its_redirect",
        remove_when="genai-prices matches these -latest aliases to grok-4.3 from 2026-05-15",
        start=datetime(2026, 5, 15, 19, 0, tzinfo=UTC),  # 12:00 PT
        target=("x-ai", "grok-4.3"),
    ),
    # -- gateway ids missing from the catalogue -------------------------------------------------
    Correction(
        id="openrouter-x-ai-grok-3-mini",
        kind=GATEWAY_MODEL,
        provider="openrouter",
        models=("x-ai/grok-3-mini",),
        source="OpenRouter model page https://openrouter.ai/x-ai/grok-3-mini: $0.30/M input, "
        "$0.50/M output, the xAI list price",
        test="tests/pricing/test_corrections.py::test_gateway_id_missing_from_the_catalogue",
        remove_when="genai-prices' openrouter provider lists x-ai/grok-3-mini",
        target=("x-ai", "grok-3-mini"),
    ),
    # -- request fees by search context size ----------------------------------------------------
    *_perplexity_fees("sonar", "5", "8", "12"),
    *_perplexity_fees("sonar-pro", "6", "10", "14"),
    *_perplexity_fees("sonar-reasoning-pro", "6", "10", "14"),
)
"""Every correction in force (ids are unique; tests check each one still changes a price)."""


def redirect(provider: str, model: str, when: datetime) -> Correction | None:
    """The ``LATEST_ALIAS`` / ``GATEWAY_MODEL`` correction for ``model`` as served by ``provider``
    (genai-prices id) at ``when``, or ``None``. Names compare lower-cased and trimmed."""
    name = model.strip().lower()
    for c in _REDIRECTS.get(provider, ()):
        if name in c.models and (c.start is None or _utc(when) >= c.start):
            return c
    return None


def time_of_day(provider: str, model_id: str) -> Correction | None:
    """The ``TIME_OF_DAY_START`` correction for catalogue model ``model_id`` of ``provider``."""
    return _TIME_OF_DAY.get((provider, model_id.lower()))


def peak_applies(c: Correction, when: datetime) -> bool:
    """Whether the catalogue's time-of-day prices may apply at ``when`` under correction ``c``:
    on or after ``c.start`` and on one of ``c.weekdays`` (UTC)."""
    t = _utc(when)
    return (c.start is None or t >= c.start) and t.weekday() in c.weekdays


def variants(provider: str, model_id: str) -> tuple[Correction, ...]:
    """The ``PRICE_VARIANT`` corrections for catalogue model ``model_id`` of ``provider``."""
    return _VARIANTS.get((provider, model_id.lower()), ())


def by_id(correction_id: str) -> Correction:
    """The correction named ``correction_id``; raises ``KeyError`` if there is none."""
    return _BY_ID[correction_id]


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


_BY_ID: dict[str, Correction] = {c.id: c for c in CORRECTIONS}
_REDIRECTS: dict[str, tuple[Correction, ...]] = {}
_TIME_OF_DAY: dict[tuple[str, str], Correction] = {}
_VARIANTS: dict[tuple[str, str], tuple[Correction, ...]] = {}
for _c in CORRECTIONS:
    if _c.kind in (LATEST_ALIAS, GATEWAY_MODEL):
        _REDIRECTS[_c.provider] = (*_REDIRECTS.get(_c.provider, ()), _c)
    for _m in _c.models:
        if _c.kind == TIME_OF_DAY_START:
            _TIME_OF_DAY[(_c.provider, _m)] = _c
        elif _c.kind == PRICE_VARIANT:
            _VARIANTS[(_c.provider, _m)] = (*_VARIANTS.get((_c.provider, _m), ()), _c)
assert len(_BY_ID) == len(CORRECTIONS), "correction ids must be unique"
