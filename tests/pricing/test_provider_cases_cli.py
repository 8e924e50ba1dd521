"""Shared cases 27-42 of kinds provider breadth and billed items, through ``nadir-extproc cost``
(the command an operator runs: ``--url`` names the provider and the dialect). Each expected USD
is the case's own hand-worked value, re-derived here next to the assertion (tokens x list rate,
USD per MTok, genai-prices 0.2.3, plus per-call and per-request fees).

Cases: 27-xai-reasoning-outside-completion-tokens, 28-groq-usage-only-in-x-groq,
29-responses-web-search-call-fee, 31-openai-chat-audio-tokens, 33-gemini-tool-use-prompt-tokens,
34-responses-background-retrieve-unpriced, 38-otel-provider-name-vertex,
39-perplexity-request-fee, 42-serve-mode-openai-compatible-provider-attribution.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from tests.conftest import load_case

WHEN = "2026-11-01T12:00:00Z"
#: Exit status of ``nadir-extproc cost`` when the answer is unpriced (README: "The cost command").
EXIT_UNPRICED = 3



def cost(tmp_path: Path, url: str, response: bytes | str | dict, request: dict | None = None, *extra: str,
         exit_code: int = 0) -> dict:
    """Run ``nadir-extproc cost --json`` on the bodies; returns its JSON output."""
    resp = tmp_path / "response.body"
    resp.write_bytes(response if isinstance(response, bytes) else (
        response.encode() if isinstance(response, str) else json.dumps(response).encode()))
    args = ["cost", "--url", url, "--response", str(resp), "--when", WHEN, "--json", *extra]
    if request is not None:
        req = tmp_path / "request.json"
        req.write_text(json.dumps(request))
        args += ["--request", str(req)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == exit_code, r.output
    return json.loads(r.stdout)


def test_case27_xai_reasoning_on_top_of_completion_tokens(cases_dir, tmp_path):
    c = load_case(cases_dir, "27-xai-reasoning-outside-completion-tokens")
    out = cost(tmp_path, c["input"]["url"], c["input"]["response_body"], c["input"]["request_body"])
    # grok-3-mini $0.30 / $0.50: 40 x 0.3 + (25 + 500) x 0.5 = 12 + 262.5 millionths
    assert D(out["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.0002745")
    assert (out["provider"], out["usage"]["output_tokens"], out["usage"]["reasoning_tokens"]) == ("x-ai", 525, 500)


def test_case28_groq_stream_usage_only_under_x_groq(cases_dir, tmp_path):
    c = load_case(cases_dir, "28-groq-usage-only-in-x-groq")
    out = cost(tmp_path, c["input"]["url"], c["input"]["response_sse"], c["input"]["request_body"])
    # llama-3.1-8b-instant $0.05 / $0.08: 230 x 0.05 + 190 x 0.08 = 11.5 + 15.2 millionths
    assert D(out["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.0000267")
    assert out["provider"] == "groq"


def test_case29_responses_web_search_calls_billed_per_call(cases_dir, tmp_path):
    c = load_case(cases_dir, "29-responses-web-search-call-fee")
    out = cost(tmp_path, c["input"]["url"], c["input"]["response_body"], c["input"]["request_body"])
    # gpt-5: 8200 x 1.25 + 900 x 10 = 19250 millionths; + 2 web_search_call items x $10/1000
    assert D(out["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.03925")
    assert out["usage"]["web_search_requests"] == 2 and out["breakdown_usd"]["web_search"] == "0.02"


def test_case29_web_search_calls_in_a_stream(cases_dir, tmp_path):
    c = load_case(cases_dir, "29-responses-web-search-call-fee")
    body = c["input"]["response_body"]
    events = [
        ("response.created", {"type": "response.created", "response": {**body, "status": "in_progress", "output": [], "usage": None}}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 1, "item": body["output"][1]}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 2, "item": body["output"][2]}),
        ("response.completed", {"type": "response.completed", "response": body}),
    ]
    sse = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    out = cost(tmp_path, c["input"]["url"], sse, c["input"]["request_body"])
    assert D(out["cost_usd"]) == D("0.03925") and out["usage"]["web_search_requests"] == 2


def test_case31_openai_chat_audio_tokens_at_audio_rates(cases_dir, tmp_path):
    c = load_case(cases_dir, "31-openai-chat-audio-tokens")
    out = cost(tmp_path, c["input"]["url"], c["input"]["response_body"], c["input"]["request_body"])
    # gpt-audio: 80 x 2.5 + 420 x 32 + 120 x 10 + 780 x 64 = 200 + 13440 + 1200 + 49920 millionths
    assert D(out["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.06476")
    assert out["usage"]["input_audio_tokens"] == 420 and out["usage"]["output_audio_tokens"] == 780


def test_case33_gemini_tool_use_prompt_tokens_billed_as_input(cases_dir, tmp_path):
    c = load_case(cases_dir, "33-gemini-tool-use-prompt-tokens")
    out = cost(tmp_path, c["input"]["url"], c["input"]["response_body"], c["input"]["request_body"])
    # gemini-3-flash-preview: (151 + 18329) x 0.5 + (1089 + 1120) x 3 = 9240 + 6627 millionths
    assert D(out["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.015867")


def test_case34_background_response_priced_on_retrieval(cases_dir, tmp_path):
    c = load_case(cases_dir, "34-responses-background-retrieve-unpriced")
    s1, s2 = c["input"]["step1"], c["input"]["step2"]
    queued = cost(tmp_path, "https://api.openai.com/v1/responses", s1["upstream_reply"], s1["body"],
                  exit_code=EXIT_UNPRICED)
    assert queued["cost_usd"] is None and queued["unpriced_reason"] == "background_pending"
    url = "https://api.openai.com" + s2["request"].split(" ", 1)[1]  # GET /v1/responses/resp_bg_test_01
    done = cost(tmp_path, url, s2["upstream_reply"])
    # gpt-5: 12000 x 1.25 + 30000 x 10 = 15000 + 300000 millionths
    assert D(done["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.315")
    assert done["response_id"] == "resp_bg_test_01"


def test_case38_otel_provider_name_per_endpoint(cases_dir, provider_responses, tmp_path):
    c = load_case(cases_dir, "38-otel-provider-name-vertex")
    body = (provider_responses / "35-gemini-generate-thoughts.response.json").read_bytes()
    vertex = cost(tmp_path, "https://us-central1-aiplatform.googleapis.com" + c["input"]["vertex"].split(" ", 1)[1], body)
    gemini = cost(tmp_path, "https://generativelanguage.googleapis.com" + c["input"]["gemini_api"].split(" ", 1)[1], body)
    assert (vertex["otel_provider_name"], gemini["otel_provider_name"]) == (
        c["expected"]["vertex"], c["expected"]["gemini_api"]) == ("gcp.vertex_ai", "gcp.gemini")
    assert vertex["cost_usd"] == gemini["cost_usd"] == "0.0001102"  # 9 x 0.30 + 43 x 2.50


def test_case39_perplexity_request_fee_and_reported_cost(cases_dir, tmp_path):
    c = load_case(cases_dir, "39-perplexity-request-fee")
    out = cost(tmp_path, c["input"]["url"], json.dumps(c["input"]["response_body"]), c["input"]["request_body"])
    # sonar $1 / $1: 50 x 1 + 100 x 1 = 150 millionths, + $5 / 1000 requests (search_context_size low)
    assert D(out["cost_usd"]) == D("0.00515")
    assert D(out["reported_cost_usd"]) == D(out["catalogue_cost_usd"]) == D("0.00515")
    assert out["breakdown_usd"]["request_fee"] == "0.005"
    assert "perplexity-sonar-request-fee-low" in out["corrections"]
    assert out["cost_disagrees"] is False


def test_case39_disagreement_is_reported(cases_dir, tmp_path):
    c = load_case(cases_dir, "39-perplexity-request-fee")
    body = json.loads(json.dumps(c["input"]["response_body"]))
    body["usage"]["cost"]["total_cost"] = 0.006  # the provider says it billed more
    out = cost(tmp_path, c["input"]["url"], body, c["input"]["request_body"])
    assert D(out["cost_usd"]) == D("0.006") and D(out["catalogue_cost_usd"]) == D("0.00515")
    assert out["cost_disagrees"] is True


def test_case42_openai_compatible_provider_from_the_url(cases_dir, provider_responses, tmp_path):
    c = load_case(cases_dir, "42-serve-mode-openai-compatible-provider-attribution")
    assert "41-groq-chat-basic" in c["input"]["stack"]
    body = (provider_responses / "41-groq-chat-basic.response.json").read_bytes()
    out = cost(tmp_path, "https://api.groq.com/openai/v1/chat/completions", body)
    # llama-3.3-70b-versatile $0.59 / $0.79: 48 x 0.59 + 8 x 0.79 = 28.32 + 6.32 millionths
    assert D(out["cost_usd"]) == D(c["expected"]["cost_usd"]) == D("0.00003464")


@pytest.mark.parametrize(
    ("url", "model", "provider", "otel"),
    [
        ("https://api.deepseek.com/chat/completions", "deepseek-chat", "deepseek", "deepseek"),
        ("https://api.mistral.ai/v1/chat/completions", "mistral-small-latest", "mistral", "mistral_ai"),
        ("https://api.together.xyz/v1/chat/completions", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", "together"),
        ("https://api.fireworks.ai/inference/v1/chat/completions", "accounts/fireworks/models/llama-v3p1-8b-instruct", "fireworks", "fireworks"),
        ("https://openrouter.ai/api/v1/chat/completions", "x-ai/grok-3-mini", "x-ai", "openrouter"),
        ("https://myres.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "gpt-4o-2024-08-06", "azure", "azure.ai.openai"),
        ("https://api.x.ai/v1/chat/completions", "grok-3-mini", "x-ai", "x_ai"),
        ("https://api.groq.com/openai/v1/chat/completions", "llama-3.1-8b-instant", "groq", "groq"),
        ("https://api.perplexity.ai/chat/completions", "sonar", "perplexity", "perplexity"),
    ],
)
def test_openai_compatible_providers_recognised_from_the_url(tmp_path, url, model, provider, otel):
    body = {"id": "x", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    out = cost(tmp_path, url, body)
    assert out["cost_usd"] is not None, out
    assert (out["provider"], out["otel_provider_name"]) == (provider, otel)


def test_vertex_anthropic_model_is_priced(tmp_path):
    # Claude on Vertex AI: rawPredict with the Anthropic Messages body; claude-sonnet-4-5 $3 / $15.
    url = ("https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers/anthropic/"
           "models/claude-sonnet-4-5@20250929:rawPredict")
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "output_tokens": 100}}
    out = cost(tmp_path, url, body)
    # 1000 x 3 + 100 x 15 = 4500 millionths
    assert (out["cost_usd"], out["dialect"], out["otel_provider_name"]) == ("0.0045", "anthropic_messages", "gcp.vertex_ai")


def test_unpriced_exits_with_its_documented_status(tmp_path):
    body = {"id": "x", "object": "chat.completion", "model": "no-such-model",
            "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    out = cost(tmp_path, "https://api.openai.com/v1/chat/completions", body, exit_code=EXIT_UNPRICED)
    assert out["unpriced_reason"] == "unknown_model"


def test_batch_output_file_with_its_real_url(tmp_path):
    # An OpenAI Batch output file (GET /v1/files/{id}/content, JSONL): each line wraps one chat
    # completion; gpt-4o-mini batch rates $0.075 / $0.30 per MTok.
    lines = [
        {"id": "batch_req_1", "custom_id": "a", "response": {"status_code": 200, "request_id": "r1", "body": {
            "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}}, "error": None},
        {"id": "batch_req_2", "custom_id": "b", "response": {"status_code": 200, "request_id": "r2", "body": {
            "id": "c2", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [], "usage": {"prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300}}}, "error": None},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    out = cost(tmp_path, "https://api.openai.com/v1/files/file-abc123/content", text)
    # (1000 + 2000) x 0.075 + (100 + 300) x 0.30 = 225 + 120 millionths
    assert out["cost_usd"] == "0.000345" and out["batch"] is True and out["requests"] == 2
