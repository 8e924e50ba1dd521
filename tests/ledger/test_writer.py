"""The background writer: a full queue drops rows with a count and never blocks; flush/close write
everything queued; a request's tags and key id reach the ledger exactly, the raw key never does."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

from nadir_extproc.config import Settings
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.ledger.store import open_store
from nadir_extproc.ledger.writer import LedgerWriter
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.server import Context
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.stats import COUNTS
from nadir_extproc.tags import KeyIdentity

MARKER = "sk-MARKER-ledger-0c4f1e"


def lr(n: int) -> LedgerRow:
    return LedgerRow(ts=datetime(2026, 3, 2, tzinfo=timezone.utc), request_id=f"r{n}", cost_usd=D("0.001"))


def test_full_queue_drops_with_a_count_then_the_rest_is_written(tmp_path):
    store = open_store(sqlite_dir=tmp_path)
    w = LedgerWriter(store, queue_size=3, batch_size=100, flush_interval_s=3600, start=False)
    before = COUNTS["ledger_row_dropped"]
    accepted = [w.submit(lr(i)) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert (w.submitted, w.dropped) == (3, 2)
    assert COUNTS["ledger_row_dropped"] == before + 2
    assert w.close(30)
    assert [r.request_id for r in open_store(sqlite_dir=tmp_path).rows()] == ["r0", "r1", "r2"]
    assert w.submit(lr(9)) is False and w.dropped == 3  # closed: dropped, counted


def test_submit_never_blocks_while_the_store_is_stuck(tmp_path):
    store = open_store(sqlite_dir=tmp_path)
    blocker = sqlite3.connect(tmp_path / "ledger.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer's insert now waits on the lock
    w = LedgerWriter(store, queue_size=2, batch_size=1, flush_interval_s=3600)
    results = [w.submit(lr(i)) for i in range(50)]  # would hang here if submit waited
    ok = sum(results)
    # at most 2 queued + 1 taken by the (stuck) writer thread
    assert ok <= 3 and w.dropped == 50 - ok and w.dropped >= 47
    blocker.execute("ROLLBACK")
    blocker.close()
    assert w.close(30)
    assert len(list(open_store(sqlite_dir=tmp_path).rows())) == ok == w.written


def test_batches_by_size_without_flush(tmp_path):
    store = open_store(sqlite_dir=tmp_path)
    w = LedgerWriter(store, queue_size=100, batch_size=4, flush_interval_s=3600)
    for i in range(4):
        w.submit(lr(i))
    assert w.flush(30)
    assert w.written == 4
    w.close(30)


def _headers(field: str, h: dict[str, str], eos: bool = False) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in h.items()])
    return ep.ProcessingRequest(**{field: ep.HttpHeaders(headers=hm, end_of_stream=eos)})


def _body(field: str, data: bytes) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{field: ep.HttpBody(body=data, end_of_stream=True)})


def test_request_tags_and_key_id_reach_the_ledger_exactly_and_the_key_never_does(tmp_path):
    secret = b"per-installation-secret"
    s = Settings(tags={"allow": ["cost-center"]})
    pol = s.policy()
    store = open_store(sqlite_dir=tmp_path)
    w = LedgerWriter(store, flush_interval_s=3600)
    c = Context(settings=s, router=RuleRouter(pol), policy=pol, identity=KeyIdentity(secret, 16), on_complete=w.submit)

    proc = RequestProcessor(c)
    proc.handle(_headers("request_headers", {
        ":method": "POST", ":path": "/v1/chat/completions", "authorization": f"Bearer {MARKER}",
        "x-request-id": "req-abc", "x-nadir-team": "growth", "x-nadir-feature": "search",
        "x-nadir-env": "prod", "x-nadir-tag-cost-center": "cc-7",
    }))
    proc.handle(_body("request_body", json.dumps({"model": "auto", "user": "end-user-1", "messages": [{"role": "user", "content": "hi"}]}).encode()))
    proc.handle(_headers("response_headers", {":status": "200", "content-type": "application/json"}))
    # gpt-4o-mini 0.15 / 0.60 per 1M: 1000 x 0.15e-6 + 500 x 0.60e-6 = 0.00045; baseline gpt-4o 2.50 / 10.00 -> 0.0075
    proc.handle(_body("response_body", json.dumps({"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}).encode()))
    proc.finish()

    proc = RequestProcessor(c)  # Anthropic: the user comes from metadata.user_id; provider error
    proc.handle(_headers("request_headers", {":method": "POST", ":path": "/v1/messages", "x-api-key": MARKER, "x-nadir-team": "growth"}))
    proc.handle(_body("request_body", json.dumps({"model": "claude-haiku-4-5", "max_tokens": 5, "metadata": {"user_id": "u-9"}, "messages": []}).encode()))
    proc.handle(_headers("response_headers", {":status": "529", "content-type": "application/json"}))
    proc.handle(_body("response_body", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'))
    proc.finish()
    assert w.close(30)

    rows = list(open_store(sqlite_dir=tmp_path).rows())
    kid = hmac.new(secret, MARKER.encode(), hashlib.sha256).hexdigest()[:16]
    a, b = rows
    assert a.tags == {"team": "growth", "feature": "search", "env": "prod", "cost-center": "cc-7", "user": "end-user-1"}
    assert (a.key_id, a.request_id, a.status, a.http_status) == (kid, "req-abc", "ok", 200)
    assert (a.dialect, a.provider, a.requested_model, a.served_model, a.tier) == ("openai_chat", "openai", "auto", "gpt-4o-mini-2024-07-18", "weak")
    assert (a.uncached_input_tokens, a.output_tokens) == (1000, 500)
    assert (a.cost_usd, a.baseline_usd, a.saved_usd, a.unpriced_reason) == (D("0.00045"), D("0.0075"), D("0.00705"), None)
    assert b.tags == {"team": "growth", "user": "u-9"}
    assert (b.key_id, b.status, b.http_status, b.cost_usd, b.unpriced_reason) == (kid, "provider_error", 529, None, "provider_error")
    assert b.request_id and b.request_id != "req-abc"  # no x-request-id: a generated one

    for f in Path(tmp_path).rglob("*"):
        if f.is_file():
            assert MARKER.encode() not in f.read_bytes(), f
