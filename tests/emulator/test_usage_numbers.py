"""Exact usage numbers, worked out by hand, in each provider's own counting rule.

Neutral override used below: input 100 (uncached), cache_read 40, cache_write 20, output 30 of which
reasoning 10. Hand conversions:
- OpenAI chat: prompt_tokens = 100 + 40 + 20 = 160, cached_tokens 40, cache_write_tokens 20,
  completion_tokens 30, reasoning_tokens 10, total 190.
- OpenAI responses: input_tokens 160, cached_tokens 40, output_tokens 30, reasoning 10, total 190.
- Anthropic: input_tokens 100 (uncached only), cache_read_input_tokens 40,
  cache_creation_input_tokens 20 (= ephemeral_5m 20), output_tokens 30.
- Gemini: promptTokenCount 160, cachedContentTokenCount 40, candidatesTokenCount 30 - 10 = 20,
  thoughtsTokenCount 10, totalTokenCount 160 + 20 + 10 = 190.

Default rule (no override), prompt "Hello!" as the only message:
- input = ceil(6 bytes / 4) + 3 per message = 2 + 3 = 5.
- reply = 'You asked: "Hello!". This is a canned reply from the emulator.'
  = 'You asked: ' (11) + '"Hello!".' (9) + ' This is a canned reply from the emulator.' (42) = 62 bytes
  -> ceil(62 / 4) = 16 output tokens.
"""

from __future__ import annotations

import json

OVERRIDE = {"x-emulator-usage": json.dumps(
    {"input": 100, "output": 30, "cache_read": 40, "cache_write": 20, "reasoning": 10})}
REPLY = 'You asked: "Hello!". This is a canned reply from the emulator.'
HELLO = [{"role": "user", "content": "Hello!"}]
GEMINI_HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello!"}]}]}


async def post_json(http, url, body, headers=None):
    async with http.post(url, json=body, headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def post_sse(http, url, body, shapes, headers=None):
    async with http.post(url, json=body, headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        return shapes.parse_sse(await resp.read())


async def test_openai_chat_override(emulator, http, shapes):
    url = emulator.base_url + "/v1/chat/completions"
    expected = {"prompt_tokens": 160, "completion_tokens": 30, "total_tokens": 190,
                "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0, "cache_write_tokens": 20},
                "completion_tokens_details": {"reasoning_tokens": 10, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    body = await post_json(http, url, {"model": "gpt-4o-mini", "messages": HELLO}, OVERRIDE)
    assert body["usage"] == expected
    events = await post_sse(http, url, {"model": "gpt-4o-mini", "messages": HELLO, "stream": True,
                                        "stream_options": {"include_usage": True}}, shapes, OVERRIDE)
    assert json.loads(events[-2][1])["usage"] == expected
    assert events[-1][1] == "[DONE]"


async def test_openai_chat_cache_read_only(emulator, http):
    """The brief's example: input 100, cache_read 40 -> prompt_tokens 140, cached_tokens 40, and no
    cache_write_tokens field when nothing was written (as recording 01)."""
    headers = {"x-emulator-usage": json.dumps({"input": 100, "output": 5, "cache_read": 40})}
    body = await post_json(http, emulator.base_url + "/v1/chat/completions",
                           {"model": "gpt-4o", "messages": HELLO}, headers)
    assert body["usage"]["prompt_tokens"] == 140
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 40, "audio_tokens": 0}
    assert body["usage"]["total_tokens"] == 145


async def test_openai_responses_override(emulator, http, shapes):
    url = emulator.base_url + "/v1/responses"
    expected = {"input_tokens": 160, "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 20},
                "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 10}, "total_tokens": 190}
    body = await post_json(http, url, {"model": "gpt-5-mini", "input": "Hello!"}, OVERRIDE)
    assert body["usage"] == expected
    events = await post_sse(http, url, {"model": "gpt-5-mini", "input": "Hello!", "stream": True}, shapes, OVERRIDE)
    assert json.loads(events[-1][1])["response"]["usage"] == expected


async def test_anthropic_override(emulator, http, shapes):
    url = emulator.base_url + "/v1/messages"
    req = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": HELLO}
    body = await post_json(http, url, req, OVERRIDE)
    assert body["usage"] == {"input_tokens": 100, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 40,
                             "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 0},
                             "output_tokens": 30, "service_tier": "standard", "inference_geo": "not_available"}
    events = dict(await post_sse(http, url, {**req, "stream": True}, shapes, OVERRIDE))
    start = json.loads(events["message_start"])["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"], start["cache_creation_input_tokens"]) == (100, 40, 20)
    assert start["output_tokens"] == 1  # placeholder, as the real API sends
    assert json.loads(events["message_delta"])["usage"] == {
        "input_tokens": 100, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 40, "output_tokens": 30}


async def test_one_hour_cache_writes(emulator, http):
    """cache_write 20 (5 m) + cache_write_1h 50: Anthropic cache_creation_input_tokens 20 + 50 = 70 split
    5m 20 / 1h 50, input_tokens still 100; OpenAI prompt_tokens 100 + 40 + 70 = 210, cache_write_tokens 70."""
    headers = {"x-emulator-usage": json.dumps(
        {"input": 100, "output": 30, "cache_read": 40, "cache_write": 20, "cache_write_1h": 50})}
    msg = await post_json(http, emulator.base_url + "/v1/messages",
                          {"model": "claude-opus-4-1", "max_tokens": 10, "messages": HELLO}, headers)
    assert msg["usage"]["input_tokens"] == 100 and msg["usage"]["cache_creation_input_tokens"] == 70
    assert msg["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 50}
    chat = await post_json(http, emulator.base_url + "/v1/chat/completions",
                           {"model": "gpt-4o", "messages": HELLO}, headers)
    assert chat["usage"]["prompt_tokens"] == 210
    assert chat["usage"]["prompt_tokens_details"]["cache_write_tokens"] == 70


async def test_gemini_override(emulator, http, shapes):
    base = emulator.base_url + "/v1beta/models/gemini-2.5-pro"
    expected = {"promptTokenCount": 160, "candidatesTokenCount": 20, "totalTokenCount": 190,
                "cachedContentTokenCount": 40, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 160}],
                "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 40}], "thoughtsTokenCount": 10,
                "serviceTier": "standard"}
    body = await post_json(http, base + ":generateContent", GEMINI_HELLO, OVERRIDE)
    assert body["usageMetadata"] == expected
    events = await post_sse(http, base + ":streamGenerateContent?alt=sse", GEMINI_HELLO, shapes, OVERRIDE)
    chunks = [json.loads(d) for _, d in events]
    assert chunks[-1]["usageMetadata"] == expected
    candidates = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert candidates == sorted(candidates) and candidates[-1] == 20  # cumulative, never decreasing
    assert all(c["usageMetadata"]["promptTokenCount"] == 160 for c in chunks)


async def test_default_rule_every_dialect(emulator, http):
    """Without an override: input 5, output 16, the canned reply text (see module docstring)."""
    chat = await post_json(http, emulator.base_url + "/v1/chat/completions", {"model": "gpt-4.1", "messages": HELLO})
    assert chat["choices"][0]["message"]["content"] == REPLY
    assert (chat["usage"]["prompt_tokens"], chat["usage"]["completion_tokens"]) == (5, 16)
    resp = await post_json(http, emulator.base_url + "/v1/responses", {"model": "gpt-4.1-mini", "input": "Hello!"})
    assert resp["output"][0]["content"][0]["text"] == REPLY
    assert (resp["usage"]["input_tokens"], resp["usage"]["output_tokens"]) == (5, 16)
    msg = await post_json(http, emulator.base_url + "/v1/messages",
                          {"model": "claude-opus-4-1", "max_tokens": 1024, "messages": HELLO})
    assert msg["content"] == [{"type": "text", "text": REPLY}]
    assert (msg["usage"]["input_tokens"], msg["usage"]["output_tokens"]) == (5, 16)
    gem = await post_json(http, emulator.base_url + "/v1beta/models/gemini-2.5-flash-lite:generateContent",
                          GEMINI_HELLO)
    assert gem["candidates"][0]["content"]["parts"] == [{"text": REPLY}]
    assert (gem["usageMetadata"]["promptTokenCount"], gem["usageMetadata"]["candidatesTokenCount"]) == (5, 16)
    assert "thoughtsTokenCount" not in gem["usageMetadata"]  # zero counts are omitted


async def test_system_prompt_and_multibyte_text_count(emulator, http):
    """system "Be brief." (9 bytes) + user "héllo wörld" (13 bytes: é and ö are 2 bytes each):
    ceil(22 / 4) + 3 * 2 messages = 6 + 6 = 12 input tokens (same for Anthropic's top-level system)."""
    chat = await post_json(http, emulator.base_url + "/v1/chat/completions", {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "héllo wörld"}]}]})
    assert chat["usage"]["prompt_tokens"] == 12
    msg = await post_json(http, emulator.base_url + "/v1/messages", {
        "model": "claude-sonnet-4-5", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "héllo wörld"}]})
    assert msg["usage"]["input_tokens"] == 12
    assert msg["content"][0]["text"] == 'You asked: "héllo wörld". This is a canned reply from the emulator.'


async def test_output_caps(emulator, http):
    """Cap 5 tokens -> the reply is cut to its first 5 * 4 = 20 bytes, 'You asked: "Hello!".',
    output tokens 5, and each provider's truncation marker."""
    cut = 'You asked: "Hello!".'
    chat = await post_json(http, emulator.base_url + "/v1/chat/completions",
                           {"model": "gpt-5-nano", "messages": HELLO, "max_completion_tokens": 5})
    assert chat["choices"][0]["message"]["content"] == cut
    assert chat["choices"][0]["finish_reason"] == "length" and chat["usage"]["completion_tokens"] == 5
    legacy = await post_json(http, emulator.base_url + "/v1/chat/completions",
                             {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 5})
    assert legacy["choices"][0]["message"]["content"] == cut
    resp = await post_json(http, emulator.base_url + "/v1/responses",
                           {"model": "gpt-5", "input": "Hello!", "max_output_tokens": 5})
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resp["output"][0]["content"][0]["text"] == cut and resp["usage"]["output_tokens"] == 5
    msg = await post_json(http, emulator.base_url + "/v1/messages",
                          {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": HELLO})
    assert msg["stop_reason"] == "max_tokens" and msg["content"][0]["text"] == cut
    assert msg["usage"]["output_tokens"] == 5
    gem = await post_json(http, emulator.base_url + "/v1beta/models/gemini-2.5-flash:generateContent",
                          {**GEMINI_HELLO, "generationConfig": {"maxOutputTokens": 5}})
    assert gem["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert gem["candidates"][0]["content"]["parts"] == [{"text": cut}]
    assert gem["usageMetadata"]["candidatesTokenCount"] == 5


async def test_reply_varies_with_prompt_first_words(emulator, http):
    body = await post_json(http, emulator.base_url + "/v1/chat/completions", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "ignored earlier turn"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "  What   is the capital of France?"}]})
    assert body["choices"][0]["message"]["content"] == (
        'You asked: "What is the capital of". This is a canned reply from the emulator.')
