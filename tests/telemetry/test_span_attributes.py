"""The GenAI span built from an ``Outcome``: name, kind, times, semconv attributes, cost and routing.

Outcomes are built by hand with real ``Usage`` and real pricing (``price``); every expected value is
hand arithmetic from list rates (USD per 1M tokens) stated next to it. Spans go through the real
SDK to its in-memory exporter.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from nadir_extproc.pricing.cost import price
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.record import Outcome
from nadir_extproc.routing.base import Decision

T0 = 1_800_000_000_000_000_000  # an arbitrary wall-clock instant, Unix ns
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def chat_outcome(**kw) -> Outcome:
    """A routed OpenAI chat call: 1000 uncached + 200 cache-read input, 500 output (100 reasoning)
    on gpt-4o-mini, baseline gpt-4o."""
    usage = Usage(uncached_input_tokens=1000, cache_read_tokens=200, output_tokens=500, reasoning_tokens=100)
    cost = price("openai", "gpt-4o-mini-2024-07-18", usage)
    base = price("openai", "gpt-4o", usage)
    o = Outcome(
        dialect="openai_chat", provider="openai", requested_model="auto", routed_model="gpt-4o-mini",
        decision=Decision(model="gpt-4o-mini", tier="weak", score=0.125, reason="short_simple", router="rules"),
        response_model="gpt-4o-mini-2024-07-18", status=200, usage=usage, cost=cost, baseline=base,
        saved_usd=base.total_usd - cost.total_usd, latency_ms=1.5, start_ns=T0, end_ns=T0 + 250_000_000,
    )
    o.request_params = {"gen_ai.request.max_tokens": 64, "gen_ai.request.temperature": 0.2}
    o.response_id = "chatcmpl-abc"
    o.finish_reasons = ["stop"]
    o.router_ms = 0.25
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def test_chat_span_name_kind_times_and_gen_ai_attributes(mem):
    mem.tel.record(chat_outcome())
    s = mem.only_span()
    assert s.name == "chat auto"
    assert s.kind is SpanKind.CLIENT
    assert (s.start_time, s.end_time) == (T0, T0 + 250_000_000)
    assert s.status.status_code is StatusCode.UNSET
    a = dict(s.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "auto"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.id"] == "chatcmpl-abc"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.temperature"] == 0.2
    # input = all input: 1000 uncached + 200 cache reads
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert a["gen_ai.usage.output_tokens"] == 500
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.usage.reasoning.output_tokens"] == 100
    assert "gen_ai.usage.cache_creation.input_tokens" not in a  # no writes: absent, not 0


def test_cost_saving_and_routing_attributes(mem):
    # gpt-4o-mini: 1000*0.15 + 200*0.075 + 500*0.60 = 150 + 15 + 300 = 465 per 1M -> 0.000465 USD
    # gpt-4o:      1000*2.50 + 200*1.25  + 500*10.0 = 2500 + 250 + 5000 = 7750  -> 0.00775 USD
    mem.tel.record(chat_outcome())
    a = dict(mem.only_span().attributes)
    assert a["nadir.cost.usd"] == "0.000465"
    assert a["gen_ai.usage.cost"] == 0.000465
    assert a["nadir.cost.baseline_model"] == "gpt-4o"
    assert a["nadir.cost.baseline_usd"] == "0.00775"
    assert a["nadir.cost.saved_usd"] == "0.007285"
    assert a["nadir.cost.catalogue"] == "genai-prices 0.2.3"
    assert "nadir.cost.unpriced_reason" not in a
    assert a["nadir.route.model"] == "gpt-4o-mini"
    assert a["nadir.route.tier"] == "weak"
    assert a["nadir.route.score"] == 0.125
    assert a["nadir.route.reason"] == "short_simple"
    assert a["nadir.route.router"] == "rules"
    assert a["nadir.route.latency_ms"] == 0.25
    assert a["nadir.latency_ms"] == 1.5
    assert a["nadir.stream"] is False
    assert "nadir.stream.cut" not in a


def test_gen_ai_usage_cost_can_be_turned_off(mem_factory):
    m = mem_factory(emit_usage_cost=False)
    m.tel.record(chat_outcome())
    a = dict(m.only_span().attributes)
    assert "gen_ai.usage.cost" not in a
    assert a["nadir.cost.usd"] == "0.000465"


def test_anthropic_cache_writes_count_as_input_and_as_cache_creation(mem):
    # 100 uncached + 2000 read + 300 (5m) + 50 (1h) written -> input_tokens 2450, creation 350
    u = Usage(uncached_input_tokens=100, cache_read_tokens=2000, cache_write_tokens=300, cache_write_1h_tokens=50, output_tokens=40)
    mem.tel.record(Outcome(dialect="anthropic_messages", provider="anthropic", requested_model="claude-haiku-4-5",
                           response_model="claude-haiku-4-5-20251001", status=200, usage=u))
    s = mem.only_span()
    assert s.name == "chat claude-haiku-4-5"
    a = dict(s.attributes)
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.usage.input_tokens"] == 2450
    assert a["gen_ai.usage.cache_read.input_tokens"] == 2000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 350
    assert a["gen_ai.usage.output_tokens"] == 40
    assert "gen_ai.usage.reasoning.output_tokens" not in a


def test_unknown_usage_means_no_usage_attributes_at_all(mem):
    """23-otel-span-lifecycle-streaming-usage S2: usage unknown -> usage attributes absent, not 0."""
    mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="gpt-4o", status=200,
                           unpriced_reason="no_usage"))
    a = dict(mem.only_span().attributes)
    assert not [k for k in a if k.startswith("gen_ai.usage.")]
    assert a["nadir.cost.unpriced_reason"] == "no_usage"
    assert "nadir.cost.usd" not in a


def test_provider_error_sets_error_status_and_error_type(mem):
    mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="auto", status=429,
                           unpriced_reason="provider_error", result="provider_error"))
    s = mem.only_span()
    assert s.status.status_code is StatusCode.ERROR
    a = dict(s.attributes)
    assert a["error.type"] == "429"
    assert a["http.response.status_code"] == 429
    assert not [k for k in a if k.startswith("gen_ai.usage.")]


def test_error_event_inside_a_200_stream_is_an_error(mem):
    mem.tel.record(Outcome(dialect="openai_responses", provider="openai", requested_model="gpt-4o", status=200,
                           stream=True, result="provider_error"))
    s = mem.only_span()
    assert s.status.status_code is StatusCode.ERROR
    assert s.attributes["error.type"] == "provider_error"


def test_cut_stream_is_marked_and_keeps_what_is_known(mem):
    u = Usage(uncached_input_tokens=12, output_tokens=0)
    mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="auto", status=200,
                           stream=True, result="cut_stream", usage=u, start_ns=T0, end_ns=T0 + 7))
    s = mem.only_span()
    assert s.end_time == T0 + 7
    a = dict(s.attributes)
    assert a["nadir.stream"] is True and a["nadir.stream.cut"] is True
    assert a["gen_ai.usage.input_tokens"] == 12
    assert s.status.status_code is StatusCode.UNSET


def test_tags_and_key_id_on_the_span(mem):
    o = chat_outcome()
    o.tags = {"user": "u-17", "team": "search", "env": "prod"}
    o.key_id = "3f2a9c0d11e5b6a7"
    mem.tel.record(o)
    a = dict(mem.only_span().attributes)
    assert a["nadir.tag.user"] == "u-17"
    assert a["nadir.tag.team"] == "search"
    assert a["nadir.tag.env"] == "prod"
    assert a["nadir.key_id"] == "3f2a9c0d11e5b6a7"


def test_content_is_exported_only_when_opted_in(mem_factory):
    content = {"gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"secret plan"}]}]'}
    off = mem_factory()
    off.tel.record(chat_outcome(content=content))
    assert "gen_ai.input.messages" not in off.only_span().attributes
    on = mem_factory(capture_content=True)
    on.tel.record(chat_outcome(content=content))
    assert on.only_span().attributes["gen_ai.input.messages"] == content["gen_ai.input.messages"]


def test_parent_from_traceparent_carrier(mem):
    mem.tel.record(chat_outcome(trace_carrier={"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "k=v"}))
    s = mem.only_span()
    assert format(s.context.trace_id, "032x") == TRACE
    assert format(s.parent.span_id, "016x") == PARENT
    assert s.parent.is_remote


@pytest.mark.parametrize("carrier", [{}, {"traceparent": "garbage"}, {"traceparent": f"00-{'0' * 32}-{PARENT}-01"}])
def test_without_a_valid_parent_a_new_trace_starts(mem, carrier):
    mem.tel.record(chat_outcome(trace_carrier=carrier))
    s = mem.only_span()
    assert s.parent is None
    assert s.context.trace_id != 0


def test_unsampled_parent_is_respected(mem):
    mem.tel.record(chat_outcome(trace_carrier={"traceparent": f"00-{TRACE}-{PARENT}-00"}))
    assert mem.spans() == ()


def test_money_attributes_are_exact_decimal_strings(mem):
    # 3 output tokens of gpt-4o-mini at 0.60/1M = 0.0000018 USD: a float would print 1.8e-06.
    u = Usage(uncached_input_tokens=0, output_tokens=3)
    cost = price("openai", "gpt-4o-mini", u)
    assert cost.total_usd == Decimal("0.0000018")
    mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="gpt-4o-mini",
                           response_model="gpt-4o-mini", status=200, usage=u, cost=cost))
    a = dict(mem.only_span().attributes)
    assert a["nadir.cost.usd"] == "0.0000018"
    assert a["gen_ai.usage.input_tokens"] == 0  # usage known: input counted, even when 0
