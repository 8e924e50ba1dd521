"""Shadow routing through the real Envoy 1.40 (issue 21): explicit-model traffic with easy and hard
prompts, official SDK clients, usage fixed with the emulator's ``x-emulator-usage`` header. Each
request's ledger row and span carry what the router would have chosen and what that would have
cost; the response carries none of it; ``report --opportunity`` over the ledger equals the hand
arithmetic below. A second stack with ``NADIR_SHADOW_SAMPLE_RATE=0`` never scores.

The stack uses the documented rule router (``routing/rules.py``), so tiers are justified by rule:
- EASY "What is the capital of France?": short, no code fence, no reasoning marker, one message -> weak;
- HARD "Prove that the square root of 2 is irrational.": marker "prove" -> strong.
OpenAI tiers: weak gpt-4o-mini, strong gpt-4o; Anthropic: weak claude-haiku-4-5, strong claude-sonnet-4-5.

Rates (providers' pricing pages, USD per 1M tokens input / output): gpt-4o 2.50 / 10.00,
gpt-4o-mini 0.15 / 0.60, claude-sonnet-4-5 3.00 / 15.00, claude-haiku-4-5 1.00 / 5.00.

| request                          | usage in/out | actual                    | shadow            | what-if                     | opportunity |
|----------------------------------|--------------|---------------------------|-------------------|-----------------------------|-------------|
| A gpt-4o, EASY (team search)     | 1000 / 500   | 0.0025 + 0.005 = 0.0075   | weak gpt-4o-mini  | 0.00015 + 0.0003 = 0.00045  | 0.00705     |
| B gpt-4o, HARD (team search)     | 2000 / 1000  | 0.005 + 0.01 = 0.015      | strong gpt-4o     | 0.015                       | 0           |
| C claude-sonnet-4-5, EASY (ads)  | 1000 / 200   | 0.003 + 0.003 = 0.006     | weak claude-haiku-4-5 | 0.001 + 0.001 = 0.002   | 0.004       |
| D auto, EASY (ads)               | 1000 / 500   | gpt-4o-mini: 0.00045      | - (real saving 0.00705)                         | -           |

Totals: spend 0.02895; shadow requests 3; downgradable A and C: 0.0075 + 0.006 = 0.0135, share
0.0135 / 0.02895 = 0.466321 (6 places); opportunity 0.00705 + 0.004 = 0.01105.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import anthropic
import openai
import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from nadir_extproc.ledger.store import open_store
from nadir_extproc.stack import Stack
from tests.integration.conftest import usage

EASY = "What is the capital of France?"
HARD = "Prove that the square root of 2 is irrational."


@pytest.fixture(scope="module")
def stack(receiver):
    with Stack(otlp_endpoint=receiver.endpoint, extproc_env={"NADIR_ROUTER": "rules", "OTEL_BSP_SCHEDULE_DELAY": "50"}) as s:
        yield s


def ledger_rows(stack: Stack, n: int, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            s = open_store(sqlite_dir=stack.dir / "state" / "ledger", create=False)
            try:
                rows = list(s.rows())
            finally:
                s.close()
        except FileNotFoundError:
            rows = []
        if len(rows) >= n or time.monotonic() > deadline:
            return {r.request_id: r for r in rows}
        time.sleep(0.2)


def test_explicit_model_traffic_records_what_routing_would_save(stack, receiver):
    oai = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=stack.base_url, api_key="sk-test", max_retries=0)
    sent = {}

    def chat(name, model, prompt, team, **u):
        raw = oai.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": prompt}],
            extra_headers={**usage(**u), "x-nadir-team": team, "x-request-id": name})
        sent[name] = raw.headers
        return raw.parse()

    chat("A", "gpt-4o", EASY, "search", input=1000, output=500)
    chat("B", "gpt-4o", HARD, "search", input=2000, output=1000)
    raw = claude.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": EASY}],
        extra_headers={**usage(input=1000, output=200), "x-nadir-team": "ads", "x-request-id": "C"})
    sent["C"] = raw.headers
    chat("D", "auto", EASY, "ads", input=1000, output=500)

    # Never in the response: only the usual x-nadir-* fields, and the explicit models were not rewritten.
    assert sent["A"]["x-nadir-cost-usd"] == "0.0075" and sent["C"]["x-nadir-cost-usd"] == "0.006"
    assert sent["D"]["x-nadir-routed-to"].startswith("gpt-4o-mini") and sent["D"]["x-nadir-cost-saved"] == "0.00705"
    for h in sent.values():
        assert not [k for k in h if "shadow" in k.lower() or "opportunit" in k.lower()]
    assert sent["A"]["x-nadir-routed-to"].startswith("gpt-4o") and not sent["A"]["x-nadir-routed-to"].startswith("gpt-4o-mini")

    rows = ledger_rows(stack, 4)
    got = {k: (r.cost_usd, r.shadow_tier, r.shadow_model, r.shadow_cost_usd, r.opportunity_usd) for k, r in rows.items()}
    assert got == {
        "A": (D("0.0075"), "weak", "gpt-4o-mini", D("0.00045"), D("0.00705")),
        "B": (D("0.015"), "strong", "gpt-4o", D("0.015"), D("0")),
        "C": (D("0.006"), "weak", "claude-haiku-4-5", D("0.002"), D("0.004")),
        "D": (D("0.00045"), None, None, None, None),
    }
    assert rows["D"].tier == "weak" and rows["D"].saved_usd == D("0.00705")

    # The span carries the same fields.
    span = receiver.our_span(lambda s: s.attrs.get("nadir.shadow.model") == "claude-haiku-4-5")
    a = span.attrs
    assert (a["nadir.shadow.tier"], a["nadir.shadow.cost_usd"], a["nadir.shadow.opportunity_usd"], a["nadir.cost.usd"]) == (
        "weak", "0.002", "0.004", "0.006")

    # The report over this ledger: the hand arithmetic of the module docstring.
    res = CliRunner().invoke(app, ["report", "--opportunity", "--sqlite-dir", str(stack.dir / "state" / "ledger"),
                                   "--by", "team", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    t = doc["total"]
    assert (t["requests"], t["cost_usd"], t["shadow_requests"], t["downgradable_requests"], t["downgradable_cost_usd"],
            t["downgradable_share"], t["opportunity_usd"]) == (4, "0.02895", 3, 2, "0.0135", "0.466321", "0.01105")
    by = {g["team"]: (g["cost_usd"], g["downgradable_cost_usd"], g["opportunity_usd"]) for g in doc["groups"]}
    assert by == {"search": ("0.0225", "0.0075", "0.00705"), "ads": ("0.00645", "0.006", "0.004")}
    assert "80.2 %" in doc["router_quality"]["statement"]


def test_sample_rate_0_turns_shadow_scoring_off(tmp_path):
    with Stack(extproc_env={"NADIR_ROUTER": "rules", "NADIR_SHADOW_SAMPLE_RATE": "0"}) as s:
        oai = openai.OpenAI(base_url=f"{s.base_url}/v1", api_key="sk-test", max_retries=0)
        raw = oai.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": EASY}], extra_headers=usage(input=1000, output=500))
        assert raw.headers["x-nadir-cost-usd"] == "0.0075"
        rows = list(ledger_rows(s, 1).values())
        assert [(r.cost_usd, r.shadow_tier, r.shadow_model, r.shadow_cost_usd, r.opportunity_usd) for r in rows] == [
            (D("0.0075"), None, None, None, None)]
        s.stop_process("extproc")  # its log names each event the first time it is counted
        assert "first shadow_not_sampled" in s.log("extproc")
