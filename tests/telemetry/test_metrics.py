"""Request metrics from ``Outcome``s through the real OTel SDK (in-memory reader): token usage with
the convention's buckets, duration, cost/savings counters, routing and unpriced counts, and bounded
label sets (no user, no key id)."""

from __future__ import annotations

import pytest

from nadir_extproc.record import Outcome
from nadir_extproc.routing.base import Decision
from tests.telemetry.test_span_attributes import T0, chat_outcome

# The GenAI convention's advised buckets for gen_ai.client.token.usage and operation.duration.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


def _by(points, key):
    return {p.attributes.get(key): p for p in points}


def tagged(**kw) -> Outcome:
    o = chat_outcome(**kw)
    o.tags = {"user": "alice@example.com", "team": "search", "feature": "autocomplete", "env": "prod", "session": "s-1"}
    o.key_id = "3f2a9c0d11e5b6a7"
    return o


def test_token_usage_histogram_by_token_type(mem):
    mem.tel.record(tagged())
    pts = _by(mem.metrics()["gen_ai.client.token.usage"], "gen_ai.token.type")
    assert set(pts) == {"input", "output"}
    assert (pts["input"].sum, pts["input"].count) == (1200, 1)  # 1000 uncached + 200 cache reads
    assert (pts["output"].sum, pts["output"].count) == (500, 1)
    assert tuple(pts["input"].explicit_bounds) == TOKEN_BUCKETS
    # 1200 falls in (1024, 4096]: bucket index 6
    assert pts["input"].bucket_counts[6] == 1 and sum(pts["input"].bucket_counts) == 1
    a = dict(pts["input"].attributes)
    assert a == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "auto",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.token.type": "input",
    }


def test_no_token_records_when_usage_is_unknown(mem):
    mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="auto", status=502,
                           start_ns=T0, end_ns=T0 + 10_000_000))
    m = mem.metrics()
    assert "gen_ai.client.token.usage" not in m
    (d,) = m["gen_ai.client.operation.duration"]
    assert d.attributes["error.type"] == "502"


def test_operation_duration_seconds(mem):
    mem.tel.record(tagged())  # start T0, end T0 + 250 ms
    (d,) = mem.metrics()["gen_ai.client.operation.duration"]
    assert d.sum == 0.25 and d.count == 1
    assert tuple(d.explicit_bounds) == DURATION_BUCKETS
    assert "error.type" not in d.attributes


def test_cost_and_savings_counters_by_provider_model_and_tags(mem):
    # two calls of 0.000465 USD each, saving 0.007285 each (see test_span_attributes)
    mem.tel.record(tagged())
    mem.tel.record(tagged())
    m = mem.metrics()
    (cost,) = m["nadir.llm.cost"]
    assert cost.value == pytest.approx(0.00093, rel=1e-12)
    assert dict(cost.attributes) == {
        "gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "nadir.tag.team": "search", "nadir.tag.feature": "autocomplete", "nadir.tag.env": "prod",
    }
    (saved,) = m["nadir.llm.savings"]
    assert saved.value == pytest.approx(0.01457, rel=1e-12)


def test_user_session_and_key_id_never_become_labels(mem):
    mem.tel.record(tagged())
    for name, points in mem.metrics().items():
        for p in points:
            values = {str(v) for v in p.attributes.values()}
            keys = set(p.attributes)
            assert "alice@example.com" not in values, name
            assert "3f2a9c0d11e5b6a7" not in values, name
            assert "s-1" not in values, name
            assert not keys & {"nadir.tag.user", "nadir.key_id", "nadir.tag.session"}, name


def test_router_decisions_by_tier_and_unpriced_by_reason(mem):
    mem.tel.record(tagged())
    mem.tel.record(tagged(decision=Decision(model="gpt-4o", tier="strong", score=0.9, reason="code_fence", router="rules")))
    mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="auto", status=429,
                           decision=Decision(model="gpt-4o-mini", tier="weak", score=0.1, reason="short_simple", router="rules"),
                           unpriced_reason="provider_error"))
    m = mem.metrics()
    tiers = {p.attributes["nadir.route.tier"]: p.value for p in m["nadir.router.decisions"]}
    assert tiers == {"weak": 2, "strong": 1}
    (unpriced,) = m["nadir.unpriced.requests"]
    assert unpriced.value == 1 and unpriced.attributes["nadir.cost.unpriced_reason"] == "provider_error"


def test_processing_duration_in_seconds(mem):
    mem.tel.record(tagged())  # latency_ms 1.5
    (p,) = mem.metrics()["nadir.extproc.processing.duration"]
    assert p.sum == 0.0015 and p.count == 1


def test_cost_counter_sums_exactly_in_decimal(mem):
    # gpt-4o input 2.50 USD per 1M: 40 000 tokens = 0.1 USD. Three calls = 0.3 USD exactly (summing
    # floats would give 0.1 + 0.1 + 0.1 = 0.30000000000000004).
    from nadir_extproc.pricing.cost import price
    from nadir_extproc.pricing.usage import Usage

    u = Usage(uncached_input_tokens=40_000)
    for _ in range(3):
        mem.tel.record(Outcome(dialect="openai_chat", provider="openai", requested_model="gpt-4o", response_model="gpt-4o",
                               status=200, usage=u, cost=price("openai", "gpt-4o", u)))
    (cost,) = mem.metrics()["nadir.llm.cost"]
    assert cost.value == 0.3


def test_counter_attribute_sets_are_bounded_with_an_overflow_set():
    from decimal import Decimal

    from nadir_extproc.telemetry.metrics import Sums

    s = Sums(limit=2)
    for team, usd in (("a", "0.1"), ("b", "0.2"), ("c", "0.3"), ("d", "0.4"), ("a", "0.5")):
        s.add((("nadir.tag.team", team),), Decimal(usd))
    got = {tuple(sorted(o.attributes.items())): o.value for o in s.observe()}
    # a and b keep their own sets (a: 0.1 + 0.5); c and d go to the overflow set: 0.3 + 0.4
    assert got == {(("nadir.tag.team", "a"),): 0.6, (("nadir.tag.team", "b"),): 0.2, (("otel.metric.overflow", True),): 0.7}
