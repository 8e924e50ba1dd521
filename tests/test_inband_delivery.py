"""What each dialect's stream carries in-band (``nadir_extproc.inband``), phase by phase with real
ProcessingRequest messages: the opt-in ``nadir`` object on the last Chat finish chunk when the
usage chunk is ours to drop (split across gRPC chunks, several choices, no usage at all), and
Gemini streams left byte for byte as the provider sent them.

Rates (USD / 1M tokens): gpt-4o-mini 0.15 in / 0.60 out.
"""

from __future__ import annotations

import json

from nadir_extproc.pb import external_processor_pb2 as ep
from nadir_extproc.processor import RequestProcessor
from tests.test_processor import body, ctx, headers

CHAT = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json",
        "x-nadir-cost-in-body": "1"}
SSE = {":status": "200", "content-type": "text/event-stream"}


def _chunk(choices, usage=None) -> bytes:
    obj = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18", "choices": choices}
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _delta(i, text):
    return {"index": i, "delta": {"content": text}, "finish_reason": None}


def _finish(i):
    return {"index": i, "delta": {}, "finish_reason": "stop"}


def _sent(r: ep.ProcessingResponse, chunk: bytes) -> bytes:
    """What the client receives for ``chunk``: the mutated body, or the chunk itself."""
    c = r.response_body.response
    return c.body_mutation.body if c.HasField("body_mutation") else chunk


def _start_chat(extra: dict | None = None) -> RequestProcessor:
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", {**CHAT, **(extra or {})}))
    r = proc.handle(body("request_body", b'{"model":"gpt-4o-mini","stream":true,"n":2,"messages":[{"role":"user","content":"hi"}]}'))
    assert b'"stream_options":{"include_usage":true}' in r.request_body.response.body_mutation.body  # we asked
    proc.handle(headers("response_headers", SSE))
    return proc


def _events(raw: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in raw.split(b"\n\n") if e]


def test_nadir_rides_on_the_last_finish_chunk_across_grpc_chunks_and_choices():
    proc = _start_chat()
    a = _chunk([_delta(0, "Hi"), _delta(1, "Yo")]) + _chunk([_finish(0)])
    got_a = _sent(proc.handle(body("response_body", a, eos=False)), a)
    # The finish chunk may be the last one the client expects: held until we know.
    assert got_a == _chunk([_delta(0, "Hi"), _delta(1, "Yo")])
    b = (_chunk([_finish(1)]) + _chunk([], {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150})
         + b"data: [DONE]\n\n")
    got_b = _sent(proc.handle(body("response_body", b, eos=True)), b)
    ev = _events(got_b)
    # Choice 0's finish chunk was not the last: unchanged. Choice 1's carries the cost; the usage
    # chunk (choices: []) the client did not ask for is gone; the comment block, then [DONE].
    assert ev[0] == _chunk([_finish(0)])
    last = json.loads(ev[1][len(b"data: "):])
    assert last["choices"] == [_finish(1)]
    # 100 * 0.15 + 50 * 0.60 = 15 + 30 = 45 -> 0.000045
    assert last["nadir"]["cost_usd"] == "0.000045" and last["nadir"]["routed_to"] == "gpt-4o-mini-2024-07-18"
    assert ev[2].startswith(b": x-nadir-") and b"x-nadir-cost-usd=0.000045" in ev[2]
    assert ev[3:] == [b"data: [DONE]\n\n"] and b'"choices":[]' not in got_a + got_b


def test_without_the_opt_in_the_finish_chunk_is_not_held():
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", {k: v for k, v in CHAT.items() if k != "x-nadir-cost-in-body"}))
    proc.handle(body("request_body", b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'))
    proc.handle(headers("response_headers", SSE))
    a = _chunk([_delta(0, "Hi")]) + _chunk([_finish(0)])
    r = proc.handle(body("response_body", a, eos=False))
    assert r.response_body.response == ep.CommonResponse()  # forwarded as is


def test_held_finish_chunk_gets_the_unpriced_reason_when_no_usage_comes():
    proc = _start_chat()
    a = _chunk([_delta(0, "Hi")]) + _chunk([_finish(0)]) + b"data: [DONE]\n\n"
    ev = _events(_sent(proc.handle(body("response_body", a, eos=True)), a))
    last = json.loads(ev[1][len(b"data: "):])
    assert last["nadir"]["unpriced_reason"] == "no_usage" and "cost_usd" not in last["nadir"]
    assert ev[-1] == b"data: [DONE]\n\n"


def test_gemini_stream_is_forwarded_byte_for_byte_without_the_opt_in():
    proc = RequestProcessor(ctx())
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    proc.handle(headers("request_headers", {":method": "POST", ":path": path, "content-type": "application/json"}))
    proc.handle(body("request_body", b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'))
    proc.handle(headers("response_headers", SSE))
    last = (b'data: {"candidates":[{"content":{"parts":[{"text":"!"}],"role":"model"},"finishReason":"STOP","index":0}],'
            b'"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2,"totalTokenCount":12},'
            b'"modelVersion":"gemini-2.5-flash"}\r\n\r\n')
    r = proc.handle(body("response_body", last, eos=True))
    assert r.response_body.response == ep.CommonResponse()  # no comment block, nothing rewritten
