"""Each dialect's request/response parsing, on recorded real responses and on our own fixtures.

Expected token classes are worked out by hand from the provider's counting rule (stated per test).
"""

from __future__ import annotations

import json

import pytest

from nadir_extproc.dialects import DIALECTS, default_paths, detect
from nadir_extproc.dialects.base import RewriteError, replace_top_level_string
from nadir_extproc.pricing.usage import Usage
from tests.conftest import load_case

chat = DIALECTS["openai_chat"]
responses = DIALECTS["openai_responses"]
messages = DIALECTS["anthropic_messages"]


def _load(folder, name):
    return json.loads((folder / name).read_text())


# --- recorded real responses ---------------------------------------------------------------
@pytest.mark.parametrize(
    "rid, dialect, model, expected",
    [
        # OpenAI: prompt 8 incl. 0 cached; completion 377 incl. 320 reasoning.
        ("01-openai-chat-basic", chat, "gpt-5-nano-2025-08-07",
         Usage(uncached_input_tokens=8, output_tokens=377, reasoning_tokens=320)),
        ("14-openai-chat-o3-mini-reasoning", chat, "o3-mini-2025-01-31",
         Usage(uncached_input_tokens=7, output_tokens=87, reasoning_tokens=64)),
        # OpenAI-compatible (z.ai): prompt 435 incl. 4 cached -> 431 uncached.
        ("48-zai-chat-thinking-cached", chat, "glm-4.6v",
         Usage(uncached_input_tokens=431, cache_read_tokens=4, output_tokens=73, reasoning_tokens=56)),
        # OpenRouter proxying Anthropic: 3329 = 3 uncached + 3211 cached + 115 cache-write.
        ("45-openrouter-chat-anthropic-cached", chat, "anthropic/claude-4.6-sonnet-20260217",
         Usage(uncached_input_tokens=3, cache_read_tokens=3211, cache_write_tokens=115, output_tokens=53)),
        # Ollama: no details at all.
        ("44-ollama-local-chat", chat, "qwen3:0.6b", Usage(uncached_input_tokens=136, output_tokens=15)),
        # Responses: input 13 incl 0 cached; output 227 incl. 192 reasoning.
        ("17-openai-responses-o3-mini-reasoning", responses, "o3-mini-2025-01-31",
         Usage(uncached_input_tokens=13, output_tokens=227, reasoning_tokens=192)),
        # Responses cache hit: 4020 incl. 4012 cached -> 8 uncached.
        ("18-openai-responses-prompt-cache-hit", responses, "gpt-5.6-sol",
         Usage(uncached_input_tokens=8, cache_read_tokens=4012, output_tokens=5)),
        # Anthropic: input 3 excludes 1111 cache reads.
        ("24-anthropic-cache-read", messages, "claude-sonnet-4-5-20250929",
         Usage(uncached_input_tokens=3, cache_read_tokens=1111, output_tokens=406)),
        # Anthropic: 418 written with the 5-minute TTL, 1111 read, 3 fresh.
        ("25-anthropic-cache-write-and-read", messages, "claude-sonnet-4-5-20250929",
         Usage(uncached_input_tokens=3, cache_read_tokens=1111, cache_write_tokens=418, output_tokens=33)),
        # Anthropic thinking: no separate counter, thinking inside output 321.
        ("28-anthropic-thinking", messages, "claude-sonnet-4-5-20250929",
         Usage(uncached_input_tokens=43, output_tokens=321)),
    ],
)
def test_recorded_response_usage(provider_responses, rid, dialect, model, expected):
    body = _load(provider_responses, f"{rid}.response.json")
    assert dialect.response_model(body) == model
    assert dialect.usage(body) == expected


def test_recorded_error_bodies_have_no_usage(provider_responses):
    assert chat.usage(_load(provider_responses, "08-openai-chat-error-400.response.json")) is None
    assert chat.usage(_load(provider_responses, "09-openai-chat-error-404-unknown-model.response.json")) is None
    assert messages.usage(_load(provider_responses, "34-anthropic-error-404.response.json")) is None


@pytest.mark.parametrize(
    "rid, dialect, model, stream, fragment",
    [
        ("01-openai-chat-basic", chat, "gpt-5-nano", False, "Hello!"),
        ("03-openai-chat-stream-include-usage", chat, "gpt-5-nano", True, None),
        ("17-openai-responses-o3-mini-reasoning", responses, "o3-mini", False, "What is the capital of Mexico?"),
        ("24-anthropic-cache-read", messages, "claude-sonnet-4-5", False, "Please explain what Python is"),
        ("30-anthropic-stream-basic", messages, "claude-sonnet-4-5", True, None),
    ],
)
def test_recorded_request_fields(provider_responses, rid, dialect, model, stream, fragment):
    body = _load(provider_responses, f"{rid}.request.json")
    assert dialect.request_model(body) == model
    assert dialect.is_stream(body) is stream
    if fragment:
        assert fragment in dialect.prompt_text(body)


def test_recorded_request_rewrite_keeps_every_other_byte(provider_responses):
    raw = (provider_responses / "24-anthropic-cache-read.request.json").read_bytes()
    body = json.loads(raw)
    new = messages.rewrite_model(raw, body, "claude-haiku-4-5")
    assert json.loads(new) == {**body, "model": "claude-haiku-4-5"}
    # Only the value changed: length differs by len("claude-haiku-4-5") - len("claude-sonnet-4-5") = -1.
    assert len(new) == len(raw) - 1


# --- our own fixtures ------------------------------------------------------------------------
def test_anthropic_iterations_are_summed_shared_case_26():
    # Case 26: compaction step (150 in, 30000 read, 1200 5m-write, 60 out) + answer (240 in, 12 out).
    u = {
        "input_tokens": 240, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 12,
        "iterations": [
            {"type": "compaction", "input_tokens": 150, "output_tokens": 60, "cache_read_input_tokens": 30000,
             "cache_creation_input_tokens": 1200,
             "cache_creation": {"ephemeral_5m_input_tokens": 1200, "ephemeral_1h_input_tokens": 0}},
            {"type": "message", "input_tokens": 240, "output_tokens": 12, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 0},
        ],
    }
    assert messages.usage({"usage": u}) == Usage(
        uncached_input_tokens=390, cache_read_tokens=30000, cache_write_tokens=1200, output_tokens=72
    )


def test_anthropic_1h_cache_writes_split_by_ttl():
    u = {"input_tokens": 10, "cache_creation_input_tokens": 500, "output_tokens": 7,
         "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 300}}
    assert messages.usage({"usage": u}) == Usage(
        uncached_input_tokens=10, cache_write_tokens=200, cache_write_1h_tokens=300, output_tokens=7
    )


def test_openai_cached_subset_shared_case_01():
    u = {"prompt_tokens": 3150, "completion_tokens": 412,
         "prompt_tokens_details": {"cached_tokens": 2944}, "completion_tokens_details": {"reasoning_tokens": 0}}
    assert chat.usage({"usage": u}) == Usage(uncached_input_tokens=206, cache_read_tokens=2944, output_tokens=412)


def test_usage_absent_or_malformed_is_none_not_zero():
    assert chat.usage({}) is None
    assert chat.usage({"usage": None}) is None
    assert responses.usage({"usage": "lots"}) is None
    assert messages.usage({"usage": {}}) is None


def test_prompt_text_covers_every_message_shape():
    body = {
        "system": [{"type": "text", "text": "SYS"}],
        "messages": [{"role": "user", "content": "A"}, {"role": "user", "content": [{"type": "text", "text": "B"}]}],
    }
    assert messages.prompt_text(body) == "SYS\nA\nB"
    assert responses.prompt_text({"instructions": "I", "input": "X"}) == "I\nX"
    assert chat.prompt_text({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]}) == "S\nU"


def test_rewrite_only_top_level_model_shared_case_07(cases_dir):
    case = load_case(cases_dir, "07-model-auto-rewrite-route-and-price")
    raw = case["input"]["request_body"].encode()
    new = replace_top_level_string(raw, "model", "gpt-4o-mini")
    assert json.loads(new) == json.loads(case["expected"]["upstream_request_body"])
    assert len(new) == 237  # the case's content-length after the rewrite (230 + 11 - 4)


def test_rewrite_handles_spacing_nesting_and_escapes():
    raw = b'{ "metadata" : {"model": "auto"}, "msgs": ["\\"model\\": \\"auto\\""], "model" :\n "auto" }'
    out = replace_top_level_string(raw, "model", "m")
    assert out == b'{ "metadata" : {"model": "auto"}, "msgs": ["\\"model\\": \\"auto\\""], "model" :\n "m" }'


def test_rewrite_errors():
    with pytest.raises(RewriteError):
        replace_top_level_string(b'{"a": {"model": "auto"}}', "model", "m")
    with pytest.raises(RewriteError):
        replace_top_level_string(b'{"model": 5}', "model", "m")


def test_detect_by_path_ignores_query():
    paths = default_paths()
    assert detect("/v1/chat/completions", paths).name == "openai_chat"
    assert detect("/v1/messages?beta=true", paths).name == "anthropic_messages"
    assert detect("/v1/responses", paths).name == "openai_responses"
    assert detect("/v1/models", paths) is None
    assert detect("/v1/chat/completions/extra", paths) is None


def test_duplicate_top_level_model_keys_are_all_rewritten():
    # json.loads keeps the last duplicate; some upstream parsers keep the first: rewrite both.
    raw = b'{"model":"gpt-4o","messages":[],"model":"auto"}'
    assert replace_top_level_string(raw, "model", "m") == b'{"model":"m","messages":[],"model":"m"}'


def test_anthropic_web_search_calls_are_read():
    u = {"input_tokens": 10, "output_tokens": 5, "server_tool_use": {"web_search_requests": 3}}
    assert messages.usage({"usage": u}) == Usage(uncached_input_tokens=10, output_tokens=5, web_search_requests=3)
