"""DeepSeek's own cache counters, and the savings baseline.

DeepSeek (API docs, "Context Caching"; chat completion usage): ``prompt_tokens`` =
``prompt_cache_hit_tokens`` + ``prompt_cache_miss_tokens``; no ``prompt_tokens_details``. List
prices (USD per MTok) in genai-prices 0.2.3: deepseek-chat $0.27 miss / $0.07 hit / $1.10 output
from 00:30 to 16:30 UTC, half that (off-peak) otherwise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

from nadir_extproc.dialects import DIALECTS
from nadir_extproc.pricing.cost import price
from nadir_extproc.explain import explain
from nadir_extproc.pricing.savings import baseline_cost, cost_saved
from nadir_extproc.pricing.usage import Usage

MTOK = D(1_000_000)
PEAK = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
OFF_PEAK = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)

DEEPSEEK_RESPONSE = {
    "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
    "object": "chat.completion",
    "created": 1760000000,
    "model": "deepseek-chat",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 1500,
        "completion_tokens": 200,
        "total_tokens": 1700,
        "prompt_cache_hit_tokens": 1280,
        "prompt_cache_miss_tokens": 220,
    },
    "system_fingerprint": "fp_test",
}


def test_deepseek_hits_are_cache_reads():
    u = DIALECTS["openai_chat"].usage(DEEPSEEK_RESPONSE)
    assert u == Usage(uncached_input_tokens=220, cache_read_tokens=1280, output_tokens=200)


def test_deepseek_cache_hit_miss_priced_at_peak_and_off_peak():
    u = DIALECTS["openai_chat"].usage(DEEPSEEK_RESPONSE)
    peak = price("deepseek", "deepseek-chat", u, when=PEAK)
    assert peak.total_usd == (220 * D("0.27") + 1280 * D("0.07") + 200 * D("1.10")) / MTOK == D("0.000369")
    assert peak.total_usd != (1500 * D("0.27") + 200 * D("1.10")) / MTOK  # hits billed as misses
    off = price("deepseek", "deepseek-chat", u, when=OFF_PEAK)
    assert off.total_usd == (220 * D("0.135") + 1280 * D("0.035") + 200 * D("0.55")) / MTOK == D("0.0001845")


def test_deepseek_through_the_cli_module():
    e = explain("https://api.deepseek.com/chat/completions", json.dumps(DEEPSEEK_RESPONSE).encode(), when=PEAK)
    assert (e["provider"], e["dialect"], e["cost_usd"]) == ("deepseek", "openai_chat", "0.000369")
    assert e["usage"]["input_tokens"] == 1500 and e["usage"]["cache_read_tokens"] == 1280


def test_when_both_shapes_are_sent_they_agree():
    body = {"usage": {"prompt_tokens": 100, "completion_tokens": 1, "prompt_cache_hit_tokens": 64,
                      "prompt_cache_miss_tokens": 36, "prompt_tokens_details": {"cached_tokens": 64}}}
    assert DIALECTS["openai_chat"].usage(body) == Usage(uncached_input_tokens=36, cache_read_tokens=64, output_tokens=1)


# --- savings -------------------------------------------------------------------------------
WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_default_baseline_is_the_most_expensive_candidate_for_this_usage():
    # 41 in + 11 out: gpt-4o-mini 12.75 µ$, gpt-4.1-mini (0.40/1.60) 34 µ$, gpt-4o (2.50/10) 212.5 µ$.
    usage = Usage(uncached_input_tokens=41, output_tokens=11)
    base = baseline_cost("openai", usage, ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"], when=WHEN)
    assert (base.model, base.total_usd) == ("gpt-4o", D("0.0002125"))
    actual = price("openai", "gpt-4o-mini-2024-07-18", usage, when=WHEN)
    assert cost_saved(actual, base) == D("0.0002125") - D("0.00001275") == D("0.00019975")


def test_baseline_is_chosen_by_the_cost_of_this_usage():
    # gpt-4o $2.50 in / $1.25 cached / $10 out; gpt-4.1 $2 / $0.50 / $8; o3-mini $1.10 / $0.55 / $4.40.
    # 100K cached + 1K out: gpt-4o 0.125 + 0.01 = 0.135; gpt-4.1 0.05 + 0.008 = 0.058.
    cached = Usage(cache_read_tokens=100_000, output_tokens=1000)
    base = baseline_cost("openai", cached, ["gpt-4.1", "gpt-4o"], when=WHEN)
    assert (base.model, base.total_usd) == ("gpt-4o", D("0.135"))
    # 100K uncached input: o3-mini 0.11, gpt-4.1 0.20, gpt-4o 0.25.
    assert baseline_cost("openai", Usage(uncached_input_tokens=100_000), ["o3-mini", "gpt-4.1", "gpt-4o"], when=WHEN).model == "gpt-4o"
    # 100K input on anthropic: claude-haiku-4-5 0.10 vs claude-sonnet-4-5 0.30.
    assert baseline_cost("anthropic", Usage(uncached_input_tokens=100_000), ["claude-haiku-4-5", "claude-sonnet-4-5"], when=WHEN).total_usd == D("0.3")


def test_configured_baseline_wins_and_saving_may_be_negative():
    usage = Usage(uncached_input_tokens=1000, output_tokens=1000)
    base = baseline_cost("openai", usage, ["gpt-4o"], configured="gpt-4o-mini", when=WHEN)
    assert base.model == "gpt-4o-mini"  # 0.15 + 0.60 = 0.00075
    actual = price("openai", "gpt-4o", usage, when=WHEN)  # 2.5 + 10 = 0.0125
    assert cost_saved(actual, base) == D("0.00075") - D("0.0125") == D("-0.01175")


def test_no_baseline_when_nothing_can_be_priced():
    usage = Usage(uncached_input_tokens=1)
    assert baseline_cost("openai", usage, ["gpt-imaginary"], when=WHEN) is None
    assert baseline_cost("openai", usage, [], when=WHEN) is None
    actual = price("openai", "gpt-4o", usage, when=WHEN)
    assert cost_saved(actual, None) is None
    unknown = baseline_cost("openai", usage, [], configured="gpt-imaginary", when=WHEN)
    assert unknown.total_usd is None and cost_saved(actual, unknown) is None
