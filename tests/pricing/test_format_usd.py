"""USD as plain text: no exponent, no meaningless trailing zeros, no rounding, no floats."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from nadir_extproc.pricing.money import format_usd


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("1.275E-5", "0.00001275"),
        ("0", "0"),
        ("-0", "0"),
        ("0E-12", "0"),
        ("0.008315000", "0.008315"),
        ("0.0540297", "0.0540297"),
        ("1E+2", "100"),
        ("100.00", "100"),
        ("12.5", "12.5"),
        ("-0.00019975", "-0.00019975"),
        ("1E-20", "0.00000000000000000001"),
        # more digits than the default 28-digit context: kept, not rounded
        ("0.12345678901234567890123456789", "0.12345678901234567890123456789"),
    ],
)
def test_format_usd(amount, text):
    assert format_usd(D(amount)) == text


def test_float_is_refused():
    with pytest.raises(TypeError):
        format_usd(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_is_refused(amount):
    with pytest.raises(ValueError):
        format_usd(D(amount))
