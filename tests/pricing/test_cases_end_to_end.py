"""Every shared case of kind ``pricing`` or ``usage-extraction`` (../shared/cases 01, 02, 04, 10, 18,
25, 26), from the raw response body or stream through the dialect's usage rule to the price, via
``explain`` (what ``nadir-extproc cost`` runs). The expected USD is the case's own value, and the
same literal is written here with the arithmetic (tokens x list rate, USD per MTok)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from nadir_extproc.explain import explain
from tests.conftest import load_case

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)
OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
OPENAI_RESPONSES = "https://api.openai.com/v1/responses"
ANTHROPIC = "https://api.anthropic.com/v1/messages"


def test_kinds_covered(cases_dir):
    kinds = {p.name[:2]: json.loads(p.read_text())["kind"] for p in cases_dir.glob("*.json")}
    covered = {"01", "02", "04", "10", "18", "25", "26"}
    assert {k for k, v in kinds.items() if v in ("pricing", "usage-extraction")} <= covered


def test_case01_openai_cached_subset(cases_dir):
    c = load_case(cases_dir, "01-openai-cached-tokens-subset")
    e = explain(OPENAI_CHAT, json.dumps(c["input"]["response_body"]).encode(), when=WHEN)
    # 206 x 2.50 + 2944 x 1.25 + 412 x 10 = 515 + 3680 + 4120 millionths
    assert D(e["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.008315")
    assert e["usage"]["input_tokens"] == 3150 and e["usage"]["cache_read_tokens"] == 2944


def test_case02_anthropic_disjoint_buckets(cases_dir):
    c = load_case(cases_dir, "02-anthropic-cache-buckets-additive")
    e = explain(ANTHROPIC, json.dumps(c["input"]["response_body"]).encode(), when=WHEN)
    # 48 x 3 + 9210 x 3.75 + 31744 x 0.30 + 655 x 15 = 144 + 34537.5 + 9523.2 + 9825 millionths
    assert D(e["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.0540297")
    assert e["usage"]["input_tokens"] == 48 + 9210 + 31744


@pytest.mark.parametrize(
    ("variant", "literal"),
    [
        ("A", "0.007305"),  # 1200 x 3 + 8000 x 0.30 + 87 x 15 = 3600 + 2400 + 1305 millionths
        ("B", "0.007305"),
        ("C", "0.007305"),
        ("D", "0.01335"),  # 2950 x 3 + 8000 x 0.30 + 140 x 15 = 8850 + 2400 + 2100
    ],
)
def test_case04_anthropic_stream_cumulative_usage(cases_dir, variant, literal):
    c = load_case(cases_dir, "04-anthropic-stream-cumulative-usage")
    key = next(k for k in c["input"] if k.startswith(f"{variant}_"))
    e = explain(ANTHROPIC, c["input"][key].encode(), when=WHEN)
    assert D(e["cost_usd"]) == D(c["expected"][variant]["cost_usd"]) == D(literal)


def test_case10_gzip_body(cases_dir):
    c = load_case(cases_dir, "10-gzip-encoded-response-body")
    raw = base64.b64decode(c["input"]["response_body_base64"])
    assert raw[:3].hex() == "1f8b08"
    e = explain("https://api.openai.com" + c["input"]["request_headers"][":path"], raw, when=WHEN)
    # 812 x 0.15 + 95 x 0.60 = 121.8 + 57 millionths
    assert D(e["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.0001788")


def test_case18_reasoning_inside_output(cases_dir):
    c = load_case(cases_dir, "18-reasoning-tokens-subset-of-output")
    o = explain(OPENAI_CHAT, json.dumps(c["input"]["openai_response_body"]).encode(), when=WHEN)
    # o4-mini: 5200 x 1.10 + 2300 x 4.40 = 5720 + 10120 millionths (1800 reasoning inside 2300)
    assert D(o["cost_usd"]) == D(c["expected"]["openai"]["cost_usd"]) == D("0.01584")
    assert (o["usage"]["output_tokens"], o["usage"]["reasoning_tokens"]) == (2300, 1800)
    a = explain(ANTHROPIC, json.dumps(c["input"]["anthropic_response_body_with_extended_thinking"]).encode(), when=WHEN)
    # claude-sonnet-4-5: 900 x 3 + 2300 x 15 = 2700 + 34500 millionths
    assert D(a["cost_usd"]) == D(c["expected"]["anthropic"]["cost_usd"]) == D("0.0372")


def test_case25_responses_usage_shape_json_and_stream(cases_dir):
    c = load_case(cases_dir, "25-responses-api-usage-shape")
    # gpt-5: 2856 x 1.25 + 6144 x 0.125 + 2500 x 10 = 3570 + 768 + 25000 millionths
    j = explain(OPENAI_RESPONSES, json.dumps(c["input"]["non_streaming"]["response_body"]).encode(), when=WHEN)
    assert D(j["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.029338")
    s = explain(OPENAI_RESPONSES, c["input"]["streaming"]["sse_body"].encode(), when=WHEN)
    assert D(s["cost_usd"]) == D("0.029338")
    assert s["usage"] == j["usage"] == {
        "input_tokens": 9000, "cache_read_tokens": 6144, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
        "output_tokens": 2500, "reasoning_tokens": 1900, "web_search_requests": 0,
    }


def test_case26_anthropic_iterations(cases_dir):
    c = load_case(cases_dir, "26-anthropic-usage-iterations-compaction")
    e = explain(ANTHROPIC, json.dumps(c["input"]["response_body"]).encode(), when=WHEN)
    # claude-sonnet-4-6: 390 x 3 + 30000 x 0.30 + 1200 x 3.75 + 72 x 15 = 1170 + 9000 + 4500 + 1080
    assert D(e["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.01575")


def test_anthropic_1h_writes_from_a_response_body():
    body = {
        "type": "message", "model": "claude-sonnet-4-5-20250929",
        "usage": {"input_tokens": 20, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 0,
                  "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
                  "output_tokens": 10, "service_tier": "standard"},
    }
    e = explain(ANTHROPIC, json.dumps(body).encode(), when=WHEN)
    # 20 x 3 + 1000 x 3.75 + 2000 x 6 + 10 x 15 = 60 + 3750 + 12000 + 150 millionths
    assert e["cost_usd"] == "0.01596"
    assert (e["usage"]["cache_write_5m_tokens"], e["usage"]["cache_write_1h_tokens"]) == (1000, 2000)
    assert e["rates_usd_per_mtok"]["cache_write_1h"] == "6"


def test_served_tier_from_the_body_is_priced():
    body = {"model": "gpt-5-2025-08-07", "service_tier": "flex",
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}
    e = explain(OPENAI_CHAT, json.dumps(body).encode(), when=WHEN)
    # flex: 1000 x 0.625 + 100 x 5 = 625 + 500 millionths
    assert (e["service_tier"], e["cost_usd"]) == ("flex", "0.001125")


def test_anthropic_batch_result_line():
    line = {"custom_id": "r1", "result": {"type": "succeeded", "message": {
        "type": "message", "model": "claude-sonnet-4-5",
        "usage": {"input_tokens": 1000, "output_tokens": 100, "service_tier": "batch"}}}}
    e = explain(ANTHROPIC, json.dumps(line).encode(), when=WHEN)
    # batch: 1000 x 1.50 + 100 x 7.50 = 1500 + 750 millionths
    assert (e["batch"], e["cost_usd"]) == (True, "0.00225")


def test_provider_error_body_and_unknown_model():
    err = explain(OPENAI_CHAT, b'{"error": {"message": "m", "type": "server_error", "code": null}}', when=WHEN)
    assert (err["cost_usd"], err["unpriced_reason"]) == (None, "provider_error")
    assert "server_error" in err["explanation"]
    unk = explain(OPENAI_CHAT, b'{"model": "gpt-9-imaginary", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}', when=WHEN)
    assert (unk["cost_usd"], unk["unpriced_reason"]) == (None, "unknown_model")
    assert "gpt-9-imaginary" in unk["explanation"]
    assert explain(OPENAI_CHAT, b"<html>bad gateway</html>", when=WHEN)["unpriced_reason"] == "response_not_json"
    assert explain(OPENAI_CHAT, b"{}", status=502, when=WHEN)["unpriced_reason"] == "provider_error"
