"""The service tier a *stream* says served it, per dialect (``StreamUsage.service_tier``), and the
price at that tier — the streamed twin of ``served_context`` for JSON bodies.

Tier strings are read by hand from the recorded streams (quoted per row); rates as in
``test_tiers_and_batch.py``: gpt-5 standard $1.25 in / $10 out, flex $0.625 / $5, priority
$2.50 / $20 (catalogue variants effective 2026-10-12).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.dialects import DIALECTS
from nadir_extproc.pricing.cost import price
from nadir_extproc.sse import SSEParser

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)


def read(dialect: str, data: bytes, cuts=()):
    st = DIALECTS[dialect].stream_usage(False)
    p = SSEParser()
    prev = 0
    for c in [*cuts, len(data)]:
        events, _ = p.feed(data[prev:c])
        prev = c
        for e in events:
            st.on_event(e)
    return st


RECORDED = [
    # every chunk: "service_tier":"default"
    ("03-openai-chat-stream-include-usage", "openai_chat", "default"),
    # response.created / in_progress / completed: "service_tier":"flex"
    ("21-openai-responses-stream-gpt-5-usage", "openai_responses", "flex"),
    # message_start.message.usage: "service_tier":"standard"
    ("30-anthropic-stream-basic", "anthropic_messages", "standard"),
    # each chunk's usageMetadata: "serviceTier": "standard"
    ("38-gemini-stream-usage", "gemini", "standard"),
]


@pytest.mark.parametrize(("rid", "dialect", "tier"), RECORDED, ids=[r[0] for r in RECORDED])
def test_recorded_stream_reports_its_served_tier(provider_responses, rid, dialect, tier):
    data = (provider_responses / f"{rid}.response.sse").read_bytes()
    assert read(dialect, data).service_tier == tier
    rng = random.Random(rid)
    for _ in range(10):  # same answer however the bytes are cut
        cuts = sorted(rng.sample(range(1, len(data)), min(25, len(data) - 1)))
        assert read(dialect, data, cuts).service_tier == tier


def test_recorded_flex_stream_is_priced_at_flex_rates(provider_responses):
    data = (provider_responses / "21-openai-responses-stream-gpt-5-usage.response.sse").read_bytes()
    st = read("openai_responses", data)
    cost = price("openai", st.model, st.usage(), when=WHEN, service_tier=st.service_tier)
    # 53 input x $0.625 + 469 output x $5 (flex), per million: 33.125 + 2345 millionths
    assert (cost.total_usd, cost.service_tier) == (D("0.002378125"), "flex")
    # The standard price would have been 53 x 1.25 + 469 x 10 = 0.00475625: twice the bill.
    assert price("openai", st.model, st.usage(), when=WHEN).total_usd == D("0.00475625")


CHAT_PRIORITY = (
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-5-2025-08-07",'
    b'"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    # An OpenAI-compatible server repeating usage on a text chunk; the text quotes the field name.
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":'
    b'"say \\"service_tier\\":\\"flex\\""}}],"usage":{"prompt_tokens":1000,"completion_tokens":50},'
    b'"model":"gpt-5-2025-08-07","service_tier":"priority"}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-5-2025-08-07","service_tier":"priority",'
    b'"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100}}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC_PRIORITY = (
    b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929",'
    b'"usage":{"input_tokens":1000,"output_tokens":1,"service_tier":"priority"}}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":100}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
GEMINI_FLEX = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"modelVersion":"gemini-2.5-flash",'
    b'"usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":100,"serviceTier":"flex"}}\n\n'
)


def test_chat_tier_from_chunks_not_from_message_text():
    # The first usage chunk's text quotes "service_tier":"flex" (escaped inside the string), before
    # the real field: never read as the tier.
    two = CHAT_PRIORITY.split(b"\n\n")
    assert read("openai_chat", b"\n\n".join(two[:2]) + b"\n\n").service_tier == "priority"
    st = read("openai_chat", CHAT_PRIORITY)
    assert st.service_tier == "priority"
    # gpt-5 priority: 1000 x $2.50 + 100 x $20 = 2500 + 2000 millionths
    assert price("openai", st.model, st.usage(), when=WHEN, service_tier=st.service_tier).total_usd == D("0.0045")


def test_anthropic_tier_from_message_start_usage():
    st = read("anthropic_messages", ANTHROPIC_PRIORITY)
    assert (st.service_tier, st.usage().output_tokens) == ("priority", 100)


def test_gemini_tier_from_usage_metadata():
    assert read("gemini", GEMINI_FLEX).service_tier == "flex"


def test_no_tier_reported_is_none():
    plain = b'data: {"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n'
    assert read("openai_chat", plain).service_tier is None


def test_gemini_json_array_stream_tier_is_read_by_the_cost_command():
    from nadir_extproc.explain import explain

    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent"

    def chunks(tier):
        return json.dumps([
            {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "modelVersion": "gemini-2.5-flash"},
            {"candidates": [{"content": {"parts": [{"text": "b"}]}}], "modelVersion": "gemini-2.5-flash",
             "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100, "serviceTier": tier}},
        ]).encode()

    std = explain(url, chunks("standard"), when=WHEN)
    # gemini-2.5-flash $0.30 in / $2.50 out: 300 + 250 millionths
    assert (std["service_tier"], std["cost_usd"]) == ("standard", "0.00055")
    # The catalogue has no flex rates for it: unpriced with the reason, never the standard price.
    flex = explain(url, chunks("flex"), when=WHEN)
    assert (flex["service_tier"], flex["cost_usd"], flex["unpriced_reason"]) == ("flex", None, "unknown_service_tier")
