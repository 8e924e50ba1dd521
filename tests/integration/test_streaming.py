"""Streamed responses through a real Envoy: every recorded .sse stream replayed re-chunked, the
cost delivered in-band as an SSE comment, and the official SDKs' streaming iterators unaffected.

Costs are hand arithmetic: tokens from the recorded stream x list rate (USD / 1M tokens)."""

from __future__ import annotations

import json
import random
import re
import urllib.request

import anthropic
import openai
import pytest

from nadir_extproc.sse import SSEParser
from tests.integration.conftest import clear_upstream, comment_fields, raw_post, replay, upstream_requests

KEY = "sk-test-not-a-real-key"
COMMENT = re.compile(rb"(?:: x-nadir-[a-z-]+=[^\r\n]*\r?\n)+\r?\n")

# id -> (request path, expected in-band fields). Rates: gpt-4o-mini 0.15/0.60, gpt-5-nano 0.05/0.40,
# gpt-5 1.25/10, gpt-4o 2.50/10, claude-sonnet-4-5 and -4-6 3/15.
STREAMS = {
    # 53*0.15 + 15*0.60 = 7.95 + 9 = 16.95 -> 0.00001695
    "15-openai-chat-stream-gpt-4o-mini": ("/v1/chat/completions", {"x-nadir-cost-usd": "0.00001695", "x-nadir-routed-to": "gpt-4o-mini-2024-07-18"}),
    # 12*0.05 + 100*0.40 = 0.6 + 40 = 40.6 -> 0.0000406 (the 100 reasoning tokens are inside the 100 output)
    "03-openai-chat-stream-include-usage": ("/v1/chat/completions", {"x-nadir-cost-usd": "0.0000406"}),
    # 13*1.25 + 11*10 = 16.25 + 110 = 126.25 -> 0.00012625
    "16-openai-chat-stream-gpt-5": ("/v1/chat/completions", {"x-nadir-cost-usd": "0.00012625"}),
    # no usage in the stream (client did not ask; the replay ignores our injection) -> unpriced, never 0
    "04-openai-chat-stream-no-usage": ("/v1/chat/completions", {"x-nadir-unpriced-reason": "no_usage"}),
    # 255*2.50 + 16*10 = 637.5 + 160 = 797.5 -> 0.0007975
    "20-openai-responses-stream-gpt-4o": ("/v1/responses", {"x-nadir-cost-usd": "0.0007975"}),
    # served on "flex" (the stream's response.service_tier): gpt-5 flex 0.625 in / 5 out (half of
    # standard): 53*0.625 + 469*5 = 33.125 + 2345 = 2378.125 -> 0.002378125
    "21-openai-responses-stream-gpt-5-usage": ("/v1/responses", {"x-nadir-cost-usd": "0.002378125"}),
    # 20*3 + 5*15 = 60 + 75 = 135 -> 0.000135
    "30-anthropic-stream-basic": ("/v1/messages", {"x-nadir-cost-usd": "0.000135"}),
    # 1007*3 + 59*15 = 3021 + 885 = 3906 -> 0.003906
    "33-anthropic-stream-tool-search": ("/v1/messages", {"x-nadir-cost-usd": "0.003906"}),
    # an OpenAI-compatible model the OpenAI price list does not have -> unpriced. The client did not
    # ask for usage, so we injected include_usage and its usage-only chunk is removed (see below).
    "47-huggingface-router-stream": ("/v1/chat/completions", {"x-nadir-unpriced-reason": "unknown_model"}),
    # Gemini (no comment block: Google's SDKs break on it; the opt-in field goes inside the last
    # chunk, checked below). usageMetadata is cumulative; the last
    # says prompt 18, candidates 80, thoughts 35 -> output 80 + 35 = 115 (thoughts billed as output).
    # gemini-2.5-flash 0.30 in / 2.50 out: 18*0.30 + 115*2.50 = 5.4 + 287.5 = 292.9 -> 0.0002929
    "38-gemini-stream-usage": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", {"x-nadir-cost-usd": "0.0002929"}),
}
USAGE_CHUNK_REMOVED = {"47-huggingface-router-stream"}
NO_COMMENTS = {"38-gemini-stream-usage"}  # opt-in JSON field only


def _queue_replay(stack, data: bytes, cuts: list[int], delay_ms: int = 2) -> None:
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    replay(stack, chunks, "text/event-stream; charset=utf-8", delay_ms=delay_ms)


def _post_stream(stack, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    status, h, received = raw_post(stack.base_url + path, body, headers, timeout_s=20)
    assert status == 200, (status, received[:500])
    return h, received


def sent_stream_options(stack):
    return json.loads(upstream_requests(stack)[-1]["body"]).get("stream_options")


@pytest.mark.parametrize("rid", sorted(STREAMS))
def test_recorded_stream_replayed_rechunked_through_envoy(stack, provider_responses, rid):
    path, expected = STREAMS[rid]
    data = (provider_responses / f"{rid}.response.sse").read_bytes()
    request = (provider_responses / f"{rid}.request.json").read_bytes()
    rng = random.Random(rid)
    for cuts in ([], sorted(rng.sample(range(1, len(data)), min(25, len(data) - 1)))):
        clear_upstream(stack)
        _queue_replay(stack, data, cuts)
        if rid in NO_COMMENTS:
            headers, received = _post_stream(stack, path, request)
            assert received == data and "x-nadir-cost-usd" not in headers
            _queue_replay(stack, data, cuts)
            _, received = _post_stream(stack, path, request, {"x-nadir-cost-in-body": "1"})
            # Every event but the last byte for byte; the last one gains the field (found by plain
            # splitting, not our parser: the recording frames events with CRLF CRLF).
            head = data[: data.rindex(b"data: ")]
            assert received.startswith(head) and received.endswith(b"\r\n\r\n")
            last = json.loads(received[len(head) + len(b"data: "):-4])
            assert {k: last["nadir"][k[len("x-nadir-"):].replace("-", "_")] for k in expected} == expected
            continue
        headers, received = _post_stream(stack, path, request)
        blocks = COMMENT.findall(received)
        assert len(blocks) == 1, received[-600:]
        fields = comment_fields(blocks[0])
        for k, v in expected.items():
            assert fields.get(k) == v, (k, fields)
        if "x-nadir-cost-usd" not in expected:
            assert "x-nadir-cost-usd" not in fields  # unpriced is never 0
        # Every original byte reaches the client, in order; only our comment block was added (and,
        # where we injected include_usage, the usage-only chunk removed).
        want = data
        if rid in USAGE_CHUNK_REMOVED:
            # Found by plain splitting (not our parser): the recording uses "\n\n" between events.
            usage_event = next(ev + b"\n\n" for ev in data.split(b"\n\n") if b'"choices":[]' in ev)
            want = data.replace(usage_event, b"", 1)
            assert sent_stream_options(stack) == {"include_usage": True}
        assert received.replace(blocks[0], b"", 1) == want
        # The comment sits right before the terminal event (or at the end for terminal-less streams).
        after = received[received.index(blocks[0]) + len(blocks[0]):]
        first = SSEParser().feed(after)[0]
        if first:
            assert first[0].data == "[DONE]" or first[0].event in ("response.completed", "message_stop")
        assert "x-nadir-cost-usd" not in headers  # headers left before the usage was known


def test_openai_sdk_stream_without_usage_request_is_unaffected(stack):
    """06-stream-options-include-usage-injection through Envoy: what the client sees is unchanged."""
    clear_upstream(stack)
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="auto", stream=True, messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 1000, "output": 500})},
    )
    chunks = list(stream)
    # We injected include_usage upstream and removed the usage-only chunk: every chunk the client
    # sees has choices[0], and none carries usage (exactly as without the sidecar).
    assert chunks and all(len(c.choices) == 1 for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("You asked")
    sent = json.loads(upstream_requests(stack)[-1]["body"])
    assert sent["stream_options"] == {"include_usage": True} and sent["model"] == "gpt-4o-mini"


def test_openai_sdk_stream_with_usage_keeps_the_usage_chunk_and_gets_cost_in_band(stack):
    # gpt-4o-mini 1000 in / 500 out: 1000*0.15 + 500*0.60 = 150 + 300 = 450 -> 0.00045
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="auto", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 1000, "output": 500})},
    ) as resp:
        raw = b"".join(resp.iter_bytes())
    assert comment_fields(COMMENT.findall(raw)[0])["x-nadir-cost-usd"] == "0.00045"
    stream_chunks = [json.loads(e.data) for e in SSEParser().feed(raw)[0] if e.has_data and e.data != "[DONE]"]
    assert stream_chunks[-1]["choices"] == [] and stream_chunks[-1]["usage"]["prompt_tokens"] == 1000


def test_anthropic_sdk_stream_is_unaffected_and_priced(stack):
    # claude-haiku-4-5 (weak tier) 200 in / 100 out: 200*1 + 100*5 = 700 -> 0.0007
    client = anthropic.Anthropic(base_url=stack.base_url, api_key=KEY, max_retries=0)
    with client.messages.stream(
        model="auto", max_tokens=100, messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 200, "output": 100})},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("You asked") and final.usage.output_tokens == 100
    assert final.model == "claude-haiku-4-5-20251001"
    with client.messages.with_streaming_response.create(
        model="auto", max_tokens=100, stream=True, messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 200, "output": 100})},
    ) as resp:
        assert resp.headers["x-nadir-routed-to"] == "claude-haiku-4-5"
        raw = b"".join(resp.iter_bytes())
    assert comment_fields(COMMENT.findall(raw)[0])["x-nadir-cost-usd"] == "0.0007"


def test_responses_sdk_stream_events_unaffected(stack):
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    events = list(client.responses.create(model="auto", stream=True, input="Say hi",
                                          extra_headers={"x-emulator-usage": json.dumps({"input": 10, "output": 5})}))
    assert events[-1].type == "response.completed" and events[-1].response.usage.input_tokens == 10


def test_opt_in_cost_field_in_the_final_usage_event(stack):
    # claude-haiku-4-5 300 in / 40 out: 300*1 + 40*5 = 500 -> 0.0005; baseline sonnet 300*3 + 40*15 = 1500 -> saved 0.001
    client = anthropic.Anthropic(base_url=stack.base_url, api_key=KEY, max_retries=0)
    with client.messages.with_streaming_response.create(
        model="auto", max_tokens=40, stream=True, messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 300, "output": 40}), "x-nadir-cost-in-body": "1"},
    ) as resp:
        raw = b"".join(resp.iter_bytes())
    delta = next(json.loads(e.data) for e in SSEParser().feed(raw)[0] if e.event == "message_delta")
    assert delta["nadir"]["cost_usd"] == "0.0005" and delta["nadir"]["cost_saved"] == "0.001"
    assert delta["usage"]["output_tokens"] == 40  # the provider's own fields untouched
    # The SDK's typed iterator still parses the stream.
    with client.messages.stream(
        model="auto", max_tokens=40, messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 300, "output": 40}), "x-nadir-cost-in-body": "1"},
    ) as stream:
        assert stream.get_final_message().usage.input_tokens == 300


def test_error_event_after_200_ends_the_stream_unpriced(stack):
    # Anthropic can send `event: error` after HTTP 200 (e.g. overloaded_error). The client gets
    # every byte; the stream is not a complete response, so nothing presents a price for it
    # (issue 12): unpriced stream_error. What message_start reported (claude-haiku-4-5, 31 in /
    # 1 out -> 31*1 + 1*5 = 36 millionths) is recorded apart as the partial cost (span/outcome).
    data = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_x","type":"message",'
        b'"role":"assistant","model":"claude-haiku-4-5-20251001","content":[],"stop_reason":null,'
        b'"stop_sequence":null,"usage":{"input_tokens":31,"output_tokens":1}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    _queue_replay(stack, data, [len(data) // 2])
    headers, received = _post_stream(
        stack, "/v1/messages", b'{"model":"claude-haiku-4-5","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
    )
    block = COMMENT.findall(received)[0]
    assert received.replace(block, b"", 1) == data
    fields = comment_fields(block)
    assert fields["x-nadir-unpriced-reason"] == "stream_error" and "x-nadir-cost-usd" not in fields
    # With nothing reported before the error, the stream is unpriced (provider_error), never 0.
    err_only = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    _queue_replay(stack, err_only, [])
    _, received = _post_stream(
        stack, "/v1/messages", b'{"model":"claude-haiku-4-5","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
    )
    fields = comment_fields(COMMENT.findall(received)[0])
    assert fields["x-nadir-unpriced-reason"] == "provider_error" and "x-nadir-cost-usd" not in fields


def test_opt_in_cost_field_on_a_chat_stream_that_did_not_ask_for_usage(stack):
    # Issue 13: the client did not ask for usage, so it must never see the usage-only chunk
    # (choices: []) we asked for, even with the opt-in header: the most common streaming loop
    # reads chunk.choices[0].delta.content on every chunk. The "nadir" object rides on the last
    # chunk it expects anyway (the one with finish_reason).
    # gpt-4o-mini 100 in / 50 out: 100*0.15 + 50*0.60 = 15 + 30 = 45 -> 0.000045
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"x-emulator-usage": json.dumps({"input": 100, "output": 50}), "x-nadir-cost-in-body": "1"},
    )
    chunks, text = [], ""
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""  # IndexError on a choices: [] chunk
        chunks.append(chunk)
    assert text == 'You asked: "Say hi". This is a canned reply from the emulator.'
    assert sent_stream_options(stack) == {"include_usage": True}  # we did ask upstream
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["nadir"]["cost_usd"] == "0.000045"
    assert [c for c in chunks if "nadir" in (c.model_extra or {})] == [last]


def test_opt_in_cost_field_stays_on_the_usage_chunk_the_client_asked_for(stack):
    # The client asked for include_usage itself: its usage chunk is kept and carries "nadir".
    # gpt-4o-mini 100 in / 50 out -> 0.000045 (as above)
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Say hi"}],
        stream_options={"include_usage": True},
        extra_headers={"x-emulator-usage": json.dumps({"input": 100, "output": 50}), "x-nadir-cost-in-body": "1"},
    ))
    last = chunks[-1]
    assert last.choices == [] and last.usage.prompt_tokens == 100
    assert last.model_extra["nadir"]["cost_usd"] == "0.000045"
    assert [c for c in chunks if "nadir" in (c.model_extra or {})] == [last]


GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
GEMINI_BODY = b'{"contents":[{"role":"user","parts":[{"text":"Say hi"}]}]}'


def _google_sdk_framing(raw: bytes) -> list[dict]:
    """The chunks as Google's Python SDK reads an SSE stream, failing where it fails: each event
    must be exactly one ``data: `` line followed by a blank line (google-genai 3.6.1
    ``_iter_response_stream`` takes every non-``data: `` line as part of a JSON error body and
    raises ``UnknownApiResponseError``)."""
    rx = re.compile(rb"data: (.*?)(?:\r\n\r\n|\n\n|\r\r)", re.S)
    out, pos = [], 0
    while pos < len(raw):
        m = rx.match(raw, pos)
        assert m is not None, f"not a data: event at byte {pos}: {raw[pos:pos + 120]!r}"
        out.append(json.loads(m.group(1)))
        pos = m.end()
    return out


def test_gemini_stream_carries_nothing_but_data_events(stack):
    # Issue 13: an SSE comment block in a Gemini stream breaks Google's SDKs (Python and Node).
    # Without the opt-in, the stream is exactly what the provider sent: no in-band field at all.
    headers, raw = _post_stream(stack, GEMINI_STREAM, GEMINI_BODY)
    assert headers["x-nadir-routed-to"] == "gemini-2.5-flash"
    chunks = _google_sdk_framing(raw)
    assert len(chunks) >= 2 and not any("nadir" in c for c in chunks)
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == 'You asked: "Say hi". This is a canned reply from the emulator.'


def test_gemini_opt_in_cost_field_inside_the_last_chunk(stack):
    # gemini-2.5-flash 0.30 in / 2.50 out, 100 in / 50 out: 30 + 125 = 155 -> 0.000155
    req = urllib.request.Request(
        stack.base_url + GEMINI_STREAM, data=GEMINI_BODY, method="POST",
        headers={"content-type": "application/json", "x-nadir-cost-in-body": "1",
                 "x-emulator-usage": json.dumps({"input": 100, "output": 50})})
    with urllib.request.urlopen(req, timeout=20) as r:
        raw = r.read()
    chunks = _google_sdk_framing(raw)
    assert [("nadir" in c) for c in chunks] == [False] * (len(chunks) - 1) + [True]
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "STOP" and last["usageMetadata"]["promptTokenCount"] == 100
    assert last["nadir"]["cost_usd"] == "0.000155" and last["nadir"]["routed_to"] == "gemini-2.5-flash"
