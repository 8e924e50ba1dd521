"""``nadir-extproc cost`` on every recorded interaction of ../shared/data/provider-responses.

Each priced one: tokens (from the recorded usage) x the list rate (USD per MTok, written next to
it, genai-prices 0.2.3 at 2026-11-01), by hand. The rest are explained, never $0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from nadir_extproc.pricing.pricefile import install_price_file

WHEN = "2026-11-01T12:00:00Z"

PRICED = {
    "01-openai-chat-basic": "0.0001512",  # gpt-5-nano 8 x 0.05 + 377 x 0.40
    "02-openai-chat-detailed-usage": "0.0000406",  # 12 x 0.05 + 100 x 0.40
    "03-openai-chat-stream-include-usage": "0.0000406",  # same usage, from the SSE usage chunk
    "05-openai-chat-reasoning": "0.00010815",  # 27 x 0.05 + 267 x 0.40
    "06-openai-chat-parallel-tools": "0.0000957",  # 162 x 0.05 + 219 x 0.40
    "07-openai-chat-web-search": "0.0000171",  # gpt-4o-mini(-search-preview) 26 x 0.15 + 22 x 0.60
    "12-openai-chat-prompt-cache-miss": "0.020172",  # gpt-5.6-sol 8 x 4 + 4012 written x 5 + 4 x 20
    "14-openai-chat-o3-mini-reasoning": "0.0003905",  # o3-mini 7 x 1.10 + 87 x 4.40
    "15-openai-chat-stream-gpt-4o-mini": "0.00001695",  # 53 x 0.15 + 15 x 0.60
    "16-openai-chat-stream-gpt-5": "0.00012625",  # gpt-5 13 x 1.25 + 11 x 10
    "17-openai-responses-o3-mini-reasoning": "0.0010131",  # 13 x 1.10 + 227 x 4.40
    "18-openai-responses-prompt-cache-hit": "0.0017368",  # 8 x 4 + 4012 read x 0.40 + 5 x 20
    "20-openai-responses-stream-gpt-4o": "0.0007975",  # gpt-4o 255 x 2.50 + 16 x 10
    # served on the flex tier (every event says "service_tier":"flex"): gpt-5 flex rates, half of standard
    "21-openai-responses-stream-gpt-5-usage": "0.002378125",  # 53 x 0.625 + 469 x 5
    "24-anthropic-cache-read": "0.0064323",  # sonnet-4-5 3 x 3 + 1111 x 0.30 + 406 x 15
    "25-anthropic-cache-write-and-read": "0.0024048",  # 3 x 3 + 1111 x 0.30 + 418 x 3.75 + 33 x 15
    "26-anthropic-opus-cache-write": "0.0100475",  # opus-4-8 2 x 5 + 1590 x 6.25 + 4 x 25
    "28-anthropic-thinking": "0.004944",  # 43 x 3 + 321 x 15
    "29-anthropic-tool-use": "0.00168",  # 445 x 3 + 23 x 15
    "30-anthropic-stream-basic": "0.000135",  # 20 x 3 + 5 x 15
    "33-anthropic-stream-tool-search": "0.003906",  # sonnet-4-6 1007 x 3 + 59 x 15
    "35-gemini-generate-thoughts": "0.0001102",  # gemini-2.5-flash 9 x 0.30 + (9 + 34) x 2.50
    "37-gemini-2-5-pro-thinking-config": "0.00284875",  # gemini-2.5-pro 15 x 1.25 + (8 + 275) x 10
    "38-gemini-stream-usage": "0.0002929",  # gemini-2.5-flash 18 x 0.30 + (80 + 35) x 2.50
    "41-groq-chat-basic": "0.00003464",  # llama-3.3-70b 48 x 0.59 + 8 x 0.79
    "42-groq-chat-gpt-oss-reasoning": "0.0000204",  # openai/gpt-oss-120b 84 x 0.15 + 13 x 0.60
    # OpenRouter's own usage.cost for this response is 0.00219855 too:
    "45-openrouter-chat-anthropic-cached": "0.00219855",  # 3 x 3 + 3211 x 0.30 + 115 x 3.75 + 53 x 15
    "47-huggingface-router-stream": "0.0000009",  # novita llama-3.1-8b 40 x 0.02 + 2 x 0.05
    "48-zai-chat-thinking-cached": "0.0001952",  # glm-4.6v 431 x 0.30 + 4 x 0.05 + 73 x 0.90
}
UNPRICED = {
    "04-openai-chat-stream-no-usage": "no_usage",  # stream without stream_options.include_usage
    "08-openai-chat-error-400": "provider_error",
    "09-openai-chat-error-404-unknown-model": "provider_error",
    "11-openai-completions-stream-include-usage": "unsupported_api",  # legacy /v1/completions
    "23-openai-responses-error-400": "provider_error",
    "34-anthropic-error-404": "provider_error",
    "44-ollama-local-chat": "unknown_provider",  # localhost: no catalogue provider
}


EXIT_UNPRICED = 3  # README, "The cost command": unpriced answers exit 3, so scripts can tell


def _run(row, folder, *extra):
    args = ["cost", "--url", row["url"], "--response", str(folder / row["response_file"]), "--when", WHEN, "--json"]
    req = folder / row["request_file"]
    if req.is_file():
        args += ["--request", str(req)]
    result = CliRunner().invoke(app, [*args, *extra])
    out = json.loads(result.output)
    assert result.exit_code == (0 if out["cost_usd"] is not None else EXIT_UNPRICED), result.output
    return out


def test_every_recorded_interaction_is_listed(provider_index):
    assert {r["id"] for r in provider_index} == set(PRICED) | set(UNPRICED)


@pytest.mark.parametrize("rid", sorted(set(PRICED) | set(UNPRICED)))
def test_recording_priced_or_deliberately_unpriced(rid, provider_index, provider_responses):
    """One test per recorded interaction: priced at the hand-worked value, or unpriced with its reason."""
    row = next(r for r in provider_index if r["id"] == rid)
    out = _run(row, provider_responses)
    if rid in PRICED:
        assert out["cost_usd"] == PRICED[rid], rid
        assert out["unpriced_reason"] is None
        assert out["served_model"] == row["response_model"], rid
        assert out["usage"]["input_tokens"] >= out["usage"]["cache_read_tokens"]
        assert sum(D(v) for v in out["breakdown_usd"].values()) == D(out["cost_usd"])
    else:
        assert out["cost_usd"] is None, rid
        assert out["unpriced_reason"] == UNPRICED[rid], rid
        assert out["explanation"]
        if row["status"] >= 400:
            assert out["unpriced_reason"] == "provider_error"


def test_json_shape_gemini_thoughts(provider_index, provider_responses):
    row = next(r for r in provider_index if r["id"] == "35-gemini-generate-thoughts")
    out = _run(row, provider_responses)
    assert out["usage"] == {
        "input_tokens": 9, "cache_read_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
        "output_tokens": 43, "reasoning_tokens": 34, "web_search_requests": 0,
    }
    assert (out["provider"], out["dialect"], out["served_model"], out["priced_as"]) == (
        "google", "gemini", "gemini-2.5-flash", "gemini-2.5-flash")
    assert out["rates_usd_per_mtok"]["input"] == "0.3" and out["rates_usd_per_mtok"]["output"] == "2.5"
    # Baseline: the dearest default google tier model at this usage, gemini-2.5-pro:
    # 9 x 1.25 + 43 x 10 = 441.25 millionths; saved 441.25 - 110.2 = 331.05.
    assert (out["baseline_model"], out["baseline_cost_usd"], out["cost_saved_usd"]) == (
        "gemini-2.5-pro", "0.00044125", "0.00033105")


def test_baseline_option_and_overrides(provider_index, provider_responses):
    row = next(r for r in provider_index if r["id"] == "24-anthropic-cache-read")
    out = _run(row, provider_responses, "--baseline", "claude-opus-4-8")
    # opus-4-8: 3 x 5 + 1111 x 0.50 + 406 x 25 = 15 + 555.5 + 10150 = 10720.5 millionths
    assert (out["baseline_cost_usd"], out["cost_saved_usd"]) == ("0.0107205", "0.0042882")


def test_price_file_prices_the_local_model(provider_index, provider_responses, tmp_path):
    row = next(r for r in provider_index if r["id"] == "44-ollama-local-chat")
    f = tmp_path / "p.yaml"
    f.write_text('models:\n  - {provider: ollama, model: "qwen3:0.6b", input_mtok: "0.02", output_mtok: "0.08"}\n')
    try:
        out = _run(row, provider_responses, "--provider", "ollama", "--price-file", str(f))
    finally:
        install_price_file(None)
    # 136 x 0.02 + 15 x 0.08 = 2.72 + 1.2 millionths
    assert (out["cost_usd"], out["price_source"]) == ("0.00000392", "price file p.yaml")


def test_table_output(provider_index, provider_responses):
    row = next(r for r in provider_index if r["id"] == "25-anthropic-cache-write-and-read")
    args = ["cost", "--url", row["url"], "--response", str(provider_responses / row["response_file"]), "--when", WHEN]
    text = CliRunner().invoke(app, args).output
    assert "priced as claude-sonnet-4-5" in text
    assert "cache write 5m" in text and "0.0015675" in text  # 418 x 3.75
    assert "0.0024048" in text


def test_bad_arguments_exit_2(tmp_path):
    r = CliRunner().invoke(app, ["cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", str(tmp_path / "none.json")])
    assert r.exit_code == 2
    f = tmp_path / "r.json"
    f.write_text("{}")
    r = CliRunner().invoke(app, ["cost", "--url", "https://x/v1/chat/completions", "--response", str(f), "--dialect", "nope"])
    assert r.exit_code == 2


def test_console_entry_point(provider_responses):
    # The real command line, as an operator runs it.
    out = subprocess.run(
        [sys.executable, "-m", "nadir_extproc.cli", "cost", "--url",
         "https://api.openai.com/v1/chat/completions", "--response",
         str(provider_responses / "14-openai-chat-o3-mini-reasoning.response.json"), "--when", WHEN, "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert json.loads(out.stdout)["cost_usd"] == "0.0003905"


def test_openrouter_reports_its_own_cost(provider_index, provider_responses):
    # Recording 45: OpenRouter's usage.cost 0.00219855 is what the request cost; the catalogue
    # figure (3 x 3 + 3211 x 0.30 + 115 x 3.75 + 53 x 15 = 2198.55 millionths) agrees with it.
    row = next(r for r in provider_index if r["id"] == "45-openrouter-chat-anthropic-cached")
    out = _run(row, provider_responses)
    assert (out["reported_cost_usd"], out["catalogue_cost_usd"], out["cost_disagrees"]) == ("0.00219855", "0.00219855", False)
    assert out["otel_provider_name"] == "openrouter"


@pytest.mark.parametrize("url", ["api.openai.com/v1/chat/completions", "notaurl", "ftp://api.openai.com/v1/chat/completions"])
def test_url_without_scheme_and_host_is_a_bad_argument(tmp_path, url):
    # Found by a newcomer: a URL without https:// was read as an unknown host "api.openai.com/v1/…"
    # and answered exit 3 (unpriced, unknown_provider) instead of saying how to write the URL.
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}))
    r = CliRunner().invoke(app, ["cost", "--url", url, "--response", str(f)])
    assert r.exit_code == 2, r.output
    assert "scheme://host/path" in r.output and "unknown_provider" not in r.output
