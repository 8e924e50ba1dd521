"""Priced once (issue 11): one pure function turns (provider side, request side, response side, time)
into the priced result; its fields are what the headers, the comment block and the JSON object carry.
Rates from genai-prices 0.2.3, worked out by hand: gpt-4o-mini 0.15 / 0.60 USD per MTok (cached
0.075), gpt-4o 2.50 / 10.00 (cached 1.25), gpt-4.1-mini 0.40 / 1.60 (cached 0.10)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.priced import Billed, PriceRoute, RequestFacts, price_request
from nadir_extproc.pricing.savings import baseline_cost
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)
OPENAI = PriceRoute("openai", None, ("gpt-4o", "gpt-4.1-mini", "gpt-4o-mini"))
U = Usage(uncached_input_tokens=1000, output_tokens=100)


def test_routed_request_cost_baseline_saving_and_fields():
    pr = price_request(OPENAI, RequestFacts(routed=True), Billed("gpt-4o-mini-2024-07-18", U), WHEN)
    # 1000 x 0.15/1e6 + 100 x 0.60/1e6 = 0.00021; gpt-4o: 0.0025 + 0.001 = 0.0035; saved 0.00329
    assert pr.cost.total_usd == D("0.00021")
    assert (pr.baseline.model, pr.baseline.total_usd) == ("gpt-4o", D("0.0035"))
    assert pr.saved_usd == D("0.00329") and pr.unpriced_reason is None
    assert pr.fields(1.23456) == {
        "x-nadir-routed-to": "gpt-4o-mini-2024-07-18", "x-nadir-cost-usd": "0.00021",
        "x-nadir-price-source": "genai-prices 0.2.3", "x-nadir-cost-saved": "0.00329", "x-nadir-latency-ms": "1.235",
    }


def test_explicit_model_saves_exactly_zero_and_prices_no_baseline():
    pr = price_request(OPENAI, RequestFacts(routed=False), Billed("gpt-4o", U), WHEN)
    assert pr.cost.total_usd == D("0.0035") and pr.saved_usd == 0 and pr.baseline is None


def test_unpriced_reasons_and_partial_cost():
    unknown = price_request(OPENAI, RequestFacts(True), Billed("gpt-imaginary", U), WHEN)
    assert unknown.unpriced_reason == "unknown_model" and unknown.saved_usd is None
    assert "x-nadir-cost-usd" not in unknown.fields(0) and unknown.fields(0)["x-nadir-unpriced-reason"] == "unknown_model"
    failed = price_request(OPENAI, RequestFacts(True), Billed("gpt-4o-mini", unpriced="stream_error", partial=U), WHEN)
    assert failed.cost is None and failed.unpriced_reason == "stream_error"
    assert failed.partial_cost.total_usd == D("0.00021")  # what the stream reported, priced apart
    unsafe = price_request(OPENAI, RequestFacts(True), Billed("gpt-4o\r\nx-evil: 1", unpriced="provider_error"), WHEN)
    assert "x-nadir-routed-to" not in unsafe.fields(0)  # never reflected into a header


def test_shadow_what_if_and_opportunity():
    pr = price_request(OPENAI, RequestFacts(False, shadow_model="gpt-4o-mini"), Billed("gpt-4o", U), WHEN)
    assert pr.shadow_cost.total_usd == D("0.00021") and pr.opportunity_usd == D("0.0035") - D("0.00021")


USAGES = [Usage(), Usage(uncached_input_tokens=41, output_tokens=11), Usage(cache_read_tokens=100_000, output_tokens=1000),
          Usage(uncached_input_tokens=300_000, output_tokens=5), Usage(output_tokens=2000, reasoning_tokens=1500),
          Usage(uncached_input_tokens=10, cache_write_tokens=500, output_tokens=3)]
POOLS = [("openai", ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"]), ("openai", ["gpt-4o", "gpt-4o-mini"]),
         ("openai", ["o3-mini", "gpt-4.1", "gpt-4o"]), ("anthropic", ["claude-haiku-4-5", "claude-sonnet-4-5"]),
         ("google", ["gemini-2.5-flash", "gemini-2.5-pro"]), ("openai", ["gpt-4o-mini", "gpt-imaginary"])]


@pytest.mark.parametrize("provider, pool", POOLS)
@pytest.mark.parametrize("usage", USAGES)
def test_memoised_baseline_is_the_most_expensive_candidate_first_on_a_tie(provider, pool, usage):
    # The brute force the memo replaces: every candidate priced, the first most expensive wins.
    best = None
    for m in pool:
        c = price(provider, m, usage, when=WHEN)
        if c.total_usd is not None and (best is None or c.total_usd > best.total_usd):
            best = c
    for _ in range(2):  # first call fills the memo, second reads it
        got = baseline_cost(provider, usage, pool, when=WHEN)
        assert (got.model, got.total_usd) == (best.model, best.total_usd) if best else got is None
