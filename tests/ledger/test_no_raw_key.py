"""A marker API key, sent in every place a key can travel, appears in no ledger row, span,
metric or log line — only its key id does."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from nadir_extproc.config import Settings
from nadir_extproc.ledger.store import open_store
from nadir_extproc.ledger.writer import LedgerWriter
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.server import Context
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.tags import KeyIdentity
from nadir_extproc.telemetry.providers import Telemetry

MARKER = "sk-MARKER-3e9b-no-row-span-metric-or-log"
SECRET = b"installation-secret"


def _h(field: str, h: dict[str, str]) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in h.items()])
    return ep.ProcessingRequest(**{field: ep.HttpHeaders(headers=hm, end_of_stream=False)})


def _b(field: str, data: bytes) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{field: ep.HttpBody(body=data, end_of_stream=True)})


def test_marker_key_is_in_no_row_span_metric_or_log(tmp_path, caplog):
    s = Settings(budgets=[{"name": "k", "scope": "key_id", "window": "1h", "limit_usd": "1", "action": "alert"}])
    pol = s.policy()
    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    tel = Telemetry(s.telemetry, span_exporter=spans, metric_readers=[metrics])
    writer = LedgerWriter(open_store(sqlite_dir=tmp_path), flush_interval_s=3600)
    from nadir_extproc.budgets import Budgets

    c = Context(settings=s, router=RuleRouter(pol), policy=pol, identity=KeyIdentity(SECRET), budgets=Budgets(s.budgets))
    c.add_on_complete(tel.record)
    c.add_on_complete(writer.submit)
    places = [
        {"authorization": f"Bearer {MARKER}"},
        {"x-api-key": MARKER},
        {"x-goog-api-key": MARKER},
    ]
    resp = json.dumps({"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
    with caplog.at_level(logging.DEBUG):
        for extra in places:
            proc = RequestProcessor(c)
            proc.handle(_h("request_headers", {":method": "POST", ":path": "/v1/chat/completions", **extra}))
            proc.handle(_b("request_body", b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'))
            proc.handle(_h("response_headers", {":status": "200", "content-type": "application/json"}))
            proc.handle(_b("response_body", resp))
            proc.finish()
        proc = RequestProcessor(c)  # key in the query string, and a response that is an error
        proc.handle(_h("request_headers", {":method": "POST", ":path": f"/v1/chat/completions?key={MARKER}"}))
        proc.handle(_b("request_body", b"not json"))
        proc.handle(_h("response_headers", {":status": "401", "content-type": "application/json"}))
        proc.handle(_b("response_body", b'{"error":{"message":"bad key"}}'))
        proc.finish()
        tel.force_flush()
        assert writer.close(30)

    kid = hmac.new(SECRET, MARKER.encode(), hashlib.sha256).hexdigest()[:16]
    rows = list(open_store(sqlite_dir=tmp_path).rows())
    assert [r.key_id for r in rows] == [kid] * 4
    finished = spans.get_finished_spans()
    assert len(finished) == 4
    span_text = "\n".join(s.to_json() for s in finished)
    metric_text = metrics.get_metrics_data().to_json()
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for what, text in (("ledger", repr(rows)), ("spans", span_text), ("metrics", metric_text), ("logs", log_text)):
        assert MARKER not in text, what
    for f in tmp_path.rglob("*"):
        assert MARKER.encode() not in f.read_bytes(), f
    tel.shutdown()
