"""Shared fault cases 08, 11, 12, 23 and 24 (``../shared/cases``) against ``RequestProcessor`` driven
with real ProcessingRequest messages (our generated stubs), and against the real OTel SDK (in-memory
exporter) where the case is about spans. The Envoy side of the same cases is in
``tests/integration/test_shared_cases.py``.

Inputs and expected values come from the case files; the rest is hand arithmetic with list rates
(USD per 1M tokens) written next to it. The only test doubles are implementations of the ``Router``
*interface* (a router that answers a fixed model, one that raises).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import yaml
from opentelemetry.trace import StatusCode

from nadir_extproc.config import Settings, TelemetrySettings
from nadir_extproc.pb import external_processor_pb2 as ep
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.record import Outcome
from tests.conftest import load_case
from tests.test_processor import body, set_headers
from tests.test_processor import ctx as make_ctx
from tests.test_processor import headers as hdrs
from nadir_extproc.routing.base import Decision, RouteRequest
from nadir_extproc.stats import COUNTS
from nadir_extproc.dialects import DIALECTS
from nadir_extproc.telemetry.extract import note_request, redact_secrets

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers
class FixedRouter:
    """A ``Router`` that always answers ``model`` (a test double of the interface)."""

    def __init__(self, model: str) -> None:
        self.model = model

    def route(self, request: RouteRequest) -> Decision:
        return Decision(model=self.model, tier="strong", score=None, reason="fixed", router="fixed")


class RaisingRouter:
    """A ``Router`` whose ``route`` raises, as a corrupt model file or a bug would."""

    def route(self, request: RouteRequest) -> Decision:
        raise RuntimeError("internal exception while choosing a model")


# ----------------------------------------------------------------------------- case 08
def test_case_08_content_length_after_body_mutation(cases_dir):
    """08-ext-proc-content-length-after-body-mutation: the case's exact 79-byte body rewritten to
    claude-sonnet-4-5-20250929 is 101 bytes, and the same body reply sets content-length "101"
    (raw_value) — Envoy answers 500 to a length-changing mutation without it."""
    case = load_case(cases_dir, "08-ext-proc-content-length-after-body-mutation")
    want = case["expected"]
    (m_headers, m_body) = case["input"]["messages"]
    proc = RequestProcessor(make_ctx(router=FixedRouter("claude-sonnet-4-5-20250929")))
    r1 = proc.handle(hdrs("request_headers", m_headers["request_headers"]["headers"],
                          eos=m_headers["request_headers"]["end_of_stream"]))
    assert r1.HasField("request_headers") and not r1.HasField("mode_override")  # an LLM path: keep going
    raw = m_body["request_body"]["body"].encode()
    assert len(raw) == want["original_length"] == 79
    r2 = proc.handle(body("request_body", raw, eos=m_body["request_body"]["end_of_stream"]))
    cr = r2.request_body.response
    assert cr.status == ep.CommonResponse.CONTINUE
    new = cr.body_mutation.body
    # "auto" (4 bytes) -> "claude-sonnet-4-5-20250929" (26 bytes): 79 + 22 = 101
    assert new == want["request_body_response"]["response"]["body_mutation"]["body"].encode()
    assert len(new) == want["new_length"] == 101
    (expected_cl,) = want["request_body_response"]["response"]["header_mutation"]["set_headers"]
    assert expected_cl["header"] == {"key": "content-length", "raw_value": "101"}
    assert set_headers(cr)["content-length"] == b"101"


def test_case_08_buffered_response_body_is_never_mutated_so_needs_no_content_length():
    """08-ext-proc-content-length-after-body-mutation (response path): we add the cost as headers,
    never by changing a BUFFERED response body, so there is no content-length to fix there."""
    proc = RequestProcessor(make_ctx())
    proc.handle(hdrs("request_headers", {":method": "POST", ":path": "/v1/messages"}))
    proc.handle(body("request_body", b'{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}'))
    proc.handle(hdrs("response_headers", {":status": "200", "content-type": "application/json"}))
    resp = json.dumps({"model": "claude-haiku-4-5-20251001", "usage": {"input_tokens": 10, "output_tokens": 2}}).encode()
    cr = proc.handle(body("response_body", resp)).response_body.response
    assert not cr.HasField("body_mutation")
    # claude-haiku-4-5 (1.00 in, 5.00 out): 10*1 + 2*5 = 20 per 1M -> 0.00002
    assert set_headers(cr)["x-nadir-cost-usd"] == b"0.00002" and "content-length" not in set_headers(cr)


# ----------------------------------------------------------------------------- case 11
def test_case_11_t1_envoy_timeout_and_failure_mode_match_the_docs():
    """11-ext-proc-timeout-and-failure-mode T1: a slow processor cannot be simulated without changing
    code, so this pins the documented choice instead: every shipped Envoy config raises
    message_timeout above the 200 ms default to 0.5 s (as envoy/envoy.yaml's comment says) and runs
    fail-open (failure_mode_allow: true, as the README says)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "`failure_mode_allow: true`" in readme
    main = (REPO / "envoy" / "envoy.yaml").read_text(encoding="utf-8")
    assert "500 ms leaves room for a cold start" in main  # the documented value the config must match
    for name in ("envoy.yaml", "sidecar.yaml", "sidecar-tcp.yaml"):
        cfg = yaml.safe_load((REPO / "envoy" / name).read_text(encoding="utf-8"))
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        (xp,) = [f["typed_config"] for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"]
        assert (xp["message_timeout"], xp["failure_mode_allow"]) == ("0.5s", True), name
        assert xp["allow_mode_override"] is True, name


def test_case_11_t1_per_message_time_is_measured(capsys):
    """11-ext-proc-timeout-and-failure-mode T1 (measurement, not an assertion on time): our time
    per ext_proc message for a whole routed, priced request (4 messages), printed."""
    ctx = make_ctx()
    req = b'{"model":"auto","messages":[{"role":"user","content":"What is the capital of France?"}]}'
    resp = json.dumps({"model": "gpt-4o-mini-2024-07-18", "choices": [],
                       "usage": {"prompt_tokens": 41, "completion_tokens": 11}}).encode()
    msgs = [hdrs("request_headers", {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}),
            body("request_body", req), hdrs("response_headers", {":status": "200", "content-type": "application/json"}),
            body("response_body", resp)]
    per_msg: list[float] = []
    for _ in range(500):
        proc = RequestProcessor(ctx)
        for m in msgs:
            t = time.perf_counter_ns()
            proc.handle(m)
            per_msg.append((time.perf_counter_ns() - t) / 1e6)
        proc.finish()
    per_msg.sort()
    p50, p99 = statistics.median(per_msg), per_msg[int(len(per_msg) * 0.99)]
    with capsys.disabled():
        print(f"\n[case 11 T1] per ext_proc message: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {per_msg[-1]:.3f} ms "
              f"(n={len(per_msg)}; Envoy message_timeout 500 ms)")
    assert len(per_msg) == 2000


def test_case_11_t2_exception_while_choosing_a_model_falls_back_and_never_breaks_the_request():
    """11-ext-proc-timeout-and-failure-mode T2: the router raises -> the request is answered at once
    (no dropped or stalled stream) with a CONTINUE that rewrites to the route's default model (no
    default_models set: the provider's strong tier, claude-sonnet-4-5), content-length fixed. We chose
    this fallback over the case's suggested 502/503 ImmediateResponse: the call still succeeds."""
    seen: list[Outcome] = []
    before = COUNTS["router_error"]
    proc = RequestProcessor(make_ctx(router=RaisingRouter(), on_complete=seen.append))
    proc.handle(hdrs("request_headers", {":method": "POST", ":path": "/v1/messages"}))
    raw = b'{"model":"auto","max_tokens":256,"messages":[{"role":"user","content":"ping"}]}'
    r = proc.handle(body("request_body", raw))
    assert r.WhichOneof("response") == "request_body"  # not an immediate_response, not nothing
    cr = r.request_body.response
    assert cr.status == ep.CommonResponse.CONTINUE
    # "auto" (4) -> "claude-sonnet-4-5" (17): 79 + 13 = 92 bytes
    assert cr.body_mutation.body == raw.replace(b'"auto"', b'"claude-sonnet-4-5"')
    assert set_headers(cr)["content-length"] == b"92"
    assert COUNTS["router_error"] == before + 1
    proc.finish()
    d = seen[0].decision
    assert (d.model, d.reason, d.router) == ("claude-sonnet-4-5", "router_error", "fallback")


def test_case_11_t3_unknown_model_continues_untouched_without_cost_and_says_why(mem_factory):
    """11-ext-proc-timeout-and-failure-mode T3: pricing cannot find the served model -> CONTINUE with
    the response body untouched, no cost header (never 0), ``x-nadir-unpriced-reason:
    unknown_model``, the span says the same, and the completion is not marked failed."""
    m = mem_factory()
    seen: list[Outcome] = []

    def sink(o: Outcome) -> None:
        seen.append(o)
        m.tel.record(o)

    proc = RequestProcessor(make_ctx(on_complete=sink))
    proc.handle(hdrs("request_headers", {":method": "POST", ":path": "/v1/chat/completions"}))
    proc.handle(body("request_body", b'{"model":"my-finetune-v7","messages":[{"role":"user","content":"hi"}]}'))
    proc.handle(hdrs("response_headers", {":status": "200", "content-type": "application/json"}))
    resp = json.dumps({"id": "chatcmpl-9", "model": "my-finetune-v7", "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "ok"}}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 5}}).encode()
    r = proc.handle(body("response_body", resp))
    cr = r.response_body.response
    assert cr.status == ep.CommonResponse.CONTINUE and not cr.HasField("body_mutation")
    h = set_headers(cr)
    assert h["x-nadir-unpriced-reason"] == b"unknown_model"
    assert "x-nadir-cost-usd" not in h and "x-nadir-cost-saved" not in h
    assert h["x-nadir-routed-to"] == b"my-finetune-v7"
    proc.finish()
    assert seen[0].result == "ok" and seen[0].usage.output_tokens == 5
    a = dict(m.only_span().attributes)
    assert a["nadir.cost.unpriced_reason"] == "unknown_model"
    assert "nadir.cost.usd" not in a and "gen_ai.usage.cost" not in a
    assert m.only_span().status.status_code is StatusCode.UNSET


# ----------------------------------------------------------------------------- case 12
RESERVED = {"host", ":authority", ":scheme", ":method"}


def _all_set_headers(r: ep.ProcessingResponse) -> dict[str, bytes]:
    phase = r.WhichOneof("response")
    if phase is None or phase == "immediate_response":
        return {}
    cr = getattr(r, phase).response
    return set_headers(cr)


def test_case_12_header_mutations_use_only_the_x_nadir_prefix_and_never_reserved_names():
    """12-ext-proc-header-mutation-rules: across a routed JSON call and a routed stream, every header
    we set in any phase is either content-length / accept-encoding or ``x-nadir-*`` — never host,
    :authority, :scheme, :method or x-envoy-* (Envoy's default mutation rules drop those)."""
    seen: dict[str, bytes] = {}
    proc = RequestProcessor(make_ctx())
    for m in (hdrs("request_headers", {":method": "POST", ":path": "/v1/chat/completions", "accept-encoding": "compress, gzip"}),
              body("request_body", b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'),
              hdrs("response_headers", {":status": "200", "content-type": "application/json"}),
              body("response_body", json.dumps({"model": "gpt-4o-mini-2024-07-18",
                                                "usage": {"prompt_tokens": 41, "completion_tokens": 11}}).encode())):
        seen.update(_all_set_headers(proc.handle(m)))
    proc = RequestProcessor(make_ctx())
    for m in (hdrs("request_headers", {":method": "POST", ":path": "/v1/messages"}),
              body("request_body", b'{"model":"auto","stream":true,"max_tokens":5,"messages":[]}'),
              hdrs("response_headers", {":status": "200", "content-type": "text/event-stream"})):
        seen.update(_all_set_headers(proc.handle(m)))
    assert set(seen) == {"accept-encoding", "content-length", "x-nadir-provider", "x-nadir-routed-to",
                         "x-nadir-cost-usd", "x-nadir-price-source", "x-nadir-cost-saved", "x-nadir-latency-ms"}
    assert not RESERVED & set(seen) and not [k for k in seen if k.startswith("x-envoy-")]
    # Cost header as the case's example: gpt-4o-mini 41*0.15 + 11*0.60 = 6.15 + 6.6 = 12.75 per 1M.
    assert seen["x-nadir-cost-usd"] == b"0.00001275"  # not 1.275e-05
    assert seen["x-nadir-price-source"] == b"genai-prices 0.2.3"  # the rate-card version companion


def test_case_12_hostile_model_is_never_reflected_into_a_header():
    """12-ext-proc-header-mutation-rules: the case's hostile ``model`` ("auto\\r\\nx-injected: 1") is
    not the auto marker, so nothing is rewritten, and no header we set carries any of it."""
    case_model = "auto\r\nx-injected: 1"
    proc = RequestProcessor(make_ctx())
    replies = [proc.handle(hdrs("request_headers", {":method": "POST", ":path": "/v1/chat/completions"})),
               proc.handle(body("request_body", json.dumps({"model": case_model, "messages": []}).encode())),
               proc.handle(hdrs("response_headers", {":status": "404", "content-type": "application/json"})),
               proc.handle(body("response_body", b'{"error":{"code":"model_not_found"}}'))]
    assert not replies[1].request_body.response.HasField("body_mutation")
    every = {}
    for r in replies:
        every.update(_all_set_headers(r))
    assert "x-nadir-routed-to" not in every
    for k, v in every.items():
        assert b"\r" not in v and b"\n" not in v and b"injected" not in v, (k, v)
    assert every["x-nadir-unpriced-reason"] == b"provider_error"


# ----------------------------------------------------------------------------- case 23
def _stream_through(proc: RequestProcessor, path: str, req: bytes, events: list[bytes], *, finish_early: bool = False) -> int:
    """Request + SSE response, one event per STREAMED chunk; returns the wall time (Unix ns) right
    after the end_of_stream chunk was processed (or after the last chunk when ``finish_early``)."""
    proc.handle(hdrs("request_headers", {":method": "POST", ":path": path}))
    proc.handle(body("request_body", req))
    proc.handle(hdrs("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    for ev in events:
        proc.handle(body("response_body", ev, eos=False))
    if not finish_early:
        proc.handle(body("response_body", b"", eos=True))
    return time.time_ns()


def _chat_chunk(delta: dict, finish: str | None = None) -> bytes:
    return b"data: " + json.dumps({"id": "chatcmpl-23", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


S1_USAGE = (b'data: {"id":"chatcmpl-23","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[],'
            b'"usage":{"prompt_tokens":1234,"completion_tokens":56,"total_tokens":1290,'
            b'"prompt_tokens_details":{"cached_tokens":1024}}}\n\n')


def test_case_23_s1_stream_span_ends_after_the_last_chunk_with_its_usage(cases_dir, mem_factory):
    """23-otel-span-lifecycle-streaming-usage S1: gpt-4o-mini stream, usage chunk last, then [DONE].
    The span ends after the end_of_stream chunk and carries the case's usage and cost."""
    exp = load_case(cases_dir, "23-otel-span-lifecycle-streaming-usage")["expected"]["S1"]
    m = mem_factory()
    proc = RequestProcessor(make_ctx(on_complete=m.tel.record))
    events = [_chat_chunk({"role": "assistant", "content": ""}), _chat_chunk({"content": "Hi"}),
              _chat_chunk({}, "stop"), S1_USAGE, b"data: [DONE]\n\n"]
    req = b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
    after_eos = _stream_through(proc, "/v1/chat/completions", req, events)
    proc.finish()
    s = m.only_span()
    assert s.end_time >= after_eos
    a = dict(s.attributes)
    for k, v in exp["attributes"].items():
        if k == "llm.cost.usd":  # our names: nadir.cost.usd (exact string) and gen_ai.usage.cost (float)
            assert a["gen_ai.usage.cost"] == v
        else:
            assert a[k] == v, k
    # gpt-4o-mini (0.15 in, 0.075 cache read, 0.60 out): 210*0.15 + 1024*0.075 + 56*0.60
    #   = 31.5 + 76.8 + 33.6 = 141.9 per 1M -> 0.0001419; input_tokens keeps the inclusive 1234
    assert a["nadir.cost.usd"] == exp["cost_usd"] == "0.0001419"


def test_case_23_s2_stream_without_usage_has_no_usage_attributes(mem_factory):
    """23-otel-span-lifecycle-streaming-usage S2: no usage anywhere in the stream (include_usage not
    asked, injection off as for case 06 E): usage and cost attributes absent, never 0, and the span
    says why (our name for the case's llm.cost.status=usage_unavailable: nadir.cost.unpriced_reason
    = no_usage)."""
    m = mem_factory()
    proc = RequestProcessor(make_ctx(on_complete=m.tel.record, settings=Settings(inject_stream_usage=[])))
    events = [_chat_chunk({"role": "assistant", "content": ""}), _chat_chunk({"content": "Hi"}),
              _chat_chunk({}, "stop"), b"data: [DONE]\n\n"]
    _stream_through(proc, "/v1/chat/completions", b'{"model":"gpt-4o-mini","stream":true,"messages":[]}', events)
    proc.finish()
    a = dict(m.only_span().attributes)
    assert not [k for k in a if k.startswith("gen_ai.usage.")]
    assert "nadir.cost.usd" not in a
    assert a["nadir.cost.unpriced_reason"] == "no_usage"


def test_case_23_s3_client_gone_after_three_chunks_span_ends_unset_and_cut(mem_factory):
    """23-otel-span-lifecycle-streaming-usage S3: Envoy closes the stream after 3 content chunks.
    Our pick: status UNSET with ``nadir.stream.cut = true`` (not error.type), usage absent (the
    provider had not sent it), and the span is ended when the stream closes (no leak)."""
    m = mem_factory()
    proc = RequestProcessor(make_ctx(on_complete=m.tel.record))
    events = [_chat_chunk({"content": "a"}), _chat_chunk({"content": "b"}), _chat_chunk({"content": "c"})]
    _stream_through(proc, "/v1/chat/completions",
                    b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}',
                    events, finish_early=True)
    closed = time.time_ns()
    proc.finish()  # what the server calls when Envoy ends the gRPC stream
    s = m.only_span()
    assert s.end_time >= closed
    assert s.status.status_code is StatusCode.UNSET
    a = dict(s.attributes)
    assert a["nadir.stream.cut"] is True
    assert not [k for k in a if k.startswith("gen_ai.usage.")]


def test_case_23_s4_anthropic_stream_inclusive_input_tokens(cases_dir, mem_factory):
    """23-otel-span-lifecycle-streaming-usage S4 (stream of case 04 A): one convention for every
    provider — gen_ai.usage.input_tokens = input + cache_read + cache_creation = 1200 + 8000 + 0."""
    exp = load_case(cases_dir, "23-otel-span-lifecycle-streaming-usage")["expected"]["S4"]["attributes"]
    stream = load_case(cases_dir, "04-anthropic-stream-cumulative-usage")["input"]["A_official_shape_delta_repeats_input_fields"]
    m = mem_factory()
    proc = RequestProcessor(make_ctx(on_complete=m.tel.record))
    events = [e + b"\n\n" for e in stream.encode().split(b"\n\n") if e]
    _stream_through(proc, "/v1/messages", b'{"model":"claude-sonnet-4-5","stream":true,"max_tokens":256,"messages":[]}', events)
    proc.finish()
    a = dict(m.only_span().attributes)
    assert a["gen_ai.usage.input_tokens"] == exp["gen_ai.usage.input_tokens"] == 9200
    assert a["gen_ai.usage.output_tokens"] == exp["gen_ai.usage.output_tokens"] == 87
    assert a["gen_ai.usage.cache_read.input_tokens"] == exp["gen_ai.usage.cache_read.input_tokens"] == 8000
    # The case lists cache_creation 0; we leave zero cache classes out (spans.py: Usage cannot tell a
    # reported 0 from an absent field), which sums the same.
    assert a.get("gen_ai.usage.cache_creation.input_tokens", 0) == exp["gen_ai.usage.cache_creation.input_tokens"] == 0
    # claude-sonnet-4-5 (3 in, 0.30 cache read, 15 out): 1200*3 + 8000*0.3 + 87*15 = 3600 + 2400 + 1305 = 7305 -> 0.007305
    assert a["nadir.cost.usd"] == "0.007305"


# ----------------------------------------------------------------------------- case 24
@pytest.mark.parametrize(
    "text, want",
    [
        ("my key is sk-test-REDACTME-0123456789abcdef", "my key is sk-[REDACTED]"),
        ("x-api-key sk-ant-test-REDACTME-abcdef.", "x-api-key sk-ant-[REDACTED]."),
        ("gemini AIza-test-REDACTME", "gemini AIza[REDACTED]"),
        ("real shapes: sk-proj-AbC123_xyz-987 AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
         "real shapes: sk-[REDACTED] AIza[REDACTED]"),
        ('["sk-ant-api03-zz99"]', '["sk-ant-[REDACTED]"]'),
        # not keys: glued to a preceding word, or too short after the prefix
        ("task-force risk-free sk-learn AIzaX", "task-force risk-free sk-learn AIzaX"),
    ],
)
def test_case_24_redaction_of_common_key_shapes(text, want):
    """24-no-credentials-in-telemetry: the redaction pass for captured content (sk-, sk-ant-, AIza)."""
    assert redact_secrets(text) == want


def test_case_24_captured_content_is_redacted(cases_dir, mem_factory):
    """24-no-credentials-in-telemetry with ``telemetry.capture_content: true``: the case's body
    fragment (a key pasted in the prompt) and a reply echoing keys reach the span redacted."""
    frag = load_case(cases_dir, "24-no-credentials-in-telemetry")["input"]["request_body_fragment"]
    m = mem_factory(capture_content=True)
    ctx = make_ctx(on_complete=m.tel.record, settings=Settings(telemetry=TelemetrySettings(capture_content=True)))
    proc = RequestProcessor(ctx)
    proc.handle(hdrs("request_headers", {":method": "POST", ":path": "/v1/chat/completions"}))
    proc.handle(body("request_body", json.dumps({**frag, "messages": [{"role": "system", "content": "use AIza-test-REDACTME"},
                                                                       *frag["messages"]]}).encode()))
    proc.handle(hdrs("response_headers", {":status": "200", "content-type": "application/json"}))
    reply = {"id": "c1", "model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1, "completion_tokens": 1},
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": "noted sk-ant-test-REDACTME-abcdef"}}]}
    proc.handle(body("response_body", json.dumps(reply).encode()))
    proc.finish()
    a = dict(m.only_span().attributes)
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "use AIza[REDACTED]"}]},
        {"role": "user", "parts": [{"type": "text", "content": "my key is sk-[REDACTED]"}]}]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "noted sk-ant-[REDACTED]"}], "finish_reason": "stop"}]
    assert "REDACTME" not in m.only_span().to_json()


def test_case_24_content_is_not_kept_when_capture_is_off(cases_dir):
    """24-no-credentials-in-telemetry, defaults: no message content is kept on the outcome at all."""
    frag = load_case(cases_dir, "24-no-credentials-in-telemetry")["input"]["request_body_fragment"]
    o = Outcome()
    note_request(o, frag, DIALECTS["openai_chat"])
    assert o.content is None and "REDACTME" not in repr(o)
