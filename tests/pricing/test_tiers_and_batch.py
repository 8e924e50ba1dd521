"""Served service tier, batch rates, the 200K long-context boundary, dated and time-of-day prices.

Rates are the providers' list prices (USD per MTok) as in force on the dates used, written here by
hand: gpt-5 standard $1.25 in / $0.125 cached / $10 out; flex $0.625 / $0.0625 / $5; priority
$2.50 / $0.25 / $20 (OpenAI "Flex processing" and "Priority processing", variants effective
2026-10-12 in the catalogue). Batch (-50 %, effective 2026-10-14 in the catalogue): gpt-4o $1.25 in /
$5 out (cached input keeps its $1.25 list rate); claude-sonnet-4-5 $1.50 / $0.15 read / $1.875 5m
write / $3 1h write / $7.50 out; gemini-2.5-flash $0.15 in / $1.25 out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.dialects import DIALECTS
from nadir_extproc.pricing.context import unwrap_batch_result


def served_context(body, dialect):
    info = DIALECTS[dialect].response_info(body)
    return info.service_tier, info.batch
from nadir_extproc.pricing.cost import NO_BATCH_PRICE, UNKNOWN_SERVICE_TIER, price
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)
MTOK = D(1_000_000)
U = Usage(uncached_input_tokens=10_000, cache_read_tokens=20_000, output_tokens=3_000, reasoning_tokens=1_000)


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        (None, (10_000 * D("1.25") + 20_000 * D("0.125") + 3_000 * D(10)) / MTOK),  # 0.045
        ("default", (10_000 * D("1.25") + 20_000 * D("0.125") + 3_000 * D(10)) / MTOK),
        ("auto", (10_000 * D("1.25") + 20_000 * D("0.125") + 3_000 * D(10)) / MTOK),
        ("flex", (10_000 * D("0.625") + 20_000 * D("0.0625") + 3_000 * D(5)) / MTOK),  # 0.0225
        ("priority", (10_000 * D("2.5") + 20_000 * D("0.25") + 3_000 * D(20)) / MTOK),  # 0.09
        ("Priority", (10_000 * D("2.5") + 20_000 * D("0.25") + 3_000 * D(20)) / MTOK),
    ],
)
def test_served_service_tier_selects_the_rates(tier, expected):
    cost = price("openai", "gpt-5-2025-08-07", U, when=WHEN, service_tier=tier)
    assert cost.total_usd == expected
    assert cost.service_tier == (None if tier in (None, "default", "auto") else tier.lower())


def test_flex_and_priority_literal_values():
    # flex 6250 + 1250 + 15000; priority 25000 + 5000 + 60000; standard 12500 + 2500 + 30000 (millionths)
    assert price("openai", "gpt-5", U, when=WHEN, service_tier="flex").total_usd == D("0.0225")
    assert price("openai", "gpt-5", U, when=WHEN, service_tier="priority").total_usd == D("0.09")
    assert price("openai", "gpt-5", U, when=WHEN).total_usd == D("0.045")


def test_a_tier_without_rates_is_unpriced_not_standard():
    # OpenAI "scale" tier is prepaid capacity: no per-token list price in the catalogue.
    cost = price("openai", "gpt-5", U, when=WHEN, service_tier="scale")
    assert (cost.total_usd, cost.unpriced_reason, cost.service_tier) == (None, UNKNOWN_SERVICE_TIER, "scale")
    # Before the catalogue's flex variant starts (2026-10-12) there is no flex price either.
    early = price("openai", "gpt-5", U, when=datetime(2026, 9, 1, tzinfo=UTC), service_tier="flex")
    assert early.unpriced_reason == UNKNOWN_SERVICE_TIER


def test_standard_tier_names_of_every_provider():
    usage = Usage(uncached_input_tokens=1000, output_tokens=100)
    # claude-sonnet-4-5 $3 / $15; gemini-2.5-flash $0.30 / $2.50; groq llama-3.3-70b $0.59 / $0.79.
    assert price("anthropic", "claude-sonnet-4-5", usage, when=WHEN, service_tier="standard").total_usd == D("0.0045")
    assert price("google", "gemini-2.5-flash", usage, when=WHEN, service_tier="standard").total_usd == D("0.00055")
    assert price("groq", "llama-3.3-70b-versatile", usage, when=WHEN, service_tier="on_demand").total_usd == D("0.000669")


def test_batch_rates():
    usage = Usage(uncached_input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    cost = price("openai", "gpt-4o-2024-08-06", usage, when=WHEN, batch=True)
    assert cost.batch
    assert cost.total_usd == (10_000 * D("1.25") + 4_000 * D("1.25") + 2_000 * D(5)) / MTOK == D("0.0275")
    assert price("openai", "gpt-4o", usage, when=WHEN).total_usd == (
        10_000 * D("2.5") + 4_000 * D("1.25") + 2_000 * D(10)
    ) / MTOK == D("0.05")


def test_anthropic_batch_every_cache_class():
    usage = Usage(uncached_input_tokens=1000, cache_read_tokens=10_000, cache_write_tokens=2000,
                  cache_write_1h_tokens=1000, output_tokens=500)
    cost = price("anthropic", "claude-sonnet-4-5-20250929", usage, when=WHEN, batch=True)
    assert cost.breakdown == {
        "input": 1000 * D("1.5") / MTOK,
        "cache_read": 10_000 * D("0.15") / MTOK,
        "cache_write": (2000 * D("1.875") + 1000 * D(3)) / MTOK,
        "output": 500 * D("7.5") / MTOK,
    }
    assert cost.total_usd == D("0.0135")  # 1500 + 1500 + 6750 + 3750 millionths


def test_batch_before_the_catalogue_has_batch_rates_is_unpriced():
    cost = price("google", "gemini-2.5-flash", U, when=datetime(2026, 1, 1, tzinfo=UTC), batch=True)
    assert (cost.total_usd, cost.unpriced_reason) == (None, NO_BATCH_PRICE)
    later = price("google", "gemini-2.5-flash", Usage(uncached_input_tokens=1000, output_tokens=1000), when=WHEN, batch=True)
    assert later.total_usd == (1000 * D("0.15") + 1000 * D("1.25")) / MTOK == D("0.0014")


def test_long_context_boundary_both_sides_gemini_pro_with_cache():
    # gemini-2.5-pro: <=200K prompt $1.25 in / $0.125 cached / $10 out; >200K $2.50 / $0.25 / $15.
    # All input counts, cache included: 150,000 uncached + 50,000 cached = 200,000 -> base rates.
    at = Usage(uncached_input_tokens=150_000, cache_read_tokens=50_000, output_tokens=1000)
    assert price("google", "gemini-2.5-pro", at, when=WHEN).total_usd == (
        150_000 * D("1.25") + 50_000 * D("0.125") + 1000 * D(10)
    ) / MTOK == D("0.20375")
    above = Usage(uncached_input_tokens=150_001, cache_read_tokens=50_000, output_tokens=1000)
    cost = price("google", "gemini-2.5-pro", above, when=WHEN)
    assert cost.rates.tier_start == 200_000
    assert cost.total_usd == (150_001 * D("2.5") + 50_000 * D("0.25") + 1000 * D(15)) / MTOK == D("0.4025025")


def test_long_context_boundary_anthropic_200001():
    # claude-sonnet-4-5 above 200K: $6 input (vs $3), every token.
    assert price("anthropic", "claude-sonnet-4-5", Usage(uncached_input_tokens=200_001), when=WHEN).total_usd == (
        200_001 * D(6) / MTOK
    ) == D("1.200006")
    assert price("anthropic", "claude-sonnet-4-5", Usage(uncached_input_tokens=200_000), when=WHEN).total_usd == D("0.6")


def test_dated_price_history():
    # gpt-5.6-sol: $5 in / $30 out until 2026-08-20, $4 / $20 from 2026-08-21 (catalogue history).
    usage = Usage(uncached_input_tokens=1000, output_tokens=100)
    assert price("openai", "gpt-5.6-sol", usage, when=datetime(2026, 8, 1, tzinfo=UTC)).total_usd == D("0.008")
    assert price("openai", "gpt-5.6-sol", usage, when=datetime(2026, 9, 1, tzinfo=UTC)).total_usd == D("0.006")


def test_served_context_from_each_provider_body():
    assert served_context({"service_tier": "flex", "usage": {}}, "openai_chat") == ("flex", False)
    assert served_context({"service_tier": "priority", "usage": {}}, "openai_responses") == ("priority", False)
    assert served_context({"usage": {"service_tier": "standard"}}, "anthropic_messages") == ("standard", False)
    assert served_context({"usage": {"service_tier": "batch"}}, "anthropic_messages") == (None, True)  # batch
    assert served_context({"usageMetadata": {"serviceTier": "priority"}}, "gemini") == ("priority", False)
    assert served_context({"usage": {}}, "openai_chat") == (None, False)
    assert served_context({"usage": {}}, "anthropic_messages") == (None, False)


def test_batch_result_wrappers():
    body = {"model": "gpt-4o", "usage": {"prompt_tokens": 1}}
    assert unwrap_batch_result({"custom_id": "a", "response": {"status_code": 200, "body": body}}) == (body, 200)
    msg = {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 1}}
    assert unwrap_batch_result({"custom_id": "b", "result": {"type": "succeeded", "message": msg}}) == (msg, None)
    assert unwrap_batch_result({"custom_id": "c", "result": {"type": "errored", "error": {}}})[1] == 500
    assert unwrap_batch_result(body) is None
