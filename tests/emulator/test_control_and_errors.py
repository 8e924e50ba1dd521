"""Error bodies in each provider's format, model table, control headers, and request recording."""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib

import aiohttp
import pytest

HELLO = [{"role": "user", "content": "Hello!"}]
GEMINI_HELLO = {"contents": [{"parts": [{"text": "Hello!"}]}]}

# (path, body with model "auto") per dialect
AUTO = {
    "chat": ("/v1/chat/completions", {"model": "auto", "messages": HELLO}),
    "responses": ("/v1/responses", {"model": "auto", "input": "Hello!"}),
    "anthropic": ("/v1/messages", {"model": "auto", "max_tokens": 10, "messages": HELLO}),
    "gemini": ("/v1beta/models/auto:generateContent", GEMINI_HELLO),
}


async def call(http, emulator, path, body=None, data=None, headers=None):
    kwargs = {"data": data} if data is not None else {"json": body}
    async with http.post(emulator.base_url + path, headers=headers or {}, **kwargs) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


# --- unknown models, "auto" included -------------------------------------------------------------


async def test_auto_is_unknown_to_every_provider(emulator, http):
    chat = await call(http, emulator, *AUTO["chat"])
    assert chat[0] == 404 and json.loads(chat[2]) == {"error": {
        "message": "The model `auto` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    assert chat[1]["Content-Type"] == "application/json; charset=utf-8"  # as recording 09
    responses = await call(http, emulator, *AUTO["responses"])
    assert responses[0] == 404 and json.loads(responses[2])["error"]["code"] == "model_not_found"
    status, headers, raw = await call(http, emulator, *AUTO["anthropic"])
    body = json.loads(raw)
    assert status == 404 and body["type"] == "error"
    assert body["error"] == {"type": "not_found_error", "message": "model: auto"}
    assert body["request_id"] == headers["request-id"] and body["request_id"].startswith("req_")
    status, headers, raw = await call(http, emulator, *AUTO["gemini"])
    assert status == 404 and json.loads(raw)["error"]["status"] == "NOT_FOUND"
    assert json.loads(raw)["error"]["code"] == 404 and "models/auto is not found" in json.loads(raw)["error"]["message"]


async def test_unknown_model_errors_match_recordings(emulator, http, provider_responses, provider_index, shapes):
    rec09 = shapes.recorded(provider_responses, provider_index, "09-openai-chat-error-404-unknown-model")
    status, _, raw = await call(http, emulator, "/v1/chat/completions", rec09.request)
    assert status == rec09.row["status"] == 404 and json.loads(raw) == rec09.response
    rec34 = shapes.recorded(provider_responses, provider_index, "34-anthropic-error-404")
    status, _, raw = await call(http, emulator, "/v1/messages?beta=true", rec34.request)
    body = json.loads(raw)
    assert status == 404 and set(body) == set(rec34.response) and body["error"] == rec34.response["error"]


async def test_wrong_provider_model_is_unknown(emulator, http):
    status, _, _ = await call(http, emulator, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": HELLO})
    assert status == 404
    status, _, _ = await call(http, emulator, "/v1/messages", {"model": "gpt-4o", "max_tokens": 5, "messages": HELLO})
    assert status == 404


@pytest.mark.parametrize(("path", "requested", "served"), [
    ("/v1/chat/completions", "gpt-4o", "gpt-4o-2024-08-06"),
    ("/v1/chat/completions", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("/v1/chat/completions", "gpt-5-nano", "gpt-5-nano-2025-08-07"),
    ("/v1/chat/completions", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
    ("/v1/chat/completions", "o3-mini", "o3-mini-2025-01-31"),
    ("/v1/responses", "gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"),
    ("/v1/messages", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("/v1/messages", "claude-haiku-4-5", "claude-haiku-4-5-20251001"),
    ("/v1/messages", "claude-opus-4-1", "claude-opus-4-1-20250805"),
    ("/v1/messages", "claude-opus-4-1-20250805", "claude-opus-4-1-20250805"),
    ("/v1/messages", "claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
])
async def test_alias_reports_dated_snapshot(emulator, http, path, requested, served):
    body = {"model": requested, "messages": HELLO, "input": "Hello!", "max_tokens": 50}
    if path == "/v1/responses":
        body = {"model": requested, "input": "Hello!"}
    status, _, raw = await call(http, emulator, path, body)
    assert status == 200 and json.loads(raw)["model"] == served


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"])
async def test_gemini_model_version(emulator, http, model):
    status, _, raw = await call(http, emulator, f"/v1beta/models/{model}:generateContent", GEMINI_HELLO)
    assert status == 200 and json.loads(raw)["modelVersion"] == model


# --- malformed requests ------------------------------------------------------------------------


async def test_invalid_json_is_400_in_each_format(emulator, http):
    for path in ("/v1/chat/completions", "/v1/responses"):
        status, _, raw = await call(http, emulator, path, data=b'{"model": "gpt-4o",')
        err = json.loads(raw)["error"]
        assert status == 400 and err["type"] == "invalid_request_error" and "could not parse the JSON" in err["message"]
        assert set(err) == {"message", "type", "param", "code"}
    status, _, raw = await call(http, emulator, "/v1/messages", data=b"not json")
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, raw = await call(http, emulator, "/v1beta/models/gemini-2.5-flash:generateContent", data=b"[")
    assert status == 400 and json.loads(raw)["error"]["status"] == "INVALID_ARGUMENT"


async def test_missing_model_is_400(emulator, http):
    status, _, raw = await call(http, emulator, "/v1/chat/completions", {"messages": HELLO})
    assert status == 400 and json.loads(raw)["error"]["message"] == "you must provide a model parameter"
    status, _, raw = await call(http, emulator, "/v1/responses", {"input": "Hello!"})
    assert status == 400 and json.loads(raw)["error"]["param"] == "model"
    status, _, raw = await call(http, emulator, "/v1/messages", {"max_tokens": 5, "messages": HELLO})
    assert status == 400 and json.loads(raw)["error"] == {"type": "invalid_request_error",
                                                          "message": "model: Field required"}
    status, _, raw = await call(http, emulator, "/v1/messages", {"model": "claude-haiku-4-5", "messages": HELLO})
    assert status == 400 and json.loads(raw)["error"]["message"] == "max_tokens: Field required"


# --- control headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body"), list(AUTO.values()), ids=list(AUTO))
async def test_forced_status_429_and_500(emulator, http, path, body):
    body = {**body, "model": {"/v1/chat/completions": "gpt-4o", "/v1/responses": "gpt-4o",
                              "/v1/messages": "claude-haiku-4-5"}.get(path, "gemini-2.5-flash")}
    if path.startswith("/v1beta"):
        path = "/v1beta/models/gemini-2.5-flash:generateContent"
    status, headers, raw = await call(http, emulator, path, body, headers={"x-emulator-status": "429"})
    err = json.loads(raw)
    assert status == 429 and headers["retry-after"] == "1"
    status500, _, raw500 = await call(http, emulator, path, body, headers={"x-emulator-status": "500"})
    err500 = json.loads(raw500)
    assert status500 == 500
    if path.startswith("/v1/messages"):
        assert err["error"]["type"] == "rate_limit_error" and err500["error"]["type"] == "api_error"
    elif path.startswith("/v1beta"):
        assert err["error"]["status"] == "RESOURCE_EXHAUSTED" and err500["error"]["status"] == "INTERNAL"
        assert err["error"]["code"] == 429
    else:
        assert err["error"]["code"] == "rate_limit_exceeded" and err500["error"]["type"] == "server_error"


async def test_forced_status_applies_even_to_streams_and_bad_bodies(emulator, http):
    status, headers, raw = await call(http, emulator, "/v1/chat/completions", data=b"garbage",
                                      headers={"x-emulator-status": "503"})
    assert status == 503 and headers["Content-Type"].startswith("application/json")
    assert json.loads(raw)["error"]["type"] == "server_error"


async def test_extra_headers_added_as_given(emulator, http):
    headers = [("x-emulator-header", "x-nadir-cost-usd: 999"),
               ("x-emulator-header", "x-nadir-model: spoofed, with comma"),
               ("x-emulator-header", "x-nadir-model: second")]
    async with http.post(emulator.base_url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO},
                         headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers.getall("x-nadir-cost-usd") == ["999"]
        assert resp.headers.getall("x-nadir-model") == ["spoofed, with comma", "second"]
    async with http.post(emulator.base_url + "/v1/messages", json={"model": "claude-haiku-4-5", "max_tokens": 9,
                         "messages": HELLO, "stream": True}, headers=headers[:1]) as resp:
        assert resp.headers["x-nadir-cost-usd"] == "999"


async def test_usage_keys_default_to_zero(emulator, http):
    status, _, raw = await call(http, emulator, "/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO},
                                headers={"x-emulator-usage": '{"output": 3}'})
    usage = json.loads(raw)["usage"]
    assert status == 200 and (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (0, 3, 3)


async def test_malformed_control_header_is_400(emulator, http):
    status, _, raw = await call(http, emulator, "/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO},
                                headers={"x-emulator-usage": '{"inputs": 1}'})
    assert status == 400 and "x-emulator-usage" in json.loads(raw)["error"]["message"]
    status, _, raw = await call(http, emulator, "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 9,
                                "messages": HELLO}, headers={"x-emulator-usage": '{"input": 1, "output": 2, "reasoning": 3}'})
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"


async def test_gzip_json_and_sse(emulator, http):
    async with aiohttp.ClientSession(auto_decompress=False) as raw_http:
        async with raw_http.post(emulator.base_url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO},
                                 headers={"x-emulator-gzip": "1"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            compressed = await resp.read()
            assert int(resp.headers["Content-Length"]) == len(compressed)
        assert json.loads(gzip.decompress(compressed))["model"] == "gpt-4o-2024-08-06"
        async with raw_http.post(emulator.base_url + "/v1/messages", headers={"x-emulator-gzip": "1"}, json={
                "model": "claude-haiku-4-5", "max_tokens": 99, "messages": HELLO, "stream": True}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            compressed = await resp.read()
    text = zlib.decompress(compressed, wbits=31).decode()
    assert text.startswith("event: message_start\n") and text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
    # aiohttp's own client decompresses it transparently
    status, _, plain = await call(http, emulator, "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 99,
                                  "messages": HELLO}, headers={"x-emulator-gzip": "1"})
    assert status == 200 and json.loads(plain)["type"] == "message"


async def test_chunk_delay(emulator, http, shapes):
    body = {"model": "gemini-2.5-flash", **GEMINI_HELLO}
    started = time.monotonic()
    status, _, raw = await call(http, emulator, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                                body, headers={"x-emulator-chunk-delay-ms": "100"})
    elapsed = time.monotonic() - started
    events = shapes.parse_sse(raw)
    # 16 words in chunks of 4 -> at least 3 events -> at least 2 delays of 0.1 s
    assert status == 200 and len(events) >= 3
    assert elapsed >= 0.1 * (len(events) - 1) - 0.01


# --- recording ---------------------------------------------------------------------------------


async def test_recording_exact_bytes_and_clear(emulator, http):
    payload = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"h\xc3\xa9"}]}'
    status, _, _ = await call(http, emulator, "/v1/chat/completions?trace=1", data=payload,
                              headers={"content-type": "application/json", "x-custom": "a"})
    assert status == 200
    binary = b"\xff\xfe\x00"
    await call(http, emulator, "/v1/messages", data=binary)

    [first, second] = emulator.requests
    assert (first.method, first.path, first.query, first.body) == ("POST", "/v1/chat/completions", "trace=1", payload)
    # {"model": 9 + "gpt-4o-mini", 14 + "messages": 11 + [{"role": 9 + "user", 7 + "content": 10
    # + "hé" 5 (é is 2 bytes) + }]} 3 = 68 bytes
    assert first.header("content-length") == str(len(payload)) == "68"
    assert first.header("X-Custom") == "a"

    async with http.get(emulator.base_url + "/__emulator/requests") as resp:
        listed = await resp.json()
    assert len(listed) == 2  # the control endpoint itself is not recorded
    assert listed[0]["body_text"] == payload.decode() and base64.b64decode(listed[0]["body_base64"]) == payload
    assert ["content-length", "68"] in [[k.lower(), v] for k, v in listed[0]["headers"]]
    assert listed[1]["body_text"] is None and base64.b64decode(listed[1]["body_base64"]) == binary
    assert listed[0]["query"] == "trace=1" and listed[0]["method"] == "POST"

    async with http.delete(emulator.base_url + "/__emulator/requests") as resp:
        assert resp.status == 204
    assert emulator.requests == []
    async with http.get(emulator.base_url + "/__emulator/requests") as resp:
        assert await resp.json() == []


async def test_openai_response_headers(emulator, http):
    status, headers, _ = await call(http, emulator, "/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO})
    assert headers["x-request-id"].startswith("req_") and len(headers["x-request-id"]) == 4 + 32
    assert headers["openai-processing-ms"].isdigit() and headers["openai-version"] == "2020-10-01"
    _, headers, _ = await call(http, emulator, "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                                 "messages": HELLO})
    assert headers["request-id"].startswith("req_")
