"""Money as text: USD amounts (``Decimal``, never ``float``) for headers, spans, logs and reports."""

from __future__ import annotations

from decimal import Decimal


def format_usd(amount: Decimal) -> str:
    """``amount`` (USD) as a plain decimal string: no exponent, no trailing zeros, no rounding.

    ``Decimal("1.275E-5")`` -> ``"0.00001275"``; ``Decimal("0.008315000")`` -> ``"0.008315"``;
    ``Decimal("0")``, ``Decimal("-0")`` and ``Decimal("0E-9")`` -> ``"0"``; ``Decimal("1E+2")`` -> ``"100"``;
    negative amounts keep their sign (``"-0.5"``).

    Raises ``TypeError`` if ``amount`` is not a ``Decimal`` (a float has already lost the exact value),
    ``ValueError`` if it is NaN or infinite.
    """
    if not isinstance(amount, Decimal):
        raise TypeError(f"format_usd takes a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"not a finite amount of money: {amount}")
    if not amount:
        return "0"
    # format(…, "f") writes every digit the Decimal holds (no context rounding, unlike normalize()).
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def usd_text(amount: Decimal | None) -> str | None:
    """``format_usd(amount)``, or ``None`` for no amount (JSON fields that may be absent)."""
    return None if amount is None else format_usd(amount)
