"""Compressed SSE response streams through the real Envoy (issue 18): recorded OpenAI and
Anthropic streams replayed gzip / deflate / br / zstd compressed, in pieces, are priced (the ledger
row's cost against hand arithmetic: tokens x list rate) and reach the client byte for byte; a
gzip bomb stops decoding and leaves the request unpriced, never $0. Unit tests of the decoder:
``tests/reliability/test_compressed_streams.py``."""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
import urllib.request
from decimal import Decimal
from pathlib import Path

from nadir_extproc.stack import Stack
from tests.reliability.test_compressed_streams import COMPRESS, _sync_flushed_gzip

CONFIG = "ledger:\n  flush_interval_s: 3600\n  batch_size: 10000\n"
#: rid -> (path, hand cost). gpt-4o-mini 0.15 / 0.60 per 1M: 53 x 0.15 + 15 x 0.60 = 16.95 -> 0.00001695;
#: claude-sonnet-4-5 3 / 15: 20 x 3 + 5 x 15 = 135 -> 0.000135.
STREAMS = {
    "15-openai-chat-stream-gpt-4o-mini": ("/v1/chat/completions", Decimal("0.00001695")),
    "30-anthropic-stream-basic": ("/v1/messages", Decimal("0.000135")),
}
ENCODINGS = ["gzip", "deflate", "br", "zstd"]


def _replay(stack: Stack, body: bytes, encoding: str, pieces: int = 9) -> None:
    step = max(1, len(body) // pieces)
    chunks = [body[i:i + step] for i in range(0, len(body), step)]
    spec = {"status": 200, "headers": {"content-type": "text/event-stream; charset=utf-8", "content-encoding": encoding},
            "chunks_base64": [base64.b64encode(c).decode() for c in chunks], "delay_ms": 2}
    req = urllib.request.Request(f"{stack.emulator_url}/__emulator/replay", data=json.dumps(spec).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).close()


def _post(stack: Stack, path: str, body: bytes, feature: str) -> tuple[dict[str, str], bytes]:
    req = urllib.request.Request(stack.base_url + path, data=body, method="POST", headers={
        "content-type": "application/json", "accept-encoding": "gzip, deflate, br, zstd", "x-nadir-feature": feature})
    with urllib.request.urlopen(req, timeout=30) as r:  # urllib does not decode: the bytes as sent
        return {k.lower(): v for k, v in r.headers.items()}, r.read()


def test_compressed_streams_are_priced_and_forwarded_byte_for_byte(tmp_path, provider_responses):
    (tmp_path / "settings.yaml").write_text(CONFIG)
    state = tmp_path / "state"
    sent: dict[str, tuple[Decimal | None, str | None]] = {}
    with Stack(extproc_env={"NADIR_CONFIG": str(tmp_path / "settings.yaml"), "NADIR_STATE_DIR": str(state),
                            "NADIR_ROUTER": "rules"}) as stack:
        for rid, (path, cost) in STREAMS.items():
            data = (provider_responses / f"{rid}.response.sse").read_bytes()
            request = (provider_responses / f"{rid}.request.json").read_bytes()
            for enc in ENCODINGS:
                body = COMPRESS[enc](data)
                _replay(stack, body, enc)
                headers, received = _post(stack, path, request, f"{rid[:2]}-{enc}")
                assert headers.get("content-encoding") == enc
                assert received == body  # untouched: no in-band block in a compressed stream
                sent[f"{rid[:2]}-{enc}"] = (cost, None)
        # A sync-flushed gzip stream (one member, a flush per event), as streaming servers send it.
        data = (provider_responses / "15-openai-chat-stream-gpt-4o-mini.response.sse").read_bytes()
        events = [e + b"\n\n" for e in data.split(b"\n\n") if e]
        assert b"".join(events) == data
        body = _sync_flushed_gzip(events)
        _replay(stack, body, "gzip", pieces=len(events))
        _, received = _post(stack, "/v1/chat/completions",
                            (provider_responses / "15-openai-chat-stream-gpt-4o-mini.request.json").read_bytes(), "15-gzip-flushed")
        assert received == body
        sent["15-gzip-flushed"] = (Decimal("0.00001695"), None)
        # A bomb: the events, then 40 MiB of 60 kB events of one repeated byte (~45 kB of gzip, ~900:1):
        # decoding stops past the 16 MiB cap at over 100:1, the stream passes untouched, the
        # request is unpriced (never $0; the usage event is never reached).
        bomb = gzip.compress((b"data: " + b"x" * 60000 + b"\n\n") * 700 + data)
        _replay(stack, bomb, "gzip", pieces=4)
        _, received = _post(stack, "/v1/chat/completions",
                            (provider_responses / "15-openai-chat-stream-gpt-4o-mini.request.json").read_bytes(), "15-bomb")
        assert received == bomb
        sent["15-bomb"] = (None, "unsupported_content_encoding")
        assert stack.stop_process("extproc") == 0  # SIGTERM: the ledger writer flushes
    rows = _ledger(state)
    got = {r["tag_feature"]: (Decimal(r["cost_usd"]) if r["cost_usd"] is not None else None, r["unpriced_reason"]) for r in rows}
    assert got == sent


def _ledger(state: Path) -> list[dict]:
    c = sqlite3.connect(state / "ledger" / "ledger.sqlite3")
    c.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in c.execute("SELECT * FROM nadir_requests ORDER BY ts")]
    finally:
        c.close()
