"""Gemini generateContent / streamGenerateContent: model in the path, usageMetadata in the body.

Counting rule (Gemini API reference, UsageMetadata): promptTokenCount includes
cachedContentTokenCount; toolUsePromptTokenCount is extra input; thoughtsTokenCount is output beside
candidatesTokenCount (totalTokenCount = prompt + toolUse + candidates + thoughts). Every expected
Usage below is worked out from those numbers by hand.
"""

from __future__ import annotations

import json

import pytest

from nadir_extproc.dialects import DIALECTS, default_paths, detect
from nadir_extproc.dialects.gemini import Gemini
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.sse import SSEParser

g = DIALECTS["gemini"]


def test_registered_but_not_an_exact_path():
    assert isinstance(g, Gemini)
    assert g.provider == "google"
    assert not any(name == "gemini" for name in default_paths().values())
    assert detect("/v1beta/models/gemini-2.5-flash:generateContent", default_paths()) is g


@pytest.mark.parametrize(
    ("path", "model", "stream"),
    [
        ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash", False),
        ("/v1/models/gemini-2.5-pro:generateContent", "gemini-2.5-pro", False),
        ("/v1beta/models/auto:streamGenerateContent?alt=sse", "auto", True),
        ("/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent",
         "gemini-2.5-pro", False),
        ("/v1beta/models/gemini-2.5-flash-preview-05-20:streamGenerateContent", "gemini-2.5-flash-preview-05-20", True),
    ],
)
def test_model_and_stream_from_path(path, model, stream):
    assert g.model_from_path(path) == model
    assert g.is_stream_path(path) is stream
    assert g.request_info({}, path).stream is stream
    assert g.matches_path(path.split("?")[0])


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1beta/models/gemini-2.5-flash:countTokens",
        "/v1beta/models/gemini-2.5-flash:embedContent",
        "/v1beta/models",
        "/v1beta/models/gemini-2.5-flash",
    ],
)
def test_other_paths_have_no_model(path):
    assert g.model_from_path(path) is None
    assert not g.matches_path(path)
    assert g.rewrite_path(path, "gemini-2.5-pro") == path


def test_rewrite_path_changes_only_the_model_segment():
    assert (
        g.rewrite_path("/v1beta/models/auto:streamGenerateContent?alt=sse&key=x", "gemini-2.5-flash")
        == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=x"
    )
    assert g.rewrite_path("/v1/models/auto:generateContent", "models/gemini-2.5-pro") == "/v1/models/gemini-2.5-pro:generateContent"


def test_request_model_is_never_in_the_body():
    assert g.request_model({"model": "gpt-4o", "contents": []}) is None


def test_prompt_text_system_instruction_then_contents(provider_responses):
    body = json.loads((provider_responses / "35-gemini-generate-thoughts.request.json").read_text())
    assert g.prompt_text(body) == "You are a chatbot.\nHello!"
    snake = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "a"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"text": "b"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}, {"text": "c"}]},
        ],
    }
    assert g.prompt_text(snake) == "Be brief.\na\nb\nc"


@pytest.mark.parametrize(
    ("rid", "model", "expected"),
    [
        # prompt 9, candidates 9, thoughts 34: output 9 + 34 = 43 of which 34 reasoning (total 52).
        ("35-gemini-generate-thoughts", "gemini-2.5-flash",
         Usage(uncached_input_tokens=9, output_tokens=43, reasoning_tokens=34)),
        # prompt 15, candidates 8, thoughts 275: output 283, reasoning 275 (total 298).
        ("37-gemini-2-5-pro-thinking-config", "models/gemini-2.5-pro",
         Usage(uncached_input_tokens=15, output_tokens=283, reasoning_tokens=275)),
    ],
)
def test_recorded_responses(provider_responses, rid, model, expected):
    body = json.loads((provider_responses / f"{rid}.response.json").read_text())
    assert g.response_model(body) == model
    assert g.usage(body) == expected
    u = g.usage(body)
    assert u.total_tokens == body["usageMetadata"]["totalTokenCount"]


def test_recorded_stream_last_cumulative_chunk_wins(provider_responses):
    # Three chunks, candidates 31 -> 79 -> 80, prompt 18 and thoughts 35 each time: the last
    # chunk's counts (never the sum 190 / 54 / 105): input 18, output 80 + 35 = 115, reasoning 35.
    raw = (provider_responses / "38-gemini-stream-usage.response.sse").read_bytes()
    events, _ = SSEParser().feed(raw)
    acc = g.stream_usage()
    for ev in events:
        acc.on_event(ev)
    assert len(events) == 3
    assert acc.model == "gemini-2.5-flash"
    assert acc.usage() == Usage(uncached_input_tokens=18, output_tokens=115, reasoning_tokens=35)
    assert not acc.failed


def test_cached_content_is_inside_the_prompt_and_tool_prompt_is_outside():
    body = {
        "modelVersion": "gemini-2.5-pro",
        "usageMetadata": {
            "promptTokenCount": 250_000,
            "cachedContentTokenCount": 200_000,
            "toolUsePromptTokenCount": 1_200,
            "candidatesTokenCount": 900,
            "thoughtsTokenCount": 2_100,
            "totalTokenCount": 254_200,
            "serviceTier": "flex",
        },
    }
    u = g.usage(body)
    # uncached = 250,000 - 200,000 + 1,200 tool prompt; output = 900 + 2,100.
    assert u == Usage(uncached_input_tokens=51_200, cache_read_tokens=200_000, output_tokens=3_000, reasoning_tokens=2_100)
    assert u.input_tokens == 251_200
    assert u.total_tokens == 254_200
    assert g.response_info(body).service_tier == "flex"


def test_no_usage_error_bodies_and_arrays():
    assert g.usage({"error": {"code": 404, "message": "x", "status": "NOT_FOUND"}}) is None
    assert g.usage({"candidates": []}) is None
    # streamGenerateContent without alt=sse: one JSON array of chunks; the last usage holds.
    chunks = [
        {"modelVersion": "gemini-2.5-flash", "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1}},
        {"modelVersion": "gemini-2.5-flash", "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}},
    ]
    assert g.usage(chunks) == Usage(uncached_input_tokens=5, output_tokens=7)
    assert g.response_model(chunks) == "gemini-2.5-flash"


def test_odd_counts_never_go_negative():
    # cached above prompt (a bad server) is capped at the prompt; strings and negatives count as 0.
    u = g.usage({"usageMetadata": {"promptTokenCount": 10, "cachedContentTokenCount": 12, "candidatesTokenCount": "3", "thoughtsTokenCount": -1}})
    assert u == Usage(uncached_input_tokens=0, cache_read_tokens=10, output_tokens=0)
