"""What cannot be priced has no total (``None`` and a reason), never a total of 0."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing.cost import (
    INVALID_USAGE,
    NO_USAGE,
    PROVIDER_ERROR,
    UNKNOWN_MODEL,
    Cost,
    price,
)
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def test_unknown_model():
    cost = price("openai", "gpt-9-imaginary", Usage(uncached_input_tokens=10, output_tokens=5), when=WHEN)
    assert cost.total_usd is None
    assert not cost.priced
    assert cost.unpriced_reason == UNKNOWN_MODEL == "unknown_model"
    assert cost.breakdown == {}
    assert (cost.provider, cost.model) == ("openai", "gpt-9-imaginary")
    assert cost.catalogue == "genai-prices 0.2.3"


def test_unknown_model_names_the_catalogue_provider_and_the_normalised_name():
    cost = price("Gemini", "models/Gemini-9-Imaginary", Usage(uncached_input_tokens=1), when=WHEN)
    assert (cost.provider, cost.model, cost.unpriced_reason) == ("google", "gemini-9-imaginary", UNKNOWN_MODEL)


def test_no_usage():
    cost = price("openai", "gpt-4o-mini-2024-07-18", None, when=WHEN)
    assert (cost.total_usd, cost.priced, cost.unpriced_reason) == (None, False, NO_USAGE)
    assert cost.model == "gpt-4o-mini"  # the model is known; only the usage is missing


@pytest.mark.parametrize(
    "usage",
    [
        Usage(uncached_input_tokens=-1),
        Usage(output_tokens=10, reasoning_tokens=11),  # reasoning is a part of output
    ],
)
def test_invalid_usage(usage):
    cost = price("openai", "gpt-4o", usage, when=WHEN)
    assert (cost.total_usd, cost.unpriced_reason) == (None, INVALID_USAGE)


def test_provider_error_is_recorded_by_the_caller():
    cost = Cost.unpriced("anthropic", "claude-sonnet-4-5", PROVIDER_ERROR)
    assert (cost.total_usd, cost.priced, cost.unpriced_reason, cost.breakdown) == (None, False, "provider_error", {})


def test_zero_tokens_is_a_real_zero_not_unpriced():
    cost = price("openai", "gpt-4o", Usage(), when=WHEN)
    assert cost.priced
    assert cost.total_usd == D(0)
    assert cost.unpriced_reason is None


def test_money_is_decimal():
    cost = price("openai", "gpt-4o", Usage(uncached_input_tokens=3, output_tokens=7), when=WHEN)
    assert type(cost.total_usd) is D
    assert all(type(v) is D for v in cost.breakdown.values())
    assert sum(cost.breakdown.values()) == cost.total_usd


def test_web_search_calls_are_billed_per_call():
    # claude-sonnet-4-5: $3 in / $15 out per MTok, web search $10 per 1,000 calls.
    usage = Usage(uncached_input_tokens=1000, output_tokens=100, web_search_requests=3)
    cost = price("anthropic", "claude-sonnet-4-5", usage, when=WHEN)
    assert cost.breakdown["web_search"] == 3 * D(10) / 1000 == D("0.03")
    assert cost.total_usd == (1000 * D(3) + 100 * D(15)) / 1_000_000 + D("0.03") == D("0.0345")
