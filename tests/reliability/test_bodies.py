"""Issue 18, bodies: a cut JSON body is ``cut``; Envoy's own 413 is ``request_too_large`` (not the
provider's error); our own 413 above ``max_request_bytes``; br / zstd decoded for usage within the
decompressed-size cap (counted when hit). Real ProcessingRequest messages, one phase at a time."""

from __future__ import annotations

import gzip
import json

import brotli
import pytest
import zstandard

from nadir_extproc.config import Settings
from nadir_extproc.ledger.schema import from_outcome
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.record import Result
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.server import Context
from nadir_extproc.stats import COUNTS
from tests.test_processor import REQ, body, headers, set_headers

CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 41, "completion_tokens": 11, "total_tokens": 52},
}).encode()
# gpt-4o-mini: 41 * 0.15/1e6 + 11 * 0.60/1e6 = 0.00000615 + 0.0000066 = 0.00001275 USD


def make(**settings):
    done = []
    s = Settings(**settings)
    pol = s.policy()
    c = Context(settings=s, router=RuleRouter(pol), policy=pol, on_complete=done.append)
    return RequestProcessor(c), done


def start(proc, payload=b'{"model":"gpt-4o-mini","messages":[]}', path="/v1/chat/completions"):
    proc.handle(headers("request_headers", {**REQ, ":path": path}))
    return proc.handle(body("request_body", payload))


def test_json_body_reset_mid_way_is_cut_not_ok():
    # The upstream resets after the headers: Envoy ends the gRPC stream before the BUFFERED body.
    proc, done = make()
    start(proc)
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json"}))
    proc.finish()
    (o,) = done
    assert o.result == Result.CUT_STREAM and o.unpriced_reason == "cut" and o.cost is None
    row = from_outcome(o, __import__("datetime").datetime.now(), "r1")
    assert row.status == "cut_stream" and row.cost_usd is None


def test_json_body_that_stops_short_is_cut():
    proc, done = make()
    start(proc)
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json"}))
    h = set_headers(proc.handle(body("response_body", CHAT[: len(CHAT) // 2])).response_body.response)
    assert h["x-nadir-unpriced-reason"] == b"cut" and "x-nadir-cost-usd" not in h
    proc.finish()
    assert done[0].result == Result.CUT_STREAM


def test_whole_json_body_still_ok():
    proc, done = make()
    start(proc)
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json"}))
    h = set_headers(proc.handle(body("response_body", CHAT)).response_body.response)
    assert h["x-nadir-cost-usd"] == b"0.00001275"
    proc.finish()
    assert done[0].result == Result.OK


def test_envoys_own_413_is_request_too_large_not_provider_error():
    # Envoy answered 413 (body over its buffer limit) before the request-body phase ever ran.
    proc, done = make()
    proc.handle(headers("request_headers", REQ))
    r = proc.handle(headers("response_headers", {":status": "413", "content-type": "text/plain"}))
    proc.handle(body("response_body", b"Payload Too Large"))
    proc.finish()
    (o,) = done
    assert o.unpriced_reason == "request_too_large" and o.result == Result.BLOCKED
    assert from_outcome(o, __import__("datetime").datetime.now(), "r").status == "blocked"
    del r


def test_providers_own_413_stays_a_provider_error():
    proc, done = make()
    start(proc)
    proc.handle(headers("response_headers", {":status": "413", "content-type": "application/json"}))
    h = set_headers(proc.handle(body("response_body", b'{"error":{"message":"too big"}}')).response_body.response)
    assert h["x-nadir-unpriced-reason"] == b"provider_error"


@pytest.mark.parametrize("path, shape", [
    ("/v1/chat/completions", lambda d: d["error"]["code"] == "request_too_large"),
    ("/v1/messages", lambda d: d["type"] == "error" and d["error"]["type"] == "request_too_large"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", lambda d: d["error"]["code"] == 413),
])
def test_body_over_max_request_bytes_gets_our_413_in_the_apis_shape(path, shape):
    proc, done = make(max_request_bytes=1024 * 1024)
    big = b'{"model":"auto","messages":[{"role":"user","content":"' + b"x" * (1024 * 1024) + b'"}]}'
    r = start(proc, big, path)
    ir = r.immediate_response
    assert ir.status.code == 413
    assert shape(json.loads(ir.body))
    assert str(len(big)) in json.loads(ir.body).__repr__()
    hdrs = {o.header.key: o.header.raw_value for o in ir.headers.set_headers}
    assert hdrs["x-should-retry"] == b"false" and hdrs["x-nadir-unpriced-reason"] == b"request_too_large"
    proc.finish()
    assert done[0].result == Result.BLOCKED and done[0].unpriced_reason == "request_too_large"


def test_body_at_the_limit_passes():
    payload = b'{"model":"gpt-4o-mini","messages":[]}'
    proc, _ = make(max_request_bytes=len(payload))
    assert not start(proc, payload).HasField("immediate_response")


def test_max_request_bytes_must_fit_the_grpc_limit():
    with pytest.raises(ValueError, match="max_request_bytes"):
        Settings(max_request_bytes=16 * 1024 * 1024, max_message_bytes=16 * 1024 * 1024)
    assert Settings().max_request_bytes == 8 * 1024 * 1024 < Settings().max_message_bytes


@pytest.mark.parametrize("enc, compress", [
    ("gzip", gzip.compress), ("br", brotli.compress), ("zstd", zstandard.ZstdCompressor().compress),
])
def test_compressed_json_is_priced_and_forwarded_unchanged(enc, compress):
    proc, _ = make()
    start(proc)
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json", "content-encoding": enc}))
    cr = proc.handle(body("response_body", compress(CHAT))).response_body.response
    assert set_headers(cr)["x-nadir-cost-usd"] == b"0.00001275"
    assert not cr.HasField("body_mutation")  # the client gets the provider's bytes


@pytest.mark.parametrize("enc, compress", [("br", brotli.compress), ("zstd", zstandard.ZstdCompressor().compress),
                                           ("gzip", gzip.compress)])
def test_decompression_bomb_stops_at_the_cap_and_is_counted(enc, compress):
    # 20 MiB of spaces then the JSON: inflates past max_message_bytes (16 MiB).
    bomb = compress(b" " * (20 * 1024 * 1024) + CHAT)
    before = COUNTS.get("body_inflate_limit", 0)
    proc, _ = make()
    start(proc)
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json", "content-encoding": enc}))
    h = set_headers(proc.handle(body("response_body", bomb)).response_body.response)
    assert h["x-nadir-unpriced-reason"] == b"unsupported_content_encoding" and "x-nadir-cost-usd" not in h
    assert COUNTS.get("body_inflate_limit", 0) == before + 1


def test_br_request_body_is_decoded_and_rewritten():
    proc, _ = make()
    proc.handle(headers("request_headers", {**REQ, "content-encoding": "br"}))
    r = proc.handle(body("request_body", brotli.compress(b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}')))
    cr = r.request_body.response
    assert json.loads(cr.body_mutation.body)["model"] == "gpt-4o-mini"
    assert "content-encoding" in cr.header_mutation.remove_headers
