"""Priced once: one pricing per request; headers, the SSE comment block and the in-body JSON object
are three formats of that one result, with one latency value (issue 11)."""

from __future__ import annotations

import json
from decimal import Decimal

from nadir_extproc.inband import parse_fields
from nadir_extproc.stream import json_object
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.stats import COUNTS
from tests.test_processor import body, ctx, headers

# gpt-4o-mini: 0.15 USD/MTok input, 0.60 USD/MTok output (genai-prices 0.2.3).
COMPLETED = (b'event: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_1",'
             b'"model":"gpt-4o-mini-2024-07-18","status":"completed","usage":{"input_tokens":1000,"output_tokens":100,'
             b'"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}}\n\n')


def test_stream_comment_block_and_json_object_are_one_result_with_one_latency():
    seen: list = []
    proc = RequestProcessor(ctx(on_complete=seen.append))
    proc.handle(headers("request_headers", {":method": "POST", ":path": "/v1/responses", "x-nadir-cost-in-body": "1"}))
    proc.handle(body("request_body", b'{"model":"gpt-4o-mini","stream":true,"input":"hi"}'))
    proc.handle(headers("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    created = b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1"}}\n\n'
    proc.handle(body("response_body", created, eos=False))
    r = proc.handle(body("response_body", COMPLETED, eos=True))
    out = r.response_body.response.body_mutation.body
    comment = parse_fields(out)
    data = json.loads(next(ln for ln in out.splitlines() if ln.startswith(b"data: "))[6:])
    assert comment["x-nadir-cost-usd"] == data["nadir"]["cost_usd"] == "0.00021"  # 1000 x 0.15 + 100 x 0.60 per MTok
    assert comment["x-nadir-latency-ms"] == data["nadir"]["latency_ms"]
    assert data["nadir"] == json_object(comment)
    proc.finish()
    assert seen[0].cost.total_usd == Decimal("0.00021")


def test_unpriced_stream_is_counted_once():
    before = COUNTS.get("unpriced_no_usage", 0)
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", {":method": "POST", ":path": "/v1/responses", "x-nadir-cost-in-body": "1"}))
    proc.handle(body("request_body", b'{"model":"gpt-4o-mini","stream":true,"input":"hi"}'))
    proc.handle(headers("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    no_usage = COMPLETED.replace(b'"usage":{', b'"usage_gone":{')
    proc.handle(body("response_body", no_usage, eos=True))
    proc.finish()
    assert COUNTS.get("unpriced_no_usage", 0) == before + 1
