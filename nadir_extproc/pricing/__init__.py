"""Pricing: normalised usage (``usage``), the catalogue (``catalogue``), cost and savings (``cost``),
money as text (``money``).

``from nadir_extproc.pricing import price, Cost, Usage, saving, format_usd`` works, but the names other
than ``Usage`` are loaded on first access: importing ``nadir_extproc.pricing.usage`` (as every dialect
does) must not pay for importing genai-prices (~0.3 s).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from nadir_extproc.pricing.usage import Usage

if TYPE_CHECKING:
    from nadir_extproc.pricing.catalogue import CATALOGUE
    from nadir_extproc.pricing.cost import Cost, price, saving
    from nadir_extproc.pricing.money import format_usd

__all__ = ["CATALOGUE", "Cost", "Usage", "format_usd", "price", "saving"]

_LAZY = {
    "CATALOGUE": "nadir_extproc.pricing.catalogue",
    "Cost": "nadir_extproc.pricing.cost",
    "price": "nadir_extproc.pricing.cost",
    "saving": "nadir_extproc.pricing.cost",
    "format_usd": "nadir_extproc.pricing.money",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
