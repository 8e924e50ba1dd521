"""Provider rules and API fields beyond the shared cases, through ``explain`` (what ``nadir-extproc
cost`` runs): modality tokens by Gemini's details, Vertex's ``trafficType``, Anthropic's
``inference_geo``, OpenRouter's reported cost in a stream, xAI's rule left alone when a body counts
OpenAI's way. Every expected value is tokens x list rate (USD per MTok, genai-prices 0.2.3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from nadir_extproc.explain import explain
from nadir_extproc.providers import known

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
VERTEX = ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/"
          "models/gemini-2.5-flash:generateContent")


def _gemini(meta: dict) -> bytes:
    return json.dumps({"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
                       "usageMetadata": meta, "modelVersion": "gemini-2.5-flash"}).encode()


def test_gemini_audio_prompt_tokens_at_the_audio_rate():
    meta = {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 200}, {"modality": "AUDIO", "tokenCount": 800}]}
    e = explain(GEMINI, _gemini(meta), when=WHEN)
    # gemini-2.5-flash: 200 text x 0.30 + 800 audio x 1.00 + 100 x 2.50 = 60 + 800 + 250 millionths
    assert e["cost_usd"] == "0.00111" and e["usage"]["input_audio_tokens"] == 800


def test_vertex_traffic_type_is_the_served_tier():
    flex = {"promptTokenCount": 10, "candidatesTokenCount": 10, "trafficType": "ON_DEMAND_FLEX"}
    e = explain(VERTEX, _gemini(flex), when=WHEN)
    # gemini-2.5-flash has no flex rates in the catalogue: unpriced, never the standard price
    assert (e["service_tier"], e["cost_usd"], e["unpriced_reason"]) == ("flex", None, "unknown_service_tier")
    pt = explain(VERTEX, _gemini({**flex, "trafficType": "PROVISIONED_THROUGHPUT"}), when=WHEN)
    assert (pt["cost_usd"], pt["unpriced_reason"]) == (None, "unknown_service_tier")
    od = explain(VERTEX, _gemini({**flex, "trafficType": "ON_DEMAND"}), when=WHEN)
    assert od["cost_usd"] == "0.000028"  # 10 x 0.30 + 10 x 2.50 millionths
    assert od["otel_provider_name"] == "gcp.vertex_ai"


def test_anthropic_inference_geo_us_is_unpriced_global_is_standard():
    body = {"id": "m", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": [],
            "usage": {"input_tokens": 1000, "output_tokens": 100, "inference_geo": "us"}}
    e = explain("https://api.anthropic.com/v1/messages", json.dumps(body).encode(), when=WHEN)
    assert (e["cost_usd"], e["unpriced_reason"], e["price_variant"]) == (None, "unknown_price_variant", {"inference_geo": "us"})
    body["usage"]["inference_geo"] = "global"
    e = explain("https://api.anthropic.com/v1/messages", json.dumps(body).encode(), when=WHEN)
    assert e["cost_usd"] == "0.0075"  # opus-4-6: 1000 x 5 + 100 x 25 millionths


def test_openrouter_stream_reports_its_cost_in_the_last_chunk():
    chunks = [
        {"id": "g1", "object": "chat.completion.chunk", "model": "openai/gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]},
        {"id": "g1", "object": "chat.completion.chunk", "model": "openai/gpt-4o-mini", "choices": [],
         "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100, "cost": 0.00021}},
    ]
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    e = explain("https://openrouter.ai/api/v1/chat/completions", sse.encode(), when=WHEN)
    # openai/gpt-4o-mini on openrouter: 1000 x 0.15 + 100 x 0.60 = 210 millionths; reported 0.00021
    assert (e["cost_usd"], e["reported_cost_usd"], e["catalogue_cost_usd"]) == ("0.00021", "0.00021", "0.00021")


def test_xai_rule_only_when_the_counts_add_up_xais_way():
    body = {"id": "x", "object": "chat.completion", "model": "grok-3-mini", "choices": [],
            "usage": {"prompt_tokens": 40, "completion_tokens": 525, "total_tokens": 565,
                      "completion_tokens_details": {"reasoning_tokens": 500}}}
    e = explain("https://api.x.ai/v1/chat/completions", json.dumps(body).encode(), when=WHEN)
    # total = 40 + 525: reasoning already inside completion -> 40 x 0.3 + 525 x 0.5 = 274.5 millionths
    assert e["cost_usd"] == "0.0002745" and e["usage"]["output_tokens"] == 525


def test_every_provider_entry_is_one_place():
    ids = [e.id for e in known.ENTRIES]
    assert len(ids) == len(set(ids))
    assert known.from_url("https://myres.openai.azure.com/openai/deployments/d/chat/completions").id == "azure"
    assert known.from_url("https://us-central1-aiplatform.googleapis.com/v1/projects/p").id == "vertex_ai"
    assert known.from_url("https://generativelanguage.googleapis.com/v1beta/models/x").id == "google"
    assert known.from_url("http://localhost:11434/v1/chat/completions") is None
    assert known.otel_name("groq") == "groq" and known.otel_name("x-ai") == "x_ai"
    assert known.from_path("/v1/projects/p/locations/l/publishers/google/models/m:generateContent").id == "vertex_ai"
    assert known.from_path("/v1/chat/completions") is None


def test_silent_response_priced_at_the_requested_tier_else_standard():
    # gpt-5 standard $1.25 / $10, flex $0.625 / $5 per MTok (flex variant in force from 2026-10-12).
    body = {"id": "c", "object": "chat.completion", "model": "gpt-5-2025-08-07", "choices": [],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    url = "https://api.openai.com/v1/chat/completions"
    req = json.dumps({"model": "gpt-5", "service_tier": "flex", "messages": []}).encode()
    silent = explain(url, json.dumps(body).encode(), req, when=WHEN)
    assert (silent["service_tier"], silent["cost_usd"]) == ("flex", "0.001125")  # 1000 x 0.625 + 100 x 5
    said = explain(url, json.dumps({**body, "service_tier": "default"}).encode(), req, when=WHEN)
    assert said["cost_usd"] == "0.00225"  # the response's own tier wins: 1000 x 1.25 + 100 x 10
    auto = explain(url, json.dumps(body).encode(), json.dumps({"service_tier": "auto"}).encode(), when=WHEN)
    assert auto["cost_usd"] == "0.00225"  # asked for nothing in particular: standard
