"""Golden prices: fixed (model, usage, date) -> USD, so a catalogue upgrade that changes a price
fails here loudly instead of silently changing bills. Each value is the list price (USD per MTok,
written next to it) times the tokens, worked out by hand. If one fails after a genai-prices
upgrade, check the provider's pricing page and update the rate here on purpose."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing.catalogue import CATALOGUE
from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)
# 1M uncached input, 100K cache read, 100K output: cost = in_rate + 0.1 x read_rate + 0.1 x out_rate.
U = Usage(uncached_input_tokens=1_000_000, cache_read_tokens=100_000, output_tokens=100_000)


def test_catalogue_version_is_the_pinned_one():
    assert CATALOGUE == "genai-prices 0.2.3"


@pytest.mark.parametrize(
    ("provider", "model", "usd"),
    [
        ("openai", "gpt-4o", "3.625"),  # 2.50 + 0.1 x 1.25 + 0.1 x 10
        ("openai", "gpt-4o-mini", "0.2175"),  # 0.15 + 0.1 x 0.075 + 0.1 x 0.60
        ("openai", "gpt-4.1", "2.85"),  # 2 + 0.1 x 0.50 + 0.1 x 8
        ("openai", "gpt-5", "2.2625"),  # 1.25 + 0.1 x 0.125 + 0.1 x 10
        ("openai", "gpt-5-nano", "0.0905"),  # 0.05 + 0.1 x 0.005 + 0.1 x 0.40
        ("openai", "o3-mini", "1.595"),  # 1.10 + 0.1 x 0.55 + 0.1 x 4.40
        ("anthropic", "claude-sonnet-4-5", "8.31"),  # >200K input: 6 + 0.1 x 0.60 + 0.1 x 22.50
        ("anthropic", "claude-haiku-4-5", "1.51"),  # no long-context tier: 1 + 0.1 x 0.10 + 0.1 x 5
        ("google", "gemini-2.5-flash", "0.553"),  # 0.30 + 0.1 x 0.03 + 0.1 x 2.50
        ("google", "gemini-2.5-pro", "4.025"),  # >200K input: 2.50 + 0.1 x 0.25 + 0.1 x 15
    ],
)
def test_golden(provider, model, usd):
    assert price(provider, model, U, when=WHEN).total_usd == D(usd)
