"""Prompt-cache writes: 5-minute and 1-hour TTLs at their own rates; long-context tiers.

claude-sonnet-4-5 list prices (Anthropic pricing page, USD per MTok, <=200K input): $3 input,
$3.75 5-minute cache write (1.25x input), $6 1-hour cache write (2x input), $0.30 cache read, $15 output.
Above 200K input tokens (cache reads and writes included): $6, $7.50, $12, $0.60, $22.50.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from nadir_extproc.pricing.cost import MISSING_RATE, price
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2025, 11, 1, tzinfo=UTC)
MTOK = D(1_000_000)


def test_anthropic_5m_and_1h_writes_and_reads_each_at_their_rate():
    usage = Usage(
        uncached_input_tokens=1000,
        cache_read_tokens=20000,
        cache_write_tokens=4000,
        cache_write_1h_tokens=2000,
        output_tokens=500,
    )
    cost = price("anthropic", "claude-sonnet-4-5-20250929", usage, when=WHEN)
    assert cost.breakdown == {
        "input": 1000 * D(3) / MTOK,  # 0.003
        "cache_read": 20000 * D("0.30") / MTOK,  # 0.006
        "cache_write": (4000 * D("3.75") + 2000 * D(6)) / MTOK,  # 0.015 + 0.012
        "output": 500 * D(15) / MTOK,  # 0.0075
    }
    assert cost.total_usd == D("0.0435")
    assert cost.total_usd != D("0.039")  # 1h writes billed at the 5m rate


def test_long_context_tier_counts_cached_input_and_applies_to_every_token():
    # 150,000 uncached + 60,000 cache read = 210,000 input > 200,000: all tokens at the long-context rates.
    usage = Usage(uncached_input_tokens=150_000, cache_read_tokens=60_000, output_tokens=1000)
    cost = price("anthropic", "claude-sonnet-4-5", usage, when=WHEN)
    assert cost.total_usd == (150_000 * D(6) + 60_000 * D("0.60") + 1000 * D("22.50")) / MTOK == D("0.9585")


def test_exactly_200k_input_is_still_standard_context():
    cost = price("anthropic", "claude-sonnet-4-5", Usage(uncached_input_tokens=200_000), when=WHEN)
    assert cost.total_usd == 200_000 * D(3) / MTOK == D("0.6")


def test_1h_writes_without_a_1h_rate_are_unpriced_not_billed_at_the_5m_rate():
    # Vertex-hosted claude-3-5-sonnet: the catalogue (genai-prices 0.2.3) lists a 5m write rate only.
    cost = price("google", "claude-3-5-sonnet@20240620", Usage(uncached_input_tokens=10, cache_write_1h_tokens=5), when=WHEN)
    assert (cost.total_usd, cost.unpriced_reason) == (None, MISSING_RATE)
    # Same model, 5-minute writes only: $3 input, $3.75 write, $15 output.
    usage = Usage(uncached_input_tokens=10, cache_write_tokens=5, output_tokens=2)
    cost = price("google", "claude-3-5-sonnet@20240620", usage, when=WHEN)
    assert cost.total_usd == (10 * D(3) + 5 * D("3.75") + 2 * D(15)) / MTOK


def test_openai_has_no_write_surcharge():
    # gpt-4o-mini: a write (if a dialect ever reported one) is plain input, $0.15 per MTok.
    cost = price("openai", "gpt-4o-mini", Usage(cache_write_tokens=1000), when=WHEN)
    assert cost.total_usd == 1000 * D("0.15") / MTOK
