"""RequestProcessor phase by phase, with real ProcessingRequest messages (our generated stubs).

Expected values are hand-computed from the inputs; rates (USD / 1M tokens) stated where used.
"""

from __future__ import annotations

import gzip
import json

import pytest

from nadir_extproc.config import Settings
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep, processing_mode_pb2 as pm
from nadir_extproc.server import Context
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.routing.base import RouteRequest
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.stats import COUNTS

PM = pm.ProcessingMode


def ctx(router=None, on_complete=None, settings: Settings | None = None) -> Context:
    s = settings or Settings()
    pol = s.policy()
    return Context(settings=s, router=router or RuleRouter(pol), policy=pol, on_complete=on_complete)


def headers(msg_field: str, hdrs: dict[str, str], eos: bool = False) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hdrs.items()])
    return ep.ProcessingRequest(**{msg_field: ep.HttpHeaders(headers=hm, end_of_stream=eos)})


def body(msg_field: str, data: bytes, eos: bool = True) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{msg_field: ep.HttpBody(body=data, end_of_stream=eos)})


def set_headers(common: ep.CommonResponse) -> dict[str, bytes]:
    out = {}
    for o in common.header_mutation.set_headers:
        assert o.header.value == ""  # Envoy 1.40 reads raw_value; value must stay empty
        out[o.header.key] = o.header.raw_value
    return out


REQ = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}


def run_request(proc: RequestProcessor, payload: bytes, path: str = "/v1/chat/completions"):
    r1 = proc.handle(headers("request_headers", {**REQ, ":path": path}))
    r2 = proc.handle(body("request_body", payload))
    return r1, r2


def test_auto_rewrite_sets_content_length_provider_and_clears_route_cache():
    proc = RequestProcessor(ctx())
    payload = b'{"model":"auto","messages":[{"role":"user","content":"hello"}],"metadata":{"model":"auto"}}'
    _, r = run_request(proc, payload)
    cr = r.request_body.response
    new = cr.body_mutation.body
    assert json.loads(new) == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "metadata": {"model": "auto"}}
    # len(payload) = 91; "auto" (4) -> "gpt-4o-mini" (11): 91 + 7 = 98 bytes.
    assert len(payload) == 91 and len(new) == 98
    assert set_headers(cr) == {"content-length": b"98", "x-nadir-provider": b"openai"}
    assert cr.clear_route_cache is True


def test_explicit_model_is_not_rewritten_but_routed_by_provider_header():
    proc = RequestProcessor(ctx())
    _, r = run_request(proc, b'{"model":"claude-opus-4-1","max_tokens":5,"messages":[]}', "/v1/messages")
    cr = r.request_body.response
    assert not cr.HasField("body_mutation")
    assert set_headers(cr) == {"x-nadir-provider": b"anthropic"}


@pytest.mark.parametrize(
    "payload, event",
    [(b"not json at all", "request_not_json"), (b'{"messages": []}', "request_no_model"), (b"[1,2]", "request_not_object")],
)
def test_unreadable_request_body_passes_untouched_and_is_counted(payload, event):
    before = COUNTS[event]
    _, r = run_request(RequestProcessor(ctx()), payload)
    assert r.request_body.response == ep.CommonResponse()  # plain CONTINUE, no mutation
    assert COUNTS[event] == before + 1


def test_non_llm_path_skips_every_later_phase_with_a_complete_mode():
    r = RequestProcessor(ctx()).handle(headers("request_headers", {":method": "GET", ":path": "/v1/models"}, eos=True))
    m = r.mode_override
    assert (m.request_header_mode, m.response_header_mode, m.request_body_mode, m.response_body_mode,
            m.request_trailer_mode, m.response_trailer_mode) == (PM.SEND, PM.SKIP, PM.NONE, PM.NONE, PM.SKIP, PM.SKIP)


def test_sse_response_switches_to_streamed_with_the_whole_mode_and_routed_header():
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}')
    r = proc.handle(headers("response_headers", {":status": "200", "content-type": "text/event-stream; charset=utf-8"}))
    m = r.mode_override
    # Every field set: a partial override would reset the request body phase (extproc-facts.md).
    assert (m.request_header_mode, m.response_header_mode, m.request_body_mode, m.response_body_mode,
            m.request_trailer_mode, m.response_trailer_mode) == (PM.SEND, PM.SEND, PM.BUFFERED, PM.STREAMED, PM.SKIP, PM.SKIP)
    assert set_headers(r.response_headers.response) == {"x-nadir-routed-to": b"gpt-4o-mini"}
    chunk = proc.handle(body("response_body", b"data: {}\n\n", eos=False))
    assert chunk.response_body.response == ep.CommonResponse()


def _respond(proc, resp_headers: dict[str, str], payload: bytes):
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json", **resp_headers}))
    return set_headers(proc.handle(body("response_body", payload)).response_body.response)


CHAT_RESPONSE = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 41, "completion_tokens": 11, "total_tokens": 52, "prompt_tokens_details": {"cached_tokens": 0}},
}).encode()


def test_shared_case_07_priced_by_served_model():
    # gpt-4o-mini: 41 * 0.15/1e6 + 11 * 0.60/1e6 = 0.00000615 + 0.0000066 = 0.00001275
    # baseline gpt-4o: 41 * 2.5/1e6 + 11 * 10/1e6 = 0.0001025 + 0.00011 = 0.0002125 -> saved 0.00019975
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"auto","messages":[{"role":"user","content":"Explain this config line"}]}')
    h = _respond(proc, {}, CHAT_RESPONSE)
    assert h[b"x-nadir-routed-to".decode()] == b"gpt-4o-mini-2024-07-18"
    assert h["x-nadir-cost-usd"] == b"0.00001275"
    assert h["x-nadir-cost-saved"] == b"0.00019975"
    assert float(h["x-nadir-latency-ms"]) > 0
    assert "x-nadir-unpriced-reason" not in h


def test_gzip_response_decoded_and_brotli_reported_unpriced():
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"gpt-4o-mini","messages":[]}')
    assert _respond(proc, {"content-encoding": "gzip"}, gzip.compress(CHAT_RESPONSE))["x-nadir-cost-usd"] == b"0.00001275"
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"gpt-4o-mini","messages":[]}')
    h = _respond(proc, {"content-encoding": "br"}, b"\x8b\x00garbage")
    assert h["x-nadir-unpriced-reason"] == b"unsupported_content_encoding"
    assert "x-nadir-cost-usd" not in h


def test_unknown_model_and_missing_usage_are_unpriced_never_zero():
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"my-finetune-v7","messages":[]}')
    h = _respond(proc, {}, json.dumps({"model": "my-finetune-v7", "usage": {"prompt_tokens": 5, "completion_tokens": 5}}).encode())
    assert h["x-nadir-unpriced-reason"] == b"unknown_model" and "x-nadir-cost-usd" not in h
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"gpt-4o-mini","messages":[]}')
    h = _respond(proc, {}, b'{"model":"gpt-4o-mini-2024-07-18","choices":[]}')
    assert h["x-nadir-unpriced-reason"] == b"no_usage" and "x-nadir-cost-usd" not in h


def test_hostile_model_name_is_never_reflected_into_a_header():
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"gpt-4o-mini","messages":[]}')
    evil = json.dumps({"model": "gpt-4o-mini\r\nx-injected: 1", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
    h = _respond(proc, {}, evil)
    assert "x-nadir-routed-to" not in h
    assert all(b"\r" not in v and b"\n" not in v for v in h.values())


def test_upstream_x_nadir_headers_are_removed():
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"gpt-4o-mini","messages":[]}')
    r = proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json",
                                                 "x-nadir-cost-usd": "0", "x-nadir-routed-to": "evil"}))
    assert sorted(r.response_headers.response.header_mutation.remove_headers) == ["x-nadir-cost-usd", "x-nadir-routed-to"]


class BrokenRouter:
    def route(self, request: RouteRequest):
        raise RuntimeError("model file corrupt")


def test_router_failure_falls_back_to_the_default_model():
    before = COUNTS["router_error"]
    _, r = run_request(RequestProcessor(ctx(router=BrokenRouter())), b'{"model":"auto","messages":[]}')
    assert json.loads(r.request_body.response.body_mutation.body)["model"] == "gpt-4o"
    assert COUNTS["router_error"] == before + 1


def test_internal_error_answers_continue_for_that_phase():
    before = COUNTS["internal_error"]
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", REQ))
    proc.dialect = None  # not a mock: simulates state corruption inside our own code
    proc.out = None  # type: ignore[assignment]
    r = proc.handle(headers("response_headers", {":status": "200"}))
    assert r.HasField("response_headers") and r.response_headers.response == ep.CommonResponse()
    assert COUNTS["internal_error"] == before + 1


def test_outcome_handed_on_once_when_the_stream_ends():
    seen = []
    proc = RequestProcessor(ctx(on_complete=seen.append))
    run_request(proc, b'{"model":"auto","messages":[{"role":"user","content":"hello"}]}')
    _respond(proc, {}, CHAT_RESPONSE)
    proc.finish()
    proc.finish()
    assert len(seen) == 1
    o = seen[0]
    assert (o.dialect, o.requested_model, o.routed_model, o.response_model) == ("openai_chat", "auto", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert o.decision.tier == "weak" and o.usage.uncached_input_tokens == 41 and o.latency_ms > 0


def test_cancelled_stream_is_recorded_as_cut_with_the_tokens_known_so_far():
    seen = []
    proc = RequestProcessor(ctx(on_complete=seen.append))
    run_request(proc, b'{"model":"auto","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"hi"}]}', "/v1/messages")
    proc.handle(headers("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-haiku-4-5-20251001",'
             b'"usage":{"input_tokens":1000,"output_tokens":1}}}\n\n')
    r = proc.handle(body("response_body", start + b"event: content_block_delta\ndata: {\"ty", eos=False))
    # The complete event goes on at once; the partial one is held until it completes.
    assert r.response_body.response.body_mutation.body == start
    proc.finish()  # Envoy closed the stream before end_of_stream (client went away)
    o = seen[0]
    assert o.result == "cut_stream" and o.usage.uncached_input_tokens == 1000 and o.usage.output_tokens == 1
    # claude-haiku-4-5: 1000 * 1.00/1e6 + 1 * 5.00/1e6 = 0.001 + 0.000005 = 0.001005
    assert str(o.cost.total_usd.normalize()) == "0.001005"


def test_stream_chunk_without_changes_is_forwarded_as_is():
    proc = RequestProcessor(ctx())
    run_request(proc, b'{"model":"claude-haiku-4-5","stream":true,"max_tokens":9,"messages":[]}', "/v1/messages")
    proc.handle(headers("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    r = proc.handle(body("response_body", b"event: ping\ndata: {\"type\": \"ping\"}\n\n", eos=False))
    assert r.response_body.response == ep.CommonResponse()  # no body mutation: nothing rewritten


def test_gzip_request_body_is_decoded_rewritten_and_sent_uncompressed():
    proc = RequestProcessor(ctx())
    payload = b'{"model":"AUTO","messages":[{"role":"user","content":"hello"}]}'
    proc.handle(headers("request_headers", {**REQ, "content-encoding": "gzip"}))
    r = proc.handle(body("request_body", gzip.compress(payload))).request_body.response
    # The auto marker matches case-insensitively; "AUTO" (4) -> "gpt-4o-mini" (11): 63 + 7 = 70 bytes.
    assert len(payload) == 63
    assert r.body_mutation.body == payload.replace(b"AUTO", b"gpt-4o-mini")
    assert set_headers(r)["content-length"] == b"70"
    assert list(r.header_mutation.remove_headers) == ["content-encoding"]


def test_undecodable_request_body_passes_untouched_and_is_counted():
    before = COUNTS["request_undecodable"]
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", {**REQ, "content-encoding": "br"}))
    r = proc.handle(body("request_body", b"\x1b\x00\x00garbage"))
    assert r.request_body.response == ep.CommonResponse() and COUNTS["request_undecodable"] == before + 1


def test_sidecar_control_headers_do_not_go_upstream():
    r = RequestProcessor(ctx()).handle(headers("request_headers", {**REQ, "x-nadir-tier": "weak", "x-nadir-cost-in-body": "1"}))
    assert {"x-nadir-tier", "x-nadir-cost-in-body"} <= set(r.request_headers.response.header_mutation.remove_headers)


def test_pinned_tier_header_reaches_the_router():
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", {**REQ, "x-nadir-tier": "strong"}))
    r = proc.handle(body("request_body", b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'))
    assert json.loads(r.request_body.response.body_mutation.body)["model"] == "gpt-4o"  # "hi" alone would be weak


def test_gemini_query_key_moves_to_the_header_and_out_of_the_path():
    proc = RequestProcessor(ctx())
    r = proc.handle(headers("request_headers", {":method": "POST", "content-type": "application/json",
                                                ":path": "/v1beta/models/auto:streamGenerateContent?alt=sse&key=AIza%2Dsecret"}))
    h = set_headers(r.request_headers.response)
    assert h[":path"] == b"/v1beta/models/auto:streamGenerateContent?alt=sse"
    assert h["x-goog-api-key"] == b"AIza-secret"
    # The model in the (new) path is still rewritten in the body phase.
    r2 = proc.handle(body("request_body", b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'))
    assert set_headers(r2.request_body.response)[":path"] == b"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
