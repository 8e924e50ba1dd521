"""Savings against a baseline model: baseline total - actual total, negative when routing cost more."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from nadir_extproc.pricing.cost import price, saving
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
USAGE = Usage(uncached_input_tokens=41, output_tokens=11)
# gpt-4o-mini $0.15 / $0.60: 41 x 0.15 + 11 x 0.60 = 12.75 µUSD; gpt-4o $2.50 / $10: 102.5 + 110 = 212.5 µUSD


def test_saving_when_routed_to_a_cheaper_model():
    mini = price("openai", "gpt-4o-mini", USAGE, when=WHEN)
    big = price("openai", "gpt-4o", USAGE, when=WHEN)
    assert saving(mini, big) == D("0.0002125") - D("0.00001275") == D("0.00019975")


def test_saving_may_be_negative():
    mini = price("openai", "gpt-4o-mini", USAGE, when=WHEN)
    big = price("openai", "gpt-4o", USAGE, when=WHEN)
    assert saving(big, mini) == D("-0.00019975")


def test_no_saving_without_two_prices():
    priced = price("openai", "gpt-4o", USAGE, when=WHEN)
    unknown = price("openai", "gpt-imaginary", USAGE, when=WHEN)
    assert saving(priced, unknown) is None
    assert saving(unknown, priced) is None
    assert saving(price("openai", "gpt-4o", None), priced) is None
