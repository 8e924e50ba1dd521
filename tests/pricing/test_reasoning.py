"""Reasoning/thinking tokens are billed as output, once.

gemini-2.5-flash list prices (Google AI pricing page, USD per MTok): $0.30 input (text), $2.50 output
*including thinking tokens*, $0.03 context-cache read. Gemini reports ``thoughtsTokenCount`` beside
``candidatesTokenCount`` (not inside it), and ``cachedContentTokenCount`` inside ``promptTokenCount``;
the dialect folds them into ``Usage``: output = candidates + thoughts, reasoning = thoughts,
uncached input = prompt - cached.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

from nadir_extproc.pricing.cost import price
from nadir_extproc.explain import explain
from nadir_extproc.pricing.usage import Usage

WHEN = datetime(2026, 11, 1, tzinfo=UTC)
MTOK = D(1_000_000)


def test_gemini_thinking_tokens_billed_at_the_output_rate():
    # promptTokenCount 1234, candidatesTokenCount 56, thoughtsTokenCount 789
    usage = Usage(uncached_input_tokens=1234, output_tokens=56 + 789, reasoning_tokens=789)
    cost = price("google", "models/gemini-2.5-flash", usage, when=WHEN)
    assert cost.model == "gemini-2.5-flash"
    assert cost.breakdown["output"] == 845 * D("2.50") / MTOK == D("0.0021125")
    assert cost.total_usd == (1234 * D("0.30") + 845 * D("2.50")) / MTOK == D("0.0024827")
    assert cost.total_usd != D("0.0005102")  # thoughts dropped
    assert cost.total_usd != D("0.0044552")  # thoughts billed twice


def test_gemini_implicit_cache_hit_with_thinking():
    # promptTokenCount 11234 of which cachedContentTokenCount 10000; candidates 56, thoughts 789.
    usage = Usage(uncached_input_tokens=1234, cache_read_tokens=10000, output_tokens=845, reasoning_tokens=789)
    cost = price("google", "gemini-2.5-flash", usage, when=WHEN)
    assert cost.total_usd == (1234 * D("0.30") + 10000 * D("0.03") + 845 * D("2.50")) / MTOK == D("0.0027827")


def test_gemini_body_with_thoughts_and_cached_content_priced_end_to_end():
    # From the raw usageMetadata, through the dialect's counting rule, to the bill (what the cost
    # command and the request path run): prompt 11,234 of which cached 10,000; candidates 56;
    # thoughts 789 (beside candidates, billed as output).
    body = {"modelVersion": "gemini-2.5-flash", "candidates": [{"content": {"parts": [{"text": "x"}]}}],
            "usageMetadata": {"promptTokenCount": 11234, "cachedContentTokenCount": 10000,
                              "candidatesTokenCount": 56, "thoughtsTokenCount": 789, "totalTokenCount": 12079}}
    e = explain("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
                json.dumps(body).encode(), when=WHEN)
    assert e["usage"]["input_tokens"] == 11234 and e["usage"]["cache_read_tokens"] == 10000
    assert (e["usage"]["output_tokens"], e["usage"]["reasoning_tokens"]) == (845, 789)
    # 1234 x 0.30 + 10000 x 0.03 + 845 x 2.50 = 370.2 + 300 + 2112.5 millionths
    assert e["cost_usd"] == "0.0027827"
