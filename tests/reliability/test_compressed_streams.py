"""Compressed SSE response streams (gzip, deflate, br, zstd) are decoded incrementally for usage
and priced, while the client gets the compressed bytes exactly as the upstream sent them; a
decompression bomb stops decoding at the cap (counted) and leaves the stream unpriced, never $0.

Here: ``httpcodec.StreamDecoder`` under every chunking, and a compressed non-SSE stream at the
processor. Through the real Envoy: ``tests/integration/test_compressed_streams.py``."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from decimal import Decimal

import brotli
import pytest
import zstandard

from nadir_extproc.httpcodec import StreamDecoder


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _sync_flushed_gzip(events: list[bytes]) -> bytes:
    """gzip the way a streaming server does: one member, sync-flushed after every event."""
    c = zlib.compressobj(wbits=31)
    return b"".join(c.compress(e) + c.flush(zlib.Z_SYNC_FLUSH) for e in events) + c.flush()


COMPRESS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped (RFC 1950), what the token means
    "deflate-raw": _deflate_raw,  # raw (RFC 1951), what some servers send for "deflate"
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}
DATA = b"".join(b"data: {\"i\": %d, \"pad\": \"%s\"}\n\n" % (i, b"x" * (i % 50)) for i in range(400))


@pytest.mark.parametrize("name", sorted(COMPRESS))
@pytest.mark.parametrize("step", [1, 7, 4096, 10**9])
def test_stream_decoder_decodes_any_chunking(name, step):
    body = COMPRESS[name](DATA)
    d = StreamDecoder(name.split("-")[0])
    out = b"".join(d.feed(body[i:i + step]) for i in range(0, len(body), step))
    assert out == DATA and not d.failed


def test_stream_decoder_multi_member_gzip_and_multi_frame_zstd_and_sync_flush():
    d = StreamDecoder("gzip")
    assert d.feed(gzip.compress(b"a" * 10) + gzip.compress(b"b" * 5)) == b"a" * 10 + b"b" * 5
    z = zstandard.ZstdCompressor()
    d = StreamDecoder("zstd")
    assert d.feed(z.compress(b"one ") + z.compress(b"two")) == b"one two"
    # Sync-flushed gzip: each event is decodable as soon as its bytes arrive.
    events = [b"data: {\"n\": %d}\n\n" % i for i in range(5)]
    body = _sync_flushed_gzip(events)
    d = StreamDecoder("gzip")
    c = zlib.compressobj(wbits=31)
    first = c.compress(events[0]) + c.flush(zlib.Z_SYNC_FLUSH)
    assert d.feed(body[:len(first)]) == events[0]
    assert d.feed(body[len(first):]) == b"".join(events[1:])


@pytest.mark.parametrize("name", ["gzip", "deflate", "br", "zstd"])
def test_stream_decoder_stops_a_bomb_and_corrupt_input(name):
    bomb = COMPRESS[name](b"\0" * (3 * 1024 * 1024))
    d = StreamDecoder(name, limit=1024 * 1024)
    assert d.feed(bomb) is None and d.failed and d.feed(b"more") is None  # in one chunk
    d = StreamDecoder(name, limit=1024 * 1024)  # in small chunks, each under the limit
    got = [d.feed(bomb[i:i + 64]) for i in range(0, len(bomb), 64)]
    assert None in got and d.failed and sum(len(x) for x in got if x) <= 1024 * 1024 + 3 * 1024 * 1024 // 2
    # A legitimate stream past the limit (in total, not per chunk) at a normal ratio is read to its end.
    # (limit above zstd's 128 KiB block: a block's output comes out whole)
    rng = random.Random(name)
    data = b"".join(b'data: {"i": %d, "r": "%s"}\n\n' % (i, rng.randbytes(12).hex().encode()) for i in range(8000))
    d = StreamDecoder(name, limit=160 * 1024)
    body = COMPRESS[name](data)
    assert len(data) > 2 * 160 * 1024 and len(data) < 100 * len(body)
    assert b"".join(d.feed(body[i:i + 64]) for i in range(0, len(body), 64)) == data
    body = COMPRESS[name](DATA)
    d = StreamDecoder(name)
    assert d.feed(body[:5] + b"\xff" * 64 + body[69:]) is None and d.failed


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd"])
def test_compressed_non_sse_stream_is_kept_compressed_and_priced_at_its_end(enc):
    """Gemini's streamGenerateContent without ``alt=sse`` is one JSON array, streamed: a compressed
    one is kept as it came (bounded) and decoded at the end; the chunks go out untouched. Last
    usage: prompt 5, candidates 7; gemini-2.5-flash 0.30 in / 2.50 out per 1M: 5 x 0.30 + 7 x 2.50
    = 1.5 + 17.5 = 19 -> 0.000019 USD."""
    from tests.test_processor import body, ctx, headers

    from nadir_extproc.processor import RequestProcessor

    seen: list = []
    proc = RequestProcessor(ctx(on_complete=seen.append))
    proc.handle(headers("request_headers", {":method": "POST", "content-type": "application/json",
                                            ":path": "/v1beta/models/gemini-2.5-flash:streamGenerateContent"}))
    proc.handle(body("request_body", b'{"contents":[{"parts":[{"text":"hi"}]}]}'))
    array = json.dumps([
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "modelVersion": "gemini-2.5-flash",
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1}},
        {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}], "modelVersion": "gemini-2.5-flash",
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}},
    ]).encode()
    data = COMPRESS[enc](array)
    r = proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json", "content-encoding": enc}))
    assert r.HasField("mode_override")  # streamed
    cut = len(data) // 2
    for part, eos in ((data[:cut], False), (data[cut:], True)):
        r = proc.handle(body("response_body", part, eos=eos))
        assert not r.response_body.response.HasField("body_mutation")  # forwarded untouched
    proc.finish()
    (o,) = seen
    assert o.cost is not None and o.cost.total_usd == Decimal("0.000019") and o.unpriced is None
