"""Small helpers shared by provider modules."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def usd(v: Any) -> Decimal | None:
    """A JSON number (USD) as an exact ``Decimal``: ints as they are, floats by their shortest
    round-trip text (``5e-05`` -> ``Decimal("0.00005")``), numeric strings parsed; ``None`` for
    anything else, negative, or not finite."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and d >= 0 else None
