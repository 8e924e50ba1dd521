"""Request bodies parsed once with their top-level value spans; rewrites of multi-MB bodies.

Shared case 37 (37-large-auto-body-rewrite-exceeds-message-timeout): the top-level ``model``
rewrite used to walk every string token with a backtracking regex (1.4 s for 5.94 MB), past
Envoy's ``message_timeout``, so ``auto`` went upstream. The expected outputs here are built by
hand from the input pieces: only the model value changes, every other byte stays. No timing
assertions (bench/ measures the speed)."""

from __future__ import annotations

import json

import pytest

from nadir_extproc import jsonbody
from nadir_extproc.dialects.base import RewriteError, replace_top_level_string
from nadir_extproc.dialects.openai_chat import OpenAIChat
from nadir_extproc.jsonbody import JsonObject
from nadir_extproc.sse import SSEParser

LOREM = b"lorem ipsum dolor "


def case37_body(repeat: int, model: bytes = b"auto") -> tuple[bytes, bytes]:
    """(body, the part after the model value) in the case's shape: model first, one big message."""
    head = b'{"model": "'
    tail = b'", "messages": [{"role": "user", "content": "' + LOREM * repeat + b'"}]}'
    return head + model + tail, tail


def test_case_37_six_mb_auto_body_only_the_model_changes():
    raw, tail = case37_body(330_000)
    assert len(raw) == 5_940_064  # the case's body size
    out = replace_top_level_string(raw, "model", "gpt-4o-mini")
    assert out == b'{"model": "gpt-4o-mini' + tail
    assert len(out) == len(raw) - len(b"auto") + len(b"gpt-4o-mini")


def test_model_after_a_large_messages_array_of_many_small_strings():
    # The OpenAI SDK sends "messages" before "model": the scan must cross 6 MB of small tokens,
    # escapes, nested "model" keys and brackets inside strings.
    msg = b'{"role":"user","content":"say \\"model\\": \\"auto\\" {[ ]}","metadata":{"model":"auto"}},'
    n = 6_000_000 // len(msg)
    messages = b"[" + msg * (n - 1) + msg[:-1] + b"]"
    raw = b'{"messages":' + messages + b',\n  "model" :  "Auto",\t"stream":false}'
    out = replace_top_level_string(raw, "model", "gpt-4o")
    assert out == b'{"messages":' + messages + b',\n  "model" :  "gpt-4o",\t"stream":false}'
    assert json.loads(out)["messages"][0]["metadata"] == {"model": "auto"}


def test_non_ascii_large_body_byte_offsets():
    text = "héllo ✓ 日本 😀 ".encode()
    raw = b'{"messages":[{"role":"user","content":"' + text * 200_000 + b'"}],"model":"auto","n":1}'
    out = replace_top_level_string(raw, "model", "claude-haiku-4-5")
    assert out == b'{"messages":[{"role":"user","content":"' + text * 200_000 + b'"}],"model":"claude-haiku-4-5","n":1}'


def test_utf8_bom_and_duplicate_keys_and_escaped_key():
    raw = b'\xef\xbb\xbf{"model":"x","\\u006dodel":"auto"}'
    assert replace_top_level_string(raw, "model", "m") == b'\xef\xbb\xbf{"model":"m","\\u006dodel":"m"}'


def test_parse_matches_json_loads_and_its_errors():
    for good in (b'{}', b' {"a" : [1, {"b": null}], "c": NaN } ', b'[1, 2]', b'"x"', b'{"a":1,"a":2}'):
        assert repr(jsonbody.parse(good)) == repr(json.loads(good))  # repr: NaN != NaN
    for bad in (b'', b'{', b'{"a"}', b'{"a":1,}', b'{"a":1} x', b'{"a":}', b'{"a":1 "b":2}', b'\xff{}'):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            jsonbody.parse(bad)
    obj = jsonbody.parse(b'{"a": 1, "b" : "x", "a": [2]}')
    assert isinstance(obj, JsonObject) and obj == {"a": [2], "b": "x"}
    assert obj.byte_spans("a") == [(6, 7, False), (25, 28, False)] and obj.byte_spans("b") == [(15, 18, True)]


def test_rewrite_reuses_the_parse_and_still_rejects_non_strings():
    raw = b'{"model": 5, "messages": []}'
    with pytest.raises(RewriteError):
        replace_top_level_string(raw, "model", "m", jsonbody.parse(raw))
    raw2 = b'{"model":"auto"}'
    assert OpenAIChat().rewrite_model(raw2, jsonbody.parse(raw2), "m") == b'{"model":"m"}'


def test_stream_usage_injection_on_a_large_body_keeps_every_other_byte():
    chat = OpenAIChat()
    raw, _ = case37_body(100_000, b"gpt-4o")
    raw = raw[:-1] + b', "stream": true}\n'
    out = chat.inject_stream_usage(raw, jsonbody.parse(raw))
    assert out == raw[:-2] + b',"stream_options":{"include_usage":true}}'
    # An existing stream_options object: only its value changes (no re-serialisation).
    raw2 = b'{"model": "m", "stream" : true, "stream_options" : {"foo": 1}, "messages": [ ]}'
    out2 = chat.inject_stream_usage(raw2, jsonbody.parse(raw2))
    assert out2 == b'{"model": "m", "stream" : true, "stream_options" : {"foo":1,"include_usage":true}, "messages": [ ]}'


def test_sse_event_split_into_many_small_chunks_is_parsed_whole():
    # One 900 KB event (under the 1 MiB bound) arriving in 1 KB pieces, then a normal event.
    data_line = b'data: {"x":"' + b"y" * 900_000 + b'"}\n\n'
    stream = data_line + b"data: [DONE]\n\n"
    p = SSEParser()
    events = []
    for i in range(0, len(stream), 1024):
        ev, passthrough = p.feed(stream[i : i + 1024])
        assert passthrough == b""
        events += ev
    assert [e.raw for e in events] == [data_line, b"data: [DONE]\n\n"]
    assert events[0].data == '{"x":"' + "y" * 900_000 + '"}' and events[1].data == "[DONE]"
    assert p.pending == b"" and p.overflows == 0


def test_compressed_request_body_is_bounded_when_decoded():
    """A gzip body within Envoy's buffer limit can inflate without bound ("zip bomb": 200 MB of
    zeros in ~200 KB): decoding stops at ``max_message_bytes`` (16 MiB), the request goes on
    untouched (no body mutation) and the event is counted; a normal gzip body is still routed."""
    import gzip
    import zlib

    from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
    from nadir_extproc.httpcodec import decode_body
    from nadir_extproc.processor import RequestProcessor
    from nadir_extproc.stats import COUNTS
    from tests.test_processor import ctx

    data = b'{"model":"auto","messages":[]}'
    assert decode_body(gzip.compress(data) + gzip.compress(b" "), "gzip") == data + b" "  # two members
    co = zlib.compressobj(wbits=-15)
    assert decode_body(co.compress(data) + co.flush(), "deflate") == data  # raw deflate
    assert decode_body(gzip.compress(data)[:-5], "gzip") is None  # truncated
    assert decode_body(gzip.compress(b"x" * 101), "gzip", limit=100) is None
    assert decode_body(gzip.compress(b"x" * 100), "gzip", limit=100) == b"x" * 100

    def run(payload: bytes):
        proc = RequestProcessor(ctx())
        hdrs = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", "content-encoding": "gzip"}
        hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hdrs.items()])
        proc.handle(ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm)))
        return proc.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=payload, end_of_stream=True)))

    before = COUNTS["body_inflate_limit"]
    bomb = gzip.compress(b"{" + b" " * (200 * 1024 * 1024), 9)
    assert len(bomb) < 1024 * 1024
    r = run(bomb)
    assert not r.request_body.response.HasField("body_mutation")
    assert COUNTS["body_inflate_limit"] == before + 1
    # An ordinary gzip body is decoded, routed and sent on uncompressed.
    r = run(gzip.compress(data))
    assert r.request_body.response.body_mutation.body == b'{"model":"gpt-4o-mini","messages":[]}'
    assert "content-encoding" in r.request_body.response.header_mutation.remove_headers
