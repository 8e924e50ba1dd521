"""Our arithmetic agrees with genai-prices' own ``calc_price`` (a second opinion, not the expected values).

genai-prices' ``Usage`` counts differently from ours: its ``input_tokens`` includes cache reads and
writes, and its ``cache_write_tokens`` includes ``cache_write_1h_tokens``. Mapping ours into it is the
check that we read its semantics right (wrong mappings either raise or disagree).
"""

from __future__ import annotations

from datetime import UTC, datetime

import genai_prices
import pytest

from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage


def as_genai_usage(u: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=u.input_tokens,  # all input, cache included
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens + u.cache_write_1h_tokens,  # both TTLs
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        output_tokens=u.output_tokens,  # reasoning included
    )


SMALL = Usage(uncached_input_tokens=1234, cache_read_tokens=5678, output_tokens=910, reasoning_tokens=300)
ANTHROPIC = Usage(
    uncached_input_tokens=48, cache_read_tokens=31744, cache_write_tokens=9210, cache_write_1h_tokens=777, output_tokens=655
)
LONG = Usage(uncached_input_tokens=150_000, cache_read_tokens=40_000, cache_write_tokens=20_000, output_tokens=2000)


@pytest.mark.parametrize(
    ("provider", "model", "usage"),
    [
        ("openai", "gpt-4o-2024-08-06", SMALL),
        ("openai", "gpt-4o-mini-2024-07-18", SMALL),
        ("openai", "o4-mini", SMALL),
        ("openai", "gpt-4.1-nano", SMALL),
        ("anthropic", "claude-sonnet-4-5-20250929", ANTHROPIC),
        ("anthropic", "claude-sonnet-4-5-20250929", LONG),
        ("anthropic", "claude-sonnet-4-6", ANTHROPIC),
        ("anthropic", "claude-haiku-4-5", ANTHROPIC),
        ("anthropic", "claude-opus-4-1", ANTHROPIC),
        ("google", "gemini-2.5-flash", SMALL),
        ("google", "gemini-2.5-pro", Usage(uncached_input_tokens=190_000, cache_read_tokens=20_000, output_tokens=5)),
    ],
)
@pytest.mark.parametrize("when", [datetime(2025, 5, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)])
def test_total_matches_genai_prices_calc_price(provider, model, usage, when):
    ours = price(provider, model, usage, when=when)
    theirs = genai_prices.calc_price(as_genai_usage(usage), model, provider_id=provider, genai_request_timestamp=when)
    assert ours.model == theirs.model.id
    assert ours.total_usd == theirs.total_price
