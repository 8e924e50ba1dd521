"""The emulator answers recorded real requests with the *shape* of the recorded real responses:
same content-type, same key sets, same usage keys, same SSE event order (repeats collapsed)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

USAGE_REASONING = json.dumps({"input": 10, "output": 20, "reasoning": 8})


async def post(http, emulator, rec, headers=None):
    url = urlsplit(rec.row["url"])
    path = url.path + (f"?{url.query}" if url.query else "")
    async with http.post(emulator.base_url + path, json=rec.request, headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == rec.row["response_content_type"]
        return await resp.read()


# --- OpenAI Chat Completions -------------------------------------------------------------------


async def test_chat_json_matches_01(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "01-openai-chat-basic")
    body = json.loads(await post(http, emulator, rec))
    assert set(body) == set(rec.response)
    assert shapes.deep_keys(body) == shapes.deep_keys(rec.response)
    assert body["model"] == rec.row["response_model"] == "gpt-5-nano-2025-08-07"


async def test_chat_sse_without_usage_matches_04(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "04-openai-chat-stream-no-usage")
    raw = await post(http, emulator, rec)
    assert shapes.collapse(shapes.chat_chunk_kinds(raw)) == shapes.collapse(shapes.chat_chunk_kinds(rec.response))
    assert shapes.collapse(shapes.chat_chunk_kinds(raw)) == ["role", "content", "finish", "done"]
    ours = {frozenset(json.loads(d)) for _, d in shapes.parse_sse(raw) if d != "[DONE]"}
    theirs = {frozenset(json.loads(d)) for _, d in shapes.parse_sse(rec.response) if d != "[DONE]"}
    assert ours == theirs  # no "usage" key anywhere without include_usage


async def test_chat_sse_with_usage_matches_03(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "03-openai-chat-stream-include-usage")
    raw = await post(http, emulator, rec)
    # Recording 03 spent all 100 tokens on reasoning, so it has no content chunks; ours has text.
    ours = [k for k in shapes.collapse(shapes.chat_chunk_kinds(raw)) if k != "content"]
    assert ours == shapes.collapse(shapes.chat_chunk_kinds(rec.response)) == ["role", "finish", "usage", "done"]
    ours_chunks = [json.loads(d) for _, d in shapes.parse_sse(raw) if d != "[DONE]"]
    theirs_chunks = [json.loads(d) for _, d in shapes.parse_sse(rec.response) if d != "[DONE]"]
    assert {frozenset(c) for c in ours_chunks} == {frozenset(c) for c in theirs_chunks}
    assert all(c["usage"] is None for c in ours_chunks[:-1])
    assert shapes.deep_keys(ours_chunks[-1]["usage"]) == shapes.deep_keys(theirs_chunks[-1]["usage"])
    assert ours_chunks[-1]["choices"] == []


async def test_chat_sse_tool_call_matches_15(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "15-openai-chat-stream-gpt-4o-mini")
    raw = await post(http, emulator, rec)
    kinds = shapes.collapse(shapes.chat_chunk_kinds(raw))
    assert kinds == shapes.collapse(shapes.chat_chunk_kinds(rec.response))
    assert kinds == ["role", "tool_args", "finish", "usage", "done"]
    chunks = [json.loads(d) for _, d in shapes.parse_sse(raw) if d != "[DONE]"]
    assert chunks[0]["model"] == "gpt-4o-mini-2024-07-18"
    first_call = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first_call["function"] == {"name": "get_capital", "arguments": ""}
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                   for c in chunks[1:] if c["choices"] and "tool_calls" in c["choices"][0]["delta"])
    assert json.loads(args) == {"country": "example"}  # required string property -> "example"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


# --- OpenAI Responses --------------------------------------------------------------------------


async def test_responses_json_matches_17(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "17-openai-responses-o3-mini-reasoning")
    body = json.loads(await post(http, emulator, rec, {"x-emulator-usage": USAGE_REASONING}))
    assert set(body) == set(rec.response)
    assert shapes.deep_keys(body["usage"]) == shapes.deep_keys(rec.response["usage"])
    assert [i["type"] for i in body["output"]] == [i["type"] for i in rec.response["output"]] == ["reasoning", "message"]
    assert set(body["output"][1]) == set(rec.response["output"][1])
    assert body["model"] == "o3-mini-2025-01-31"


async def test_responses_sse_tool_call_matches_20(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "20-openai-responses-stream-gpt-4o")
    raw = await post(http, emulator, rec)
    ours, theirs = shapes.parse_sse(raw), shapes.parse_sse(rec.response)
    assert shapes.collapse([e for e, _ in ours]) == shapes.collapse([e for e, _ in theirs])
    assert all(json.loads(d)["type"] == e for e, d in ours)
    completed = json.loads(ours[-1][1])["response"]
    assert shapes.deep_keys(completed["usage"]) == shapes.deep_keys(json.loads(theirs[-1][1])["response"]["usage"])
    assert all(json.loads(d).get("response", {}).get("usage") is None for _, d in ours[:-1])
    assert completed["model"] == "gpt-4o-2024-08-06"


async def test_responses_sse_reasoning_and_tool_matches_21(emulator, http, provider_responses, provider_index,
                                                           shapes):
    rec = shapes.recorded(provider_responses, provider_index, "21-openai-responses-stream-gpt-5-usage")
    raw = await post(http, emulator, rec, {"x-emulator-usage": USAGE_REASONING})
    ours, theirs = shapes.parse_sse(raw), shapes.parse_sse(rec.response)
    assert shapes.collapse([e for e, _ in ours]) == shapes.collapse([e for e, _ in theirs])
    assert [json.loads(d)["sequence_number"] for _, d in ours] == list(range(len(ours)))
    assert set(json.loads(ours[0][1])["response"]) >= {"id", "object", "created_at", "status", "model", "usage"}


async def test_responses_sse_text_event_order(emulator, http, shapes):
    """No recording streams plain text from /v1/responses; the order is OpenAI's documented one."""
    async with http.post(emulator.base_url + "/v1/responses",
                         json={"model": "gpt-4o", "input": "Hello!", "stream": True}) as resp:
        raw = await resp.read()
    assert shapes.collapse([e for e, _ in shapes.parse_sse(raw)]) == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]


# --- Anthropic Messages ------------------------------------------------------------------------


async def test_anthropic_json_matches_24(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "24-anthropic-cache-read")
    body = json.loads(await post(http, emulator, rec))
    assert set(body) == set(rec.response)
    assert shapes.deep_keys(body) == shapes.deep_keys(rec.response)
    assert body["model"] == "claude-sonnet-4-5-20250929"


async def test_anthropic_tool_use_matches_29(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "29-anthropic-tool-use")
    body = json.loads(await post(http, emulator, rec))
    assert set(body) == set(rec.response)
    assert set(body["content"][0]) == set(rec.response["content"][0])
    assert body["content"][0]["name"] == "get_user_country" and body["content"][0]["input"] == {}
    assert body["stop_reason"] == rec.response["stop_reason"] == "tool_use"


async def test_anthropic_sse_matches_30(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "30-anthropic-stream-basic")
    raw = await post(http, emulator, rec)
    ours, theirs = shapes.parse_sse(raw), shapes.parse_sse(rec.response)
    assert shapes.collapse([e for e, _ in ours]) == shapes.collapse([e for e, _ in theirs]) == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"]
    ours_by = {e: json.loads(d) for e, d in ours}
    theirs_by = {e: json.loads(d) for e, d in theirs}
    for event in ours_by:
        assert shapes.deep_keys(ours_by[event]) == shapes.deep_keys(theirs_by[event]), event


# --- Gemini ------------------------------------------------------------------------------------


async def test_gemini_json_matches_35(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "35-gemini-generate-thoughts")
    body = json.loads(await post(http, emulator, rec, {"x-emulator-usage": USAGE_REASONING}))
    assert set(body) == set(rec.response)
    # serviceTier: newer Gemini responses carry it (recording 38); recording 35 predates it.
    assert shapes.deep_keys(body) - {"usageMetadata.serviceTier"} == shapes.deep_keys(rec.response)
    assert body["modelVersion"] == "gemini-2.5-flash"


async def test_gemini_sse_matches_38(emulator, http, provider_responses, provider_index, shapes):
    rec = shapes.recorded(provider_responses, provider_index, "38-gemini-stream-usage")
    raw = await post(http, emulator, rec, {"x-emulator-usage": USAGE_REASONING})
    assert raw.endswith(b"}\r\n\r\n") and b"\n\n" not in raw.replace(b"\r\n\r\n", b"")
    ours = [json.loads(d) for _, d in shapes.parse_sse(raw)]
    theirs = [json.loads(d) for _, d in shapes.parse_sse(rec.response)]
    assert len(ours) > 1
    assert {frozenset(shapes.deep_keys(c)) for c in ours[:-1]} == {frozenset(shapes.deep_keys(c)) for c in theirs[:-1]}
    assert shapes.deep_keys(ours[-1]) == shapes.deep_keys(theirs[-1])
    assert [c["candidates"][0].get("finishReason") for c in ours] == [None] * (len(ours) - 1) + ["STOP"]
