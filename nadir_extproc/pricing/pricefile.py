"""Operator price file: models the catalogue lacks, negotiated rates or discounts, deployment aliases.

A YAML (``.yaml``/``.yml``) or TOML (``.toml``) file, merged over the catalogue (genai-prices) by
``catalogue.resolve``: an entry here wins over the catalogue for the same provider and model.
Rates are USD per million tokens (``*_mtok``) or per thousand calls (``web_searches_kcount``);
write them as strings (``"0.30"``) or plain numbers.

.. code-block:: yaml

    models:
      # A self-hosted / OpenAI-compatible model the catalogue does not know.
      - provider: ollama            # any provider id; matched against the request's provider
        model: qwen3:0.6b           # exact served name (case-insensitive); no prefix/substring match
        input_mtok: "0.02"
        output_mtok: "0.08"
      # Your own rates for a catalogue model (negotiated contract); tiers like the catalogue's.
      - provider: anthropic
        model: claude-sonnet-4-5
        input_mtok: {base: "2.70", tiers: [{start: 200000, price: "5.40"}]}
        output_mtok: "13.50"
        cache_read_mtok: "0.27"
        cache_write_mtok: "3.375"
        cache_write_1h_mtok: "5.40"
      # A percentage off every catalogue rate of a model (its snapshots included).
      - provider: openai
        model: gpt-4o
        discount_percent: 15
    aliases:
      # Azure deployment names (or any private name) -> the model they serve.
      - provider: azure
        name: prod-chat-4o
        model: gpt-4o
        model_provider: openai      # optional: price under another provider id

Rate keys: ``input_mtok`` (required for an own-rate entry), ``output_mtok`` (required),
``cache_read_mtok``, ``cache_write_mtok`` (5-minute writes), ``cache_write_1h_mtok``,
``output_reasoning_mtok``, ``input_audio_mtok``, ``output_audio_mtok``, and per thousand calls
``web_searches_kcount``, ``storage_searches_kcount`` (file search), ``code_executions_kcount``,
``requests_kcount`` (a per-request fee). Missing optional classes fall back as for the
catalogue (``catalogue.Rates``). An entry has either rates or ``discount_percent`` (0-100), never both;
a discount needs a model the catalogue knows.

``load_price_file`` validates the whole file and raises ``PriceFileError`` naming the bad entry
(``models[2] (ollama/qwen3:0.6b): input_mtok: …``); ``install_price_file`` loads and installs it for
every later ``price()`` call (``catalogue.use_price_file``).
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml
from genai_prices import types as gp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nadir_extproc.pricing import catalogue
from nadir_extproc.pricing.catalogue import CatalogueModel, PriceOverrides


class PriceFileError(ValueError):
    """The price file cannot be read or has an invalid entry (the message names the file and entry)."""


class _Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: int = Field(ge=0)
    price: Decimal = Field(ge=0, allow_inf_nan=False)


class _Tiered(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: Decimal = Field(ge=0, allow_inf_nan=False)
    tiers: list[_Tier] = Field(min_length=1)

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, v: list[_Tier]) -> list[_Tier]:
        starts = [t.start for t in v]
        if starts != sorted(set(starts)):
            raise ValueError("tier starts must be strictly ascending")
        return v


_Rate = Decimal | _Tiered
#: The rate keys a price file may give: the catalogue's (``catalogue.PRICE_KEYS``) but the
#: classes genai-prices 0.2.3 prices only for its own models (split 5-minute writes, image and
#: video parts).
_RATE_KEYS = tuple(k for k in catalogue.PRICE_KEYS
                   if k not in ("cache_write_5m_mtok", "input_image_mtok", "input_video_mtok", "output_image_mtok"))


_E = TypeVar("_E", bound=BaseModel)


class _ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    input_mtok: _Rate | None = Field(default=None)
    output_mtok: _Rate | None = None
    cache_read_mtok: _Rate | None = None
    cache_write_mtok: _Rate | None = None
    cache_write_1h_mtok: _Rate | None = None
    output_reasoning_mtok: _Rate | None = None
    web_searches_kcount: _Rate | None = None
    storage_searches_kcount: _Rate | None = None
    code_executions_kcount: _Rate | None = None
    requests_kcount: _Rate | None = None
    input_audio_mtok: _Rate | None = None
    output_audio_mtok: _Rate | None = None
    discount_percent: Decimal | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)

    @field_validator(*_RATE_KEYS, mode="before")
    @classmethod
    def _number_or_tiers(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("a rate is a number, not a boolean")
        if isinstance(v, float):
            return str(v)  # the shortest text that round-trips: what the operator wrote
        return v

    @field_validator(*_RATE_KEYS)
    @classmethod
    def _non_negative(cls, v: _Rate | None) -> _Rate | None:
        if isinstance(v, Decimal) and (not v.is_finite() or v < 0):
            raise ValueError("must be a finite number >= 0")
        return v

    @model_validator(mode="after")
    def _rates_or_discount(self) -> _ModelEntry:
        has_rates = any(getattr(self, k) is not None for k in _RATE_KEYS)
        if self.discount_percent is not None and has_rates:
            raise ValueError("give either rates or discount_percent, not both")
        if self.discount_percent is None:
            missing = [k for k in ("input_mtok", "output_mtok") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"missing {' and '.join(missing)} (or give discount_percent)")
        return self


class _Alias(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = Field(min_length=1)
    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    model_provider: str | None = None


def _entry(cls: type[_E], raw: Any, source: str, label: str) -> _E:
    """One ``models[]`` / ``aliases[]`` item validated as ``cls``; ``PriceFileError`` naming the
    file and the item when it is not a mapping or does not validate."""
    if not isinstance(raw, dict):
        raise PriceFileError(f"{source}: {label}: must be a mapping")
    try:
        return cls(**raw)
    except ValidationError as e:
        raise PriceFileError(f"{source}: {label}: {_errors(e)}") from None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[dict[str, Any]] = Field(default_factory=list)
    aliases: list[dict[str, Any]] = Field(default_factory=list)


def _pid(provider: str) -> str:
    key = provider.strip().lower()
    return catalogue.PROVIDER_IDS.get(key, key)


def _errors(e: ValidationError) -> str:
    return "; ".join(
        (".".join(str(p) for p in err["loc"]) + ": " if err["loc"] else "") + err["msg"].removeprefix("Value error, ") for err in e.errors()
    )


def _gp_rate(v: _Rate) -> Decimal | gp.TieredPrices:
    if isinstance(v, _Tiered):
        return gp.TieredPrices(base=v.base, tiers=[gp.Tier(start=t.start, price=t.price) for t in v.tiers])
    return v


def parse_price_file(data: Any, source: str = "price file") -> PriceOverrides:
    """Validate already-parsed price-file data (a mapping) and build the overrides.

    ``source`` names the file in errors and in ``Cost.catalogue``. Raises ``PriceFileError`` naming
    the first bad entry: unknown keys, negative or non-numeric rates, an entry with neither rates
    nor a discount (or both), a discount for a model the catalogue does not know, duplicate
    entries, an alias whose target cannot be priced.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PriceFileError(f"{source}: top level must be a mapping with 'models' and/or 'aliases'")
    try:
        top = _File(**data)
    except ValidationError as e:
        raise PriceFileError(f"{source}: {_errors(e)}") from None

    models: dict[tuple[str, str], CatalogueModel] = {}
    discounts: dict[tuple[str, str], tuple[Decimal, str]] = {}
    for i, raw in enumerate(top.models):
        label = f"models[{i}]"
        if isinstance(raw, dict) and raw.get("provider") and raw.get("model"):
            label += f" ({raw.get('provider')}/{raw.get('model')})"
        entry = _entry(_ModelEntry, raw, source, label)
        pid = _pid(entry.provider)
        name = entry.model.strip().lower()
        if entry.discount_percent is not None:
            found = catalogue.resolve_in_catalogue(pid, entry.model)
            if found is None:
                raise PriceFileError(
                    f"{source}: {label}: discount_percent for a model the catalogue "
                    f"({catalogue.CATALOGUE}) does not know; give its rates instead"
                )
            key = (found.provider_id, found.model_id)
            if key in discounts:
                raise PriceFileError(f"{source}: {label}: a second discount for {key[0]}/{key[1]}")
            multiplier = (100 - entry.discount_percent) / 100
            discounts[key] = (multiplier, f"{catalogue.CATALOGUE} - {entry.discount_percent}% ({source})")
            continue
        if (pid, name) in models:
            raise PriceFileError(f"{source}: {label}: {pid}/{name} is listed twice")
        prices = gp.ModelPrice(
            **{k: _gp_rate(getattr(entry, k)) for k in _RATE_KEYS if getattr(entry, k) is not None}
        )
        info = gp.ModelInfo(id=entry.model.strip(), match=gp.ClauseEquals(equals=name), prices=prices)
        models[(pid, name)] = CatalogueModel(provider_id=pid, model_id=info.id, info=info, source=source)

    aliases: dict[tuple[str, str], tuple[str, str]] = {}
    overrides = PriceOverrides(models, discounts, aliases, source)
    for i, raw in enumerate(top.aliases):
        label = f"aliases[{i}]"
        if isinstance(raw, dict) and raw.get("name"):
            label += f" ({raw.get('provider')}/{raw.get('name')})"
        alias = _entry(_Alias, raw, source, label)
        key = (_pid(alias.provider), alias.name.strip().lower())
        if key in aliases:
            raise PriceFileError(f"{source}: {label}: {key[0]}/{key[1]} is listed twice")
        target = (alias.model_provider or alias.provider, alias.model)
        if (_pid(target[0]), target[1].strip().lower()) not in models and catalogue.resolve_in_catalogue(
            _pid(target[0]), target[1]
        ) is None:
            raise PriceFileError(
                f"{source}: {label}: target {target[0]}/{target[1]} is neither in this file nor in the catalogue"
            )
        aliases[key] = target
    return overrides


def load_price_file(path: str | Path, versioned: bool = False) -> PriceOverrides:
    """Read and validate the price file at ``path`` (YAML, or TOML when it ends in ``.toml``).

    ``versioned``: the source (``x-nadir-price-source`` of the rates it gives) names the file's
    content too, ``price file prices.yaml sha256:0123456789ab`` (serve mode: which version of a
    reloaded file is in force). Raises ``PriceFileError`` for an unreadable or unparsable file and
    for any invalid entry (see ``parse_price_file``); the message starts with ``price file <path>``.
    """
    p = Path(path)
    source = f"price file {p.name}"
    try:
        text = p.read_text(encoding="utf-8")
        if versioned:
            import hashlib

            source += f" sha256:{hashlib.sha256(text.encode()).hexdigest()[:12]}"
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise PriceFileError(f"price file {p}: {e}") from None
    try:
        return parse_price_file(data, source)
    except PriceFileError as e:
        raise PriceFileError(str(e).replace(source, f"price file {p}", 1)) from None


def install_price_file(path: str | Path | None) -> PriceOverrides | None:
    """Load the price file at ``path`` and install it for every later ``price()`` call; ``None``
    removes any installed file. Returns what was installed. Raises ``PriceFileError``; on error the
    previously installed file stays in force."""
    overrides = load_price_file(path) if path is not None else None
    catalogue.use_price_file(overrides)
    return overrides
