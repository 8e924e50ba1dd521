"""Model-name resolution: dated snapshots, vendor prefixes, and never a look-alike's price.

Rates (USD per MTok, input / output) are the providers' list prices, written here by hand:
gpt-4o 2.50/10, gpt-4o-mini 0.15/0.60, gpt-4.1 2/8, gpt-4.1-mini 0.40/1.60, gpt-4.1-nano 0.10/0.40,
o3 2/8 (since 2025-06-10), o3-mini 1.10/4.40, claude-sonnet-4-5 3/15, claude-haiku-4-5 1/5,
gemini-2.5-flash 0.30/2.50, gemini-2.5-flash-lite 0.10/0.40, gemini-2.5-pro 1.25/10 (<=200K).
Usage below is 100,000 input and 100,000 output tokens (under every long-context threshold).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing.cost import UNKNOWN_MODEL, UNKNOWN_PROVIDER, price
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
MTOK = D(1_000_000)
USAGE = Usage(uncached_input_tokens=100_000, output_tokens=100_000)


@pytest.mark.parametrize(
    ("provider", "model", "priced_as", "input_rate", "output_rate"),
    [
        # the trap: gpt-4o-mini is not gpt-4o (16x cheaper)
        ("openai", "gpt-4o", "gpt-4o", "2.50", "10"),
        ("openai", "gpt-4o-mini", "gpt-4o-mini", "0.15", "0.60"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o", "2.50", "10"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "0.15", "0.60"),
        ("openai", "gpt-4.1", "gpt-4.1", "2", "8"),
        ("openai", "gpt-4.1-mini", "gpt-4.1-mini", "0.40", "1.60"),
        ("openai", "gpt-4.1-nano", "gpt-4.1-nano", "0.10", "0.40"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1", "2", "8"),
        ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "0.40", "1.60"),
        ("openai", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", "0.10", "0.40"),
        ("openai", "o3", "o3", "2", "8"),
        ("openai", "o3-mini", "o3-mini", "1.10", "4.40"),
        ("openai", "o3-mini-2025-01-31", "o3-mini", "1.10", "4.40"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "3", "15"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5", "1", "5"),
        ("google", "gemini-2.5-flash", "gemini-2.5-flash", "0.30", "2.50"),
        ("google", "gemini-2.5-flash-lite", "gemini-2.5-flash-lite", "0.10", "0.40"),
        ("google", "gemini-2.5-pro", "gemini-2.5-pro", "1.25", "10"),
    ],
)
def test_each_name_is_priced_as_itself_not_a_look_alike(provider, model, priced_as, input_rate, output_rate):
    cost = price(provider, model, USAGE, when=WHEN)
    assert cost.model == priced_as
    assert cost.total_usd == 100_000 * (D(input_rate) + D(output_rate)) / MTOK


def test_the_gpt_4o_mini_trap_in_dollars():
    # 100K in + 100K out: gpt-4o-mini = 0.1 x (0.15 + 0.60) = $0.075; gpt-4o would be $1.25.
    assert price("openai", "gpt-4o-mini", USAGE, when=WHEN).total_usd == D("0.075")
    assert price("openai", "gpt-4o", USAGE, when=WHEN).total_usd == D("1.25")


@pytest.mark.parametrize(
    ("provider", "model", "priced_as"),
    [
        ("google", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google", "publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("anthropic", "anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("openai", "openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai", " GPT-4o-Mini-2024-07-18 ", "gpt-4o-mini"),
        ("OpenAI", "gpt-4o-mini", "gpt-4o-mini"),
        ("gemini", "gemini-2.5-flash", "gemini-2.5-flash"),
    ],
)
def test_vendor_prefixes_case_and_provider_aliases(provider, model, priced_as):
    assert price(provider, model, USAGE, when=WHEN).model == priced_as


def test_a_snapshot_the_catalogue_does_not_list_is_priced_as_its_own_alias():
    # Date stripped, nothing else: gpt-4o-mini-<date> is gpt-4o-mini, 0.1 x (0.15 + 0.60), never gpt-4o.
    for model in ("gpt-4o-mini-2099-01-01", "gpt-4o-mini-20990101"):
        cost = price("openai", model, USAGE, when=WHEN)
        assert (cost.model, cost.total_usd) == ("gpt-4o-mini", D("0.075"))
    cost = price("openai", "gpt-4.1-nano-2099-12-31", USAGE, when=WHEN)  # 0.1 x (0.10 + 0.40)
    assert (cost.model, cost.total_usd) == ("gpt-4.1-nano", D("0.05"))


def test_an_older_snapshot_with_its_own_price_keeps_it():
    # gpt-4o-2024-05-13 was $5 / $15, not gpt-4o's $2.50 / $10: 0.1 x (5 + 15).
    cost = price("openai", "gpt-4o-2024-05-13", USAGE, when=WHEN)
    assert cost.total_usd == D(2)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-minix"),
        ("openai", "gpt-4o-mini-foo"),
        ("openai", "gpt-4.1-micro"),
        ("openai", "o3-mini-foo"),
        ("openai", "auto"),
        ("openai", "claude-sonnet-4-5"),  # a real model, but not OpenAI's
        ("anthropic", "gpt-4o"),
        ("google", "gemini-2.5-flash-foo"),
    ],
)
def test_look_alikes_and_foreign_models_are_unknown_not_priced_as_a_neighbour(provider, model):
    cost = price(provider, model, USAGE, when=WHEN)
    assert (cost.total_usd, cost.unpriced_reason, cost.breakdown) == (None, UNKNOWN_MODEL, {})


def test_unknown_provider():
    cost = price("my-openai-proxy", "gpt-4o", USAGE, when=WHEN)
    assert (cost.total_usd, cost.unpriced_reason) == (None, UNKNOWN_PROVIDER)
