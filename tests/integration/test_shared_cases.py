"""Shared fault cases 08, 11, 12, 13 and 24 (``../shared/cases``) through the real stack: Envoy 1.40
(envoy/envoy.yaml) + nadir-extproc + the provider emulator, with a real OTLP gRPC receiver that Envoy
and nadir-extproc export to. The processor-level side is ``tests/test_shared_cases_unit.py``.

Usage is fixed with the emulator's ``x-emulator-usage`` header or exact bytes replayed with
``POST /__emulator/replay``, so every cost below is hand arithmetic (list rates, USD per 1M tokens,
next to each). The stack's settings pin the rule router and make the anthropic strong tier the dated
``claude-sonnet-4-5-20250929`` (case 08's rewrite target); everything else is the default.
"""

from __future__ import annotations

import json
import re
import time

import openai
import pytest

from nadir_extproc.stack import Stack
from tests.conftest import load_case
from tests.integration.conftest import (
    clear_upstream,
    comment_fields,
    ledger_rows,
    raw_post,
    replay,
    traceparent,
    upstream_requests,
    usage,
)

KEY = "sk-test-not-a-real-key"
COMMENT = re.compile(rb"(?:: x-nadir-[a-z-]+=[^\r\n]*\r?\n)+\r?\n")

CONFIG = """
router: rules
tiers:
  openai: {strong: gpt-4o, mid: gpt-4.1-mini, weak: gpt-4o-mini}
  anthropic: {strong: claude-sonnet-4-5-20250929, weak: claude-haiku-4-5}
  google: {strong: gemini-2.5-pro, weak: gemini-2.5-flash}
"""


@pytest.fixture(scope="module")
def stack(receiver, tmp_path_factory):
    d = tmp_path_factory.mktemp("shared-cases")
    (d / "settings.yaml").write_text(CONFIG)
    env = {"NADIR_CONFIG": str(d / "settings.yaml"), "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_METRIC_EXPORT_INTERVAL": "300"}
    with Stack(otlp_endpoint=receiver.endpoint, extproc_env=env) as s:
        yield s


def our_span(receiver, trace_id: str, timeout_s: float = 20):
    return receiver.our_span(lambda s: s.trace_id == trace_id, timeout_s)


def chat_chunk(delta: dict, finish: str | None = None, cid: str = "chatcmpl-case") -> bytes:
    return b"data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


def ext_proc_stats(stack) -> dict[str, int]:
    st = stack.envoy_stats("ext_proc")
    return {k: st[f"http.llm.ext_proc.{k}"] for k in ("message_timeouts", "streams_failed", "failure_mode_allowed")}


# ----------------------------------------------------------------------------- case 08
def test_case_08_rewritten_body_reaches_upstream_with_matching_content_length(stack, cases_dir):
    """08-ext-proc-content-length-after-body-mutation through Envoy: the case's 79-byte body with
    "auto" (strong tier pinned -> claude-sonnet-4-5-20250929) reaches the upstream as the expected
    101 bytes with content-length 101 — no local 500."""
    case = load_case(cases_dir, "08-ext-proc-content-length-after-body-mutation")
    raw = case["input"]["messages"][1]["request_body"]["body"].encode()
    want = case["expected"]["request_body_response"]["response"]["body_mutation"]["body"].encode()
    clear_upstream(stack)
    status, headers, _ = raw_post(f"{stack.base_url}/v1/messages", raw,
                                  {"x-api-key": KEY, "anthropic-version": "2023-06-01", "x-nadir-tier": "strong",
                                   **usage(input=10, output=2)})
    assert status == 200
    (up,) = upstream_requests(stack)
    assert up["body"] == want and len(up["body"]) == case["expected"]["new_length"] == 101
    assert up["hdrs"]["content-length"] == "101"
    # claude-sonnet-4-5 (3 in, 15 out): 10*3 + 2*15 = 60 per 1M -> 0.00006
    assert headers["x-nadir-routed-to"] == "claude-sonnet-4-5-20250929" and headers["x-nadir-cost-usd"] == "0.00006"


# ----------------------------------------------------------------------------- case 11
def test_case_11_t3_unknown_model_response_passes_untouched_and_unpriced(stack, receiver):
    """11-ext-proc-timeout-and-failure-mode T3 through Envoy: a 200 JSON response for a model no
    price list knows reaches the client byte for byte, without a cost header, with
    x-nadir-unpriced-reason unknown_model; our span carries the same reason."""
    resp = json.dumps({"id": "chatcmpl-case11-t3", "object": "chat.completion", "created": 1, "model": "my-finetune-v7",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}).encode()
    replay(stack, [resp], "application/json")
    tid, tp = traceparent()
    status, headers, got = raw_post(f"{stack.base_url}/v1/chat/completions",
                                    b'{"model":"my-finetune-v7","messages":[{"role":"user","content":"hi"}]}', tp)
    assert status == 200 and got == resp
    assert "x-nadir-cost-usd" not in headers and "x-nadir-cost-saved" not in headers
    assert headers["x-nadir-unpriced-reason"] == "unknown_model"
    a = our_span(receiver, tid).attrs
    assert a["nadir.cost.unpriced_reason"] == "unknown_model" and "nadir.cost.usd" not in a


def test_case_11_t4_two_thousand_chunk_stream_every_event_in_order_priced_once(stack, receiver, capsys, cases_dir):
    """11-ext-proc-timeout-and-failure-mode T4: a 2,000-chunk SSE stream replayed through Envoy
    (one event per upstream chunk, 1 ms apart): every chunk is answered (no ext_proc message timeout,
    no failed stream, no fail-open pass-through), every event reaches the client in order with only
    our comment block added right before [DONE], and the stream is priced once."""
    events = [chat_chunk({"role": "assistant", "content": ""})]
    events += [chat_chunk({"content": "x"}) for _ in range(1997)]
    events.append(b'data: {"id":"chatcmpl-case","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18",'
                  b'"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":1998,"total_tokens":2098}}\n\n')
    events.append(b"data: [DONE]\n\n")
    t4 = next(s for s in load_case(cases_dir, "11-ext-proc-timeout-and-failure-mode")["input"]["scenarios"] if s["id"] == "T4")
    assert len(events) == int(re.search(r"([\d,]+) chunks", t4["note"]).group(1).replace(",", "")) == 2000
    data = b"".join(events)
    replay(stack, events, "text/event-stream; charset=utf-8", delay_ms=1)
    before = ext_proc_stats(stack)
    tid, tp = traceparent()
    t0 = time.perf_counter()
    status, headers, received = raw_post(
        stack.base_url + "/v1/chat/completions",
        b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}',
        tp, timeout_s=60)
    elapsed = time.perf_counter() - t0
    assert status == 200
    (block,) = COMMENT.findall(received)
    assert received.replace(block, b"", 1) == data
    assert received.endswith(block + b"data: [DONE]\n\n")
    # gpt-4o-mini: 100*0.15 + 1998*0.60 = 15 + 1198.8 = 1213.8 per 1M -> 0.0012138
    assert comment_fields(block)["x-nadir-cost-usd"] == "0.0012138"
    assert ext_proc_stats(stack) == before
    s = our_span(receiver, tid)
    assert s.attrs["nadir.cost.usd"] == "0.0012138"
    time.sleep(0.5)  # one more export interval: a second span for the same stream would be here now
    assert len([x for x in receiver.spans() if x.service == "nadir-extproc" and x.trace_id == tid]) == 1
    with capsys.disabled():
        print(f"\n[case 11 T4] 2000-chunk stream through Envoy: {elapsed:.2f} s wall (1 ms upstream gap per chunk), "
              f"our time on the request {s.attrs['nadir.latency_ms']:.1f} ms")


# ----------------------------------------------------------------------------- case 12
def test_case_12_cost_headers_use_the_x_nadir_prefix_and_a_plain_decimal(stack):
    """12-ext-proc-header-mutation-rules: the case's example call (gpt-4o-mini, 41 in / 11 out) gets
    its cost on non-reserved ``x-nadir-*`` headers as a plain decimal, with the rate-card version."""
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions",
                                  b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
                                  {"authorization": f"Bearer {KEY}", **usage(input=41, output=11)})
    assert status == 200
    # 41*0.15 + 11*0.60 = 6.15 + 6.6 = 12.75 per 1M -> 0.00001275 (a float would print 1.275e-05)
    assert headers["x-nadir-cost-usd"] == "0.00001275"
    assert headers["x-nadir-price-source"] == "genai-prices 0.2.3"
    assert headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
    ours = {k for k in headers if k.startswith("x-nadir-")}
    assert ours == {"x-nadir-routed-to", "x-nadir-cost-usd", "x-nadir-price-source", "x-nadir-cost-saved", "x-nadir-latency-ms"}
    # 3 output tokens only: 3*0.60 = 1.8 per 1M -> 0.0000018 (float: 1.8e-06)
    _, h2, _ = raw_post(f"{stack.base_url}/v1/chat/completions",
                        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}', usage(input=0, output=3))
    assert h2["x-nadir-cost-usd"] == "0.0000018"


def test_case_12_hostile_model_string_injects_no_header(stack, cases_dir):
    """12-ext-proc-header-mutation-rules: the case's hostile model ("auto\\r\\nx-injected: 1" inside
    JSON) produces no injected header on either side and is reflected in no header. It is not the
    auto marker, so it goes upstream as sent and the provider rejects it (the emulator's 404
    model_not_found, as OpenAI does; the case suggests our own 400)."""
    hostile = load_case(cases_dir, "12-ext-proc-header-mutation-rules")["input"]["request_with_hostile_model"]["model"]
    assert hostile == "auto\r\nx-injected: 1"
    clear_upstream(stack)
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions",
                                  json.dumps({"model": hostile, "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert status == 404
    assert "x-injected" not in headers and "x-nadir-routed-to" not in headers
    for k, v in headers.items():
        assert "injected" not in v and "\r" not in v and "\n" not in v, (k, v)
    assert headers["x-nadir-unpriced-reason"] == "provider_error"
    (up,) = upstream_requests(stack)
    assert "x-injected" not in up["hdrs"]
    assert json.loads(up["body"])["model"] == hostile  # untouched: no rewrite, no header derived from it


# ----------------------------------------------------------------------------- case 13
def test_case_13_streamed_response_headers_carry_no_cost_and_the_cost_arrives_in_band(stack, receiver):
    """13-cost-header-on-streaming-response: a streamed call's response headers carry no cost header
    (never a 0) — only the routed model; the computed cost arrives in-band (SSE comment) and on the
    span (our fallback: the filter has no trailer processing, envoy.yaml response_trailer_mode SKIP)."""
    tid, tp = traceparent()
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="auto", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={**tp, **usage(input=1000, output=500)},
    ) as resp:
        h = resp.headers
        raw = b"".join(resp.iter_bytes())
    assert h["x-nadir-routed-to"] == "gpt-4o-mini"
    assert "x-nadir-cost-usd" not in h and "x-nadir-unpriced-reason" not in h and "x-nadir-cost-saved" not in h
    # gpt-4o-mini: 1000*0.15 + 500*0.60 = 450 per 1M -> 0.00045
    (block,) = COMMENT.findall(raw)
    assert comment_fields(block)["x-nadir-cost-usd"] == "0.00045"
    assert our_span(receiver, tid).attrs["nadir.cost.usd"] == "0.00045"


def test_case_13_stream_without_usage_is_unpriced_in_band_never_zero(stack, cases_dir):
    """13-cost-header-on-streaming-response: a stream that never reports usage gets no cost header
    and no cost field at all — the in-band block says why (no_usage)."""
    events = [chat_chunk({"role": "assistant", "content": ""}), chat_chunk({"content": "Hi"}), chat_chunk({}, "stop"),
              b"data: [DONE]\n\n"]
    first = load_case(cases_dir, "13-cost-header-on-streaming-response")["input"]["message_sequence"][0]
    replay(stack, events, re.search(r"content-type ([\w/-]+)", first).group(1))  # text/event-stream
    status, headers, received = raw_post(stack.base_url + "/v1/chat/completions",
                                         b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}', timeout_s=60)
    assert status == 200
    assert "x-nadir-cost-usd" not in headers and "x-nadir-unpriced-reason" not in headers
    (block,) = COMMENT.findall(received)
    f = comment_fields(block)
    assert f["x-nadir-unpriced-reason"] == "no_usage" and "x-nadir-cost-usd" not in f


# ----------------------------------------------------------------------------- case 24
def _case24_requests(stack, case, request_id: str | None = None) -> tuple[str, str]:
    """Send the case's chat request and its Gemini ``?key=`` request, with every header of the case
    (``request_id`` replaces the case's x-request-id when given); returns their trace ids."""
    inp = case["input"]
    h = {k: v for k, v in inp["request_headers"].items() if not k.startswith(":")}
    if request_id is not None:
        h["x-request-id"] = request_id
    t1, tp1 = traceparent()
    status, _, _ = raw_post(stack.base_url + inp["request_headers"][":path"], json.dumps(inp["request_body_fragment"]).encode(),
                            {**h, **tp1, **usage(input=10, output=5)})
    assert status == 200
    t2, tp2 = traceparent()
    gemini = {"contents": [{"role": "user", "parts": [{"text": inp["request_body_fragment"]["messages"][0]["content"]}]}]}
    status, _, _ = raw_post(stack.base_url + inp["request_path_with_key"], json.dumps(gemini).encode(),
                            {**h, **tp2, **usage(input=10, output=5)})
    assert status == 200
    return t1, t2


def test_case_24_no_credential_in_our_spans_metrics_log_or_ledger(stack, receiver, cases_dir):
    """24-no-credentials-in-telemetry through Envoy: the case's REDACTME credentials (authorization,
    x-api-key, api-key, x-goog-api-key, cookie, a key in the prompt, ``?key=`` in a Gemini path)
    appear in no byte nadir-extproc exported (spans and metrics, received by a real OTLP receiver),
    in its process log, or in any ledger file — while the upstream did receive them."""
    case = load_case(cases_dir, "24-no-credentials-in-telemetry")
    forbidden = case["expected"]["forbidden_substrings_in_any_exported_span_log_or_metric"]
    assert forbidden == ["REDACTME"]
    mark = forbidden[0].encode()
    clear_upstream(stack)
    rows = len(ledger_rows(stack.dir / "state"))
    _case24_requests(stack, case)  # exactly the case's headers (x-request-id: req-42)
    # The same again with a UUID x-request-id (both shapes must be sampled and searched).
    t1, t2 = _case24_requests(stack, case, request_id="0d5b7d3e-6a2f-4c1e-9b8a-3f4e5d6c7b8a")
    s1, s2 = our_span(receiver, t1), our_span(receiver, t2)
    assert s1.attrs["gen_ai.provider.name"] == "openai" and s2.attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert len(s1.attrs["nadir.key_id"]) == 16 and s1.attrs["nadir.tag.user"] == "customer-17"
    receiver.wait_for(lambda: len(ledger_rows(stack.dir / "state")) >= rows + 4, 15)
    n = len(receiver.metric_requests)
    receiver.wait_for(lambda: len(receiver.metric_requests) > n + 1, 15)
    # The credentials did travel: the provider got every one of them.
    up = upstream_requests(stack)
    sent = b"".join(r["body"] + json.dumps(r["headers"]).encode() + r["query"].encode() for r in up)
    assert sent.count(mark) >= 16  # 2 x (chat: 5 headers + prompt; gemini: 4 headers + prompt + ?key=)
    ours = b"".join(rs.SerializeToString() for req in list(receiver.trace_requests) for rs in req.resource_spans
                    if any(kv.key == "service.name" and kv.value.string_value == "nadir-extproc" for kv in rs.resource.attributes))
    ours += b"".join(m.SerializeToString() for m in list(receiver.metric_requests))
    assert t1 in ours.hex() or bytes.fromhex(t1) in ours  # our spans are in what we search
    assert mark not in ours
    assert forbidden[0] not in stack.log("extproc")
    files = [f for f in (stack.dir / "state").rglob("*") if f.is_file()]
    assert any(f.name.startswith("ledger.sqlite3") for f in files)
    for f in files:
        assert mark not in f.read_bytes(), f


def test_case_24_no_credential_in_envoys_spans_or_access_log(stack, receiver, cases_dir):
    """24-no-credentials-in-telemetry, Envoy's half: Envoy's spans (exported to the same collector)
    and its access log must not hold the Gemini ``?key=`` either."""
    case = load_case(cases_dir, "24-no-credentials-in-telemetry")
    _, t2 = _case24_requests(stack, case, request_id="5e0c1a2b-3d4e-4f5a-8b6c-7d8e9f0a1b2c")
    env = receiver.wait_for(lambda: [s for s in receiver.spans() if s.service == "nadir-envoy" and s.trace_id == t2
                                     and s.span.name == "ingress"] or None, 30)
    assert b"REDACTME" not in b"".join(s.span.SerializeToString() for s in env)
    assert "REDACTME" not in stack.log("envoy")


def test_case_24_request_with_the_cases_own_request_id_still_gets_its_span(stack, receiver, cases_dir):
    """24-no-credentials-in-telemetry: the case's headers carry ``x-request-id: req-42`` (allowed
    request metadata); the request must still produce its GenAI span."""
    t1, _ = _case24_requests(stack, load_case(cases_dir, "24-no-credentials-in-telemetry"))
    span = our_span(receiver, t1, timeout_s=5)
    assert span is not None and span.trace_id == t1
    assert (span.attrs["gen_ai.provider.name"], span.attrs["nadir.tag.user"]) == ("openai", "customer-17")
