"""Catalogue corrections (``nadir_extproc/pricing/corrections.py``): each one changes a price the
pinned catalogue gets wrong, to the value worked out here by hand from the source it cites. When a
genai-prices upgrade fixes the catalogue, ``test_every_correction_still_changes_a_price`` fails and
the entry's ``remove_when`` says what to delete."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing import corrections
from nadir_extproc.pricing.catalogue import CATALOGUE, resolve_in_catalogue
from nadir_extproc.pricing.cost import UNKNOWN_PRICE_VARIANT, catalogue_price, price
from nadir_extproc.pricing.usage import Usage

MTOK = D(1_000_000)
M_IN = Usage(uncached_input_tokens=1_000_000)


def test_catalogue_is_the_one_the_corrections_were_written_for():
    assert CATALOGUE == "genai-prices 0.2.3"


def test_every_correction_has_a_source_a_test_and_a_removal_note():
    for c in corrections.CORRECTIONS:
        assert c.source and c.remove_when and c.test.startswith("tests/"), c.id
        assert c.test.split("::")[1] in globals(), c.id


def test_deepseek_peak_rates_only_from_their_start_and_on_weekdays():
    # deepseek-v4-pro, catalogue 0.2.3: flat $0.435 in until 2026-08-17, then $0.66 off-peak and
    # $1.32 peak (01:00-04:00, 06:00-10:00 UTC). DeepSeek: peak only Monday-Friday, since 2026-08-16.
    before = datetime(2026, 8, 10, 2, tzinfo=UTC)  # a Monday 02:00 UTC, before peak pricing existed
    c = price("deepseek", "deepseek-v4-pro", M_IN, when=before)
    assert c.total_usd == D("0.435") and c.corrections == ("deepseek-v4-pro-peak-start",)
    assert catalogue_price("deepseek", "deepseek-v4-pro", M_IN, when=before).total_usd == D("0.435")
    sunday = datetime(2026, 11, 29, 2, tzinfo=UTC)
    c = price("deepseek", "deepseek-v4-pro", M_IN, when=sunday)
    assert c.total_usd == D("0.66") and c.corrections == ("deepseek-v4-pro-peak-start",)
    monday_peak = datetime(2026, 11, 30, 2, tzinfo=UTC)
    c = price("deepseek", "deepseek-v4-pro", M_IN, when=monday_peak)
    assert c.total_usd == D("1.32") and c.corrections == ()
    # v4-flash: the catalogue's peak $0.30 is 2 x the 2026-09-10 off-peak $0.15; on 2026-09-01 the
    # off-peak price in force is $0.22 and the $0.30 peak entry did not exist yet.
    c = price("deepseek", "deepseek-v4-flash", M_IN, when=datetime(2026, 9, 1, 2, tzinfo=UTC))
    assert c.total_usd == D("0.22") and c.corrections == ("deepseek-flash-peak-start",)


def test_retired_xai_latest_alias_priced_as_its_redirect():
    # grok-3-mini-latest -> grok-4.3 ($1.25 in / $2.50 out, below its long-context tier) from
    # 2026-05-15 12:00 PT; before that, the grok-3-mini entry ($0.30 / $0.50).
    u = Usage(uncached_input_tokens=1000, output_tokens=2000)
    after = price("x-ai", "grok-3-mini-latest", u, when=datetime(2026, 11, 1, tzinfo=UTC))
    assert after.total_usd == (1000 * D("1.25") + 2000 * D("2.5")) / MTOK == D("0.00625")
    assert after.model == "grok-4.3" and after.corrections == ("xai-retired-latest-aliases",)
    before = price("x-ai", "grok-3-mini-latest", u, when=datetime(2026, 5, 1, tzinfo=UTC))
    assert before.total_usd == (1000 * D("0.3") + 2000 * D("0.5")) / MTOK and before.corrections == ()


def test_gateway_id_missing_from_the_catalogue():
    assert resolve_in_catalogue("openrouter", "x-ai/grok-3-mini") is not None  # vendor-prefix rule
    u = Usage(uncached_input_tokens=40, output_tokens=525, reasoning_tokens=500)
    c = price("openrouter", "x-ai/grok-3-mini", u, when=datetime(2026, 11, 1, tzinfo=UTC))
    # 40 x 0.30 + 525 x 0.50 = 12 + 262.5 millionths
    assert c.total_usd == D("0.0002745") and c.corrections == ("openrouter-x-ai-grok-3-mini",)


@pytest.mark.parametrize(("size", "fee"), [("low", "0.005"), ("medium", "0.008"), ("high", "0.012")])
def test_perplexity_request_fee_by_search_context_size(size, fee):
    # sonar: $1/$1 per MTok + $5/$8/$12 per 1000 requests; 50 in, 100 out = 150 millionths + fee.
    u = Usage(uncached_input_tokens=50, output_tokens=100)
    c = price("perplexity", "sonar", u, variant={"search_context_size": size}, when=datetime(2026, 11, 1, tzinfo=UTC))
    assert c.total_usd == D("0.00015") + D(fee)
    assert c.breakdown["request_fee"] == D(fee) and c.corrections == (f"perplexity-sonar-request-fee-{size}",)
    # the catalogue alone has one flat $12 / 1000 requests fee
    assert price("perplexity", "sonar", u).total_usd == D("0.01215")


def test_every_correction_still_changes_a_price():
    when = datetime(2026, 11, 1, tzinfo=UTC)
    u = Usage(uncached_input_tokens=1000, output_tokens=1000)
    for c in corrections.CORRECTIONS:
        if c.kind == corrections.PRICE_VARIANT:
            assert resolve_in_catalogue(c.provider, c.models[0]) is not None, c.id
            fixed = price(c.provider, c.models[0], u, variant=dict(c.when), when=when)
            assert fixed.corrections == (c.id,), c.id
        elif c.kind in (corrections.LATEST_ALIAS, corrections.GATEWAY_MODEL):
            for name in c.models:
                assert price(c.provider, name, u, when=when).corrections == (c.id,), (c.id, name)


def test_unknown_price_variant_is_unpriced_not_standard():
    # Anthropic fast mode (usage.speed "fast") bills a premium the catalogue has no rates for.
    u = Usage(uncached_input_tokens=100, output_tokens=100)
    c = price("anthropic", "claude-opus-4-6", u, variant={"speed": "fast"})
    assert c.total_usd is None and c.unpriced_reason == UNKNOWN_PRICE_VARIANT and c.variant == {"speed": "fast"}
    c = price("perplexity", "sonar", u, variant={"search_context_size": "huge"})
    assert c.total_usd is None and c.unpriced_reason == UNKNOWN_PRICE_VARIANT


def test_provider_reported_cost_is_reported_and_the_catalogue_figure_kept():
    u = Usage(uncached_input_tokens=50, output_tokens=100)
    c = price("perplexity", "sonar", u, reported_usd=D("0.00515"), when=datetime(2026, 11, 1, tzinfo=UTC))
    assert c.total_usd == D("0.00515") and c.reported_usd == D("0.00515")
    assert c.catalogue_usd == D("0.01215") and c.disagrees  # flat $12/K fee without the size
    agree = price("perplexity", "sonar", u, reported_usd=D("0.00515"), variant={"search_context_size": "low"})
    assert agree.catalogue_usd == D("0.00515") and not agree.disagrees
    # unknown to the catalogue, but the provider said what it billed
    c = price("openrouter", "qwen/qwen3-0.6b", u, reported_usd=D("0.0000123"))
    assert c.total_usd == D("0.0000123") and c.catalogue_usd is None and c.unpriced_reason is None


def test_modality_tokens_at_their_own_rates():
    # case 31: gpt-audio $2.50 / $10 text, $32 / $64 audio per MTok
    u = Usage(uncached_input_tokens=500, input_audio_tokens=420, output_tokens=900, output_audio_tokens=780)
    c = price("openai", "gpt-audio-2025-08-28", u)
    assert c.total_usd == (80 * D("2.5") + 420 * D(32) + 120 * D(10) + 780 * D(64)) / MTOK == D("0.06476")
    assert c.breakdown["input_audio"] == D("0.01344") and c.breakdown["output_audio"] == D("0.04992")
    # a modality without its own rate is billed at its parent's (gpt-4o has no image rate)
    img = price("openai", "gpt-4o", Usage(uncached_input_tokens=1000, input_image_tokens=600))
    assert img.total_usd == 1000 * D("2.5") / MTOK


def test_tool_call_fees():
    # gpt-5: web search $10 / 1000 calls, file search $2.50 / 1000 calls; code interpreter has no
    # catalogue rate -> unpriced (missing_rate), never silently free.
    u = Usage(uncached_input_tokens=1000, output_tokens=0, web_search_requests=2, file_search_calls=4)
    c = price("openai", "gpt-5", u)
    assert c.breakdown["web_search"] == D("0.02") and c.breakdown["file_search"] == D("0.01")
    assert c.total_usd == 1000 * D("1.25") / MTOK + D("0.03")
    ci = price("openai", "gpt-5", Usage(uncached_input_tokens=10, code_interpreter_calls=1))
    assert ci.total_usd is None and ci.unpriced_reason == "missing_rate"
