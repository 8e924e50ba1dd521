"""Shadow routing (issue 21) in the processor, the span attributes, the metrics and the ledger row:
explicit-model requests are scored by the same router call ``model: auto`` uses, the what-if is
priced once at completion, and nothing of it reaches the request or the response.

The rule router decides (``routing/rules.py``): "What is the capital of France?" is short, has no
code fence, no reasoning marker and one message -> weak (gpt-4o-mini on OpenAI's tiers); "Prove
that the square root of 2 is irrational." holds the marker "prove" -> strong (gpt-4o).
Rates (OpenAI pricing page, USD per 1M tokens, input / output): gpt-4o 2.50 / 10.00,
gpt-4o-mini 0.15 / 0.60.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from nadir_extproc.config import Settings, load_settings
from nadir_extproc.ledger.schema import from_outcome
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.server import Context
from nadir_extproc.stats import COUNTS
from nadir_extproc.telemetry import names as n
from nadir_extproc.telemetry.metrics import RequestMetrics
from nadir_extproc.telemetry.spans import span_attributes
from tests.test_processor import _respond, body, headers, set_headers

EASY = "What is the capital of France?"
HARD = "Prove that the square root of 2 is irrational."


class CountingRouter(RuleRouter):
    """The real rule router, counting its calls."""

    calls = 0

    def route(self, request):
        self.calls += 1
        return super().route(request)


def make(settings: Settings | None = None):
    s = settings or Settings()
    pol = s.policy()
    router = CountingRouter(pol)
    done = []
    return RequestProcessor(Context(settings=s, router=router, policy=pol, on_complete=done.append)), router, done


def chat(model: str, prompt: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]}).encode()


def response(model: str, pt: int, ct: int) -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    }).encode()


def run(proc, payload: bytes, served: str, pt: int, ct: int):
    proc.handle(headers("request_headers", {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}))
    rb = proc.handle(body("request_body", payload)).request_body.response
    h = _respond(proc, {}, response(served, pt, ct))
    proc.finish()
    return rb, h


def test_easy_prompt_on_an_explicit_frontier_model_records_the_cheaper_choice_and_the_opportunity():
    proc, router, done = make()
    rb, h = run(proc, chat("gpt-4o", EASY), "gpt-4o-2024-08-06", 1000, 500)
    assert router.calls == 1
    out = done[0]
    # actual: 1000 * 2.50/1e6 + 500 * 10/1e6 = 0.0025 + 0.005 = 0.0075
    # what-if on gpt-4o-mini: 1000 * 0.15/1e6 + 500 * 0.60/1e6 = 0.00015 + 0.0003 = 0.00045 -> opportunity 0.00705
    assert out.cost.total_usd == D("0.0075")
    assert (out.shadow.tier, out.shadow.model, out.shadow.router) == ("weak", "gpt-4o-mini", "rules")
    assert out.shadow_cost.total_usd == D("0.00045")
    assert out.opportunity_usd == D("0.00705")
    assert out.decision is None and out.saved_usd == D(0)  # the client chose: routing changed nothing
    # never in the request or the response: body untouched, no shadow header, same headers as with it off
    assert not rb.body_mutation.body and set(set_headers(rb)) == {"x-nadir-provider"}
    assert not any("shadow" in k or "opportunit" in k for k in h)
    off, _, _ = make(Settings(shadow_routing={"enabled": False}))
    _, h_off = run(off, chat("gpt-4o", EASY), "gpt-4o-2024-08-06", 1000, 500)
    assert {k: v for k, v in h.items() if k != "x-nadir-latency-ms"} == {k: v for k, v in h_off.items() if k != "x-nadir-latency-ms"}

    a = span_attributes(out)
    assert (a[n.SHADOW_TIER], a[n.SHADOW_MODEL], a[n.SHADOW_COST_USD], a[n.SHADOW_OPPORTUNITY_USD]) == (
        "weak", "gpt-4o-mini", "0.00045", "0.00705")
    assert n.ROUTE_TIER not in a  # the real routing attributes stay for model=auto

    row = from_outcome(out, datetime.now(timezone.utc), "r1")
    assert (row.shadow_tier, row.shadow_model, row.shadow_score, row.shadow_cost_usd, row.opportunity_usd) == (
        "weak", "gpt-4o-mini", 0.0, D("0.00045"), D("0.00705"))
    assert row.tier is None and row.cost_usd == D("0.0075")

    m = RequestMetrics(MeterProvider().get_meter("t"))
    m.record(out)
    obs = m.opportunity.observe()
    assert len(obs) == 1 and obs[0].value == pytest.approx(0.00705)
    assert obs[0].attributes == {n.PROVIDER_NAME: "openai", n.RESPONSE_MODEL: "gpt-4o-2024-08-06", n.SHADOW_TIER: "weak"}


def test_hard_prompt_keeps_the_frontier_model_so_there_is_no_opportunity():
    proc, _, done = make()
    run(proc, chat("gpt-4o", HARD), "gpt-4o-2024-08-06", 200, 100)
    out = done[0]
    # 200 * 2.50/1e6 + 100 * 10/1e6 = 0.0005 + 0.001 = 0.0015, on both sides
    assert (out.shadow.tier, out.shadow.model) == ("strong", "gpt-4o")
    assert out.cost.total_usd == out.shadow_cost.total_usd == D("0.0015")
    assert out.opportunity_usd == D(0)


def test_a_cheaper_explicit_model_than_the_shadow_choice_is_no_opportunity():
    # gpt-4o-mini asked for a hard prompt: what-if on gpt-4o costs more; the opportunity is 0, never negative
    proc, _, done = make()
    run(proc, chat("gpt-4o-mini", HARD), "gpt-4o-mini", 1000, 500)
    out = done[0]
    assert out.shadow_cost.total_usd == D("0.0075") and out.cost.total_usd == D("0.00045")
    assert out.opportunity_usd == D(0)


def test_model_auto_has_its_real_saving_and_no_shadow_fields():
    proc, router, done = make()
    run(proc, chat("auto", EASY), "gpt-4o-mini", 1000, 500)
    out = done[0]
    assert router.calls == 1  # the routing call itself, not a second shadow one
    assert out.shadow is None and out.shadow_cost is None and out.opportunity_usd is None
    assert out.saved_usd == D("0.00705")  # baseline gpt-4o 0.0075 - 0.00045
    row = from_outcome(out, datetime.now(timezone.utc), "r")
    assert (row.shadow_tier, row.shadow_model, row.shadow_cost_usd, row.opportunity_usd) == (None, None, None, None)


@pytest.mark.parametrize("cfg", [{"sample_rate": 0}, {"enabled": False}, False])
def test_sample_rate_0_or_off_never_calls_the_router_and_counts_it(cfg):
    proc, router, done = make(Settings(shadow_routing=cfg))
    before = COUNTS["shadow_not_sampled"]
    run(proc, chat("gpt-4o", EASY), "gpt-4o-2024-08-06", 1000, 500)
    assert router.calls == 0
    assert COUNTS["shadow_not_sampled"] == before + 1
    out = done[0]
    assert out.shadow is None and out.opportunity_usd is None and out.cost.total_usd == D("0.0075")


def test_sample_rate_from_the_environment_and_a_bad_rate_is_refused(tmp_path):
    assert load_settings(env={"NADIR_SHADOW_SAMPLE_RATE": "0"}).shadow_routing.sample_rate == 0
    assert Settings().shadow_routing.enabled and Settings().shadow_routing.sample_rate == 1.0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("shadow_routing: {sample_rate: 1.5}\n")
    from nadir_extproc.config import ConfigError

    with pytest.raises(ConfigError, match="shadow_routing.sample_rate"):
        load_settings(cfg, env={})


def test_a_sampled_share_of_requests_is_scored():
    s = Settings(shadow_routing={"sample_rate": 0.5})
    scored = 0
    for _ in range(400):
        proc, router, _ = make(s)
        run(proc, chat("gpt-4o", EASY), "gpt-4o", 10, 5)
        scored += router.calls
    assert 120 < scored < 280  # binomial(400, 0.5): mean 200, sd 10


def test_router_error_in_shadow_is_counted_and_the_request_is_untouched():
    class Broken(CountingRouter):
        def route(self, request):
            raise RuntimeError("boom")

    s = Settings()
    done = []
    proc = RequestProcessor(Context(settings=s, router=Broken(s.policy()), policy=s.policy(), on_complete=done.append))
    before = COUNTS["shadow_router_error"]
    rb, h = run(proc, chat("gpt-4o", EASY), "gpt-4o", 1000, 500)
    assert COUNTS["shadow_router_error"] == before + 1
    assert done[0].shadow is None and done[0].cost.total_usd == D("0.0075") and h["x-nadir-cost-usd"] == b"0.0075"


def test_a_tier_pin_does_not_steer_the_shadow_choice():
    # x-nadir-tier pins the auto path's tier; for an explicit model the shadow question is the router's own choice
    proc, _, done = make()
    proc.handle(headers("request_headers", {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json",
                                            "x-nadir-tier": "strong"}))
    proc.handle(body("request_body", chat("gpt-4o", EASY)))
    _respond(proc, {}, response("gpt-4o", 1000, 500))
    proc.finish()
    assert (done[0].shadow.tier, done[0].shadow.model, done[0].opportunity_usd) == ("weak", "gpt-4o-mini", D("0.00705"))
