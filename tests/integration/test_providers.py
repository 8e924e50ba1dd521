"""Serve mode learns the provider from Envoy (route metadata sent as a request attribute), and
the cost command from the URL — one registry (issue 11; shared case
42-serve-mode-openai-compatible-provider-attribution). Groq is the OpenAI-compatible provider
added as one entry (``providers/known.py``) plus its Envoy route (``envoy/envoy.yaml``)."""

from __future__ import annotations

import json

import openai

from nadir_extproc.explain import explain
from tests.conftest import load_case
from tests.integration.conftest import clear_upstream, replay, upstream_requests

REC = "41-groq-chat-basic"


def test_groq_route_prices_with_groq_rates_in_serve_mode_and_in_the_cost_command(stack, provider_responses, provider_index, cases_dir):
    case = load_case(cases_dir, "42-serve-mode-openai-compatible-provider-attribution")
    row = next(r for r in provider_index if r["id"] == REC)
    response = (provider_responses / row["response_file"]).read_bytes()
    request = json.loads((provider_responses / row["request_file"]).read_bytes())
    replay(stack, response)
    clear_upstream(stack)
    client = openai.OpenAI(base_url=f"{stack.base_url}/groq/v1", api_key="gsk-test", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**request)
    # llama-3.3-70b-versatile on Groq: 48 x 0.59 + 8 x 0.79 USD/MTok = 34.64 micro-USD (case 42).
    assert raw.headers["x-nadir-cost-usd"] == case["expected"]["cost_usd"] == "0.00003464"
    assert raw.headers["x-nadir-routed-to"] == "llama-3.3-70b-versatile"
    assert "x-nadir-unpriced-reason" not in raw.headers
    (up,) = upstream_requests(stack)
    assert up["path"] == "/openai/v1/chat/completions"  # Envoy's prefix_rewrite, Groq's own path
    assert "x-nadir-provider" not in up["hdrs"]
    # The cost command reaches the same entry from the recorded URL (https://api.groq.com/openai/v1/...).
    e = explain(row["url"], response, when=None)
    assert (e["provider"], e["cost_usd"]) == ("groq", "0.00003464")


def test_openai_path_without_route_metadata_is_openai_by_its_cluster(stack):
    clear_upstream(stack)
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-test", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 1000, "output": 100})})
    # gpt-4o-mini: 1000 x 0.15 + 100 x 0.60 USD/MTok = 0.00021
    assert raw.headers["x-nadir-cost-usd"] == "0.00021"
