"""Spans and metrics of real requests through the real Envoy 1.40, received by a real OTLP gRPC
receiver (``otlp_receiver``) that Envoy and nadir-extproc both export to.

Clients are the official SDKs; usage is fixed with the emulator's ``x-emulator-usage`` header, so
every token count and cost below is hand arithmetic (list rates in USD per 1M tokens next to each).
Tiers are pinned with ``x-nadir-tier`` so the routed model does not depend on router tuning.
Marker strings sit in the API key and in every prompt; no exported byte may contain them.
"""

from __future__ import annotations

import json
import time
import urllib.request

import anthropic
import openai
import pytest

from nadir_extproc.stack import Stack, free_port, render_envoy_config
from tests.integration.conftest import traceparent, upstream_requests, usage

MARK_KEY = "sk-MARKERKEYq7Zx-not-a-real-key"
MARK_PROMPT = "MARKERPROMPTv9Lw"
MARKERS = (b"MARKERKEY", b"MARKERPROMPT", MARK_KEY.encode(), MARK_PROMPT.encode())


@pytest.fixture(scope="module")
def stack(receiver):
    prom = free_port()
    env = {
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export spans within ~50 ms (standard OTEL_* variables)
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "NADIR_PROMETHEUS_PORT": str(prom),
    }
    with Stack(otlp_endpoint=receiver.endpoint, extproc_env=env) as s:
        s.prometheus_port = prom
        yield s


def envoy_spans(receiver, trace_id: str, at_least: int = 2, timeout_s: float = 30):
    """Envoy's spans in ``trace_id`` (Envoy flushes its spans every few seconds)."""
    return receiver.wait_for(
        lambda: (lambda xs: xs if len(xs) >= at_least else None)(
            [s for s in receiver.spans() if s.service == "nadir-envoy" and s.trace_id == trace_id]), timeout_s)


@pytest.fixture
def oai(stack):
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=MARK_KEY, max_retries=0)


@pytest.fixture
def claude(stack):
    return anthropic.Anthropic(base_url=stack.base_url, api_key=MARK_KEY, max_retries=0)


def test_chat_span_has_hand_computed_usage_cost_and_routing_and_is_a_child_of_envoys_span(stack, receiver, oai):
    # gpt-4o-mini (0.15 in, 0.075 cache read, 0.60 out): 1000*0.15 + 200*0.075 + 500*0.60 = 465 -> 0.000465
    # baseline gpt-4o (2.50, 1.25, 10): 1000*2.5 + 200*1.25 + 500*10 = 7750 -> 0.00775; saved 0.007285
    raw = oai.chat.completions.with_raw_response.create(
        model="auto", max_tokens=64, temperature=0.2,
        messages=[{"role": "user", "content": f"What's the capital of France? {MARK_PROMPT}"}],
        extra_headers={**usage(input=1000, cache_read=200, output=500, reasoning=100),
                       "x-nadir-tier": "weak", "x-nadir-team": "search", "x-nadir-feature": "faq"},
    )
    completion = raw.parse()
    assert raw.headers["x-nadir-cost-usd"] == "0.000465"
    s = receiver.our_span(lambda s: s.attrs.get("gen_ai.response.id") == completion.id)
    a = s.attrs
    assert s.span.name == "chat auto"
    assert s.span.kind == 3  # SPAN_KIND_CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "auto"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.usage.input_tokens"] == 1200  # all input: 1000 uncached + 200 cached
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.usage.output_tokens"] == 500
    assert a["gen_ai.usage.reasoning.output_tokens"] == 100
    assert "gen_ai.usage.cache_creation.input_tokens" not in a
    assert a["nadir.cost.usd"] == "0.000465"
    assert a["gen_ai.usage.cost"] == 0.000465
    assert a["nadir.cost.saved_usd"] == "0.007285"
    assert a["nadir.cost.baseline_model"] == "gpt-4o"
    assert a["nadir.route.tier"] == "weak"
    assert a["nadir.route.model"] == "gpt-4o-mini"
    assert a["nadir.tag.team"] == "search" and a["nadir.tag.feature"] == "faq"
    assert a["nadir.stream"] is False
    assert a["nadir.latency_ms"] > 0
    assert len(a["nadir.key_id"]) == 16 and a["nadir.key_id"] not in MARK_KEY

    # One trace: Envoy's ingress span -> Envoy's span for the ext_proc gRPC stream -> ours.
    env = {e.span_id: e for e in envoy_spans(receiver, s.trace_id)}
    parent = env[s.parent_span_id]
    assert "ExternalProcessor" in parent.span.name
    root = env[parent.parent_span_id]
    assert root.parent_span_id == ""  # Envoy started this trace (the client sent no traceparent)


def test_client_traceparent_is_continued_by_envoy_and_us(stack, receiver, oai):
    tid, tp = traceparent()
    oai.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"hi {MARK_PROMPT}"}],
                                extra_headers={**tp, **usage(input=10, output=5), "x-nadir-tier": "weak"})
    s = receiver.our_span(lambda s: s.trace_id == tid)
    assert s.parent_span_id in {e.span_id for e in envoy_spans(receiver, tid)}


def test_anthropic_cache_reads_and_writes_count_as_input(stack, receiver, claude):
    # claude-haiku-4-5 (1 in, 0.10 cache read, 1.25 cache write 5m, 5 out):
    #   100*1 + 2000*0.10 + 300*1.25 + 400*5 = 100 + 200 + 375 + 2000 = 2675 -> 0.002675
    # baseline claude-sonnet-4-5 (3, 0.30, 3.75, 15): 300 + 600 + 1125 + 6000 = 8025 -> 0.008025; saved 0.00535
    tid, tp = traceparent()
    msg = claude.messages.create(
        model="auto", max_tokens=256, system=f"You are terse. {MARK_PROMPT}",
        messages=[{"role": "user", "content": f"Say hello. {MARK_PROMPT}"}],
        extra_headers={**tp, **usage(input=100, cache_read=2000, cache_write=300, output=400), "x-nadir-tier": "weak"},
    )
    s = receiver.our_span(lambda s: s.trace_id == tid)
    a = s.attrs
    assert s.span.name == "chat auto"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.response.id"] == msg.id
    assert a["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.usage.input_tokens"] == 2400  # 100 + 2000 + 300
    assert a["gen_ai.usage.cache_read.input_tokens"] == 2000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 300
    assert a["gen_ai.usage.output_tokens"] == 400
    assert a["nadir.cost.usd"] == "0.002675"
    assert a["nadir.cost.saved_usd"] == "0.00535"
    assert a["nadir.cost.baseline_model"] == "claude-sonnet-4-5"


def test_streaming_span_ends_after_the_last_event_and_carries_its_usage(stack, receiver, oai):
    """23-otel-span-lifecycle-streaming-usage S1: the span ends after the final usage event."""
    # gpt-4o-mini: 40*0.15 + 7*0.60 = 6 + 4.2 = 10.2 -> 0.0000102
    tid, tp = traceparent()
    received: list[int] = []
    stream = oai.chat.completions.create(
        model="auto", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"Count to three. {MARK_PROMPT}"}],
        extra_headers={**tp, **usage(input=40, output=7), "x-nadir-tier": "weak", "x-emulator-chunk-delay-ms": "250"},
    )
    chunks = []
    for chunk in stream:
        received.append(time.time_ns())
        chunks.append(chunk)
    last = chunks[-1]
    assert last.usage is not None and last.usage.prompt_tokens == 40
    assert len(received) >= 3
    s = receiver.our_span(lambda s: s.trace_id == tid)
    a = s.attrs
    assert a["nadir.stream"] is True and a["nadir.stream.cut"] is False
    # usage arrives only in the final event: its presence on the span means the span ended after it
    assert a["gen_ai.usage.input_tokens"] == 40
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["nadir.cost.usd"] == "0.0000102"
    # the stream's id and finish reason, as the client saw them in the chunks
    assert a["gen_ai.response.id"] == chunks[0].id
    assert a["gen_ai.response.finish_reasons"] == [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    # The span ends after the last event: the emulator sends `data: [DONE]` 250 ms after the usage
    # chunk (the SDK's last item), and the span ends once [DONE] has gone through. It started
    # before the first event arrived.
    assert s.span.end_time_unix_nano > received[-1]
    assert s.span.start_time_unix_nano < received[0]


def test_cancelled_stream_span_ends_at_the_cut_with_what_is_known(stack, receiver, oai):
    """23-otel-span-lifecycle-streaming-usage S3: client gone mid-stream -> span ended, cut, no usage."""
    tid, tp = traceparent()
    stream = oai.chat.completions.create(
        model="auto", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"Count to three. {MARK_PROMPT}"}],
        extra_headers={**tp, **usage(input=40, output=7), "x-nadir-tier": "weak", "x-emulator-chunk-delay-ms": "300"},
    )
    it = iter(stream)
    next(it)
    next(it)
    closed_at = time.time_ns()
    stream.close()  # the client goes away after two events
    s = receiver.our_span(lambda s: s.trace_id == tid)
    a = s.attrs
    assert a["nadir.stream"] is True and a["nadir.stream.cut"] is True
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert not [k for k in a if k.startswith("gen_ai.usage.")]  # the usage event never came: unknown
    assert s.span.end_time_unix_nano > closed_at


def test_provider_error_span_has_error_status_and_type(stack, receiver, oai):
    tid, tp = traceparent()
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"hi {MARK_PROMPT}"}],
                                    extra_headers={**tp, "x-emulator-status": "429"})
    s = receiver.our_span(lambda s: s.trace_id == tid)
    assert s.span.status.code == 2  # STATUS_CODE_ERROR
    assert s.attrs["error.type"] == "429"
    assert s.attrs["http.response.status_code"] == 429
    assert s.attrs["nadir.cost.unpriced_reason"] == "provider_error"
    assert not [k for k in s.attrs if k.startswith("gen_ai.usage.")]


def test_metrics_reach_the_collector_and_prometheus(stack, receiver, oai):
    # gpt-4o-mini: 1000*0.15 + 500*0.60 = 450 -> 0.00045 USD, booked to team "metrics-team"
    oai.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"hi {MARK_PROMPT}"}],
                                extra_headers={**usage(input=1000, output=500), "x-nadir-tier": "weak",
                                               "x-nadir-team": "metrics-team", "x-nadir-user": "user-4711"})
    url = f"http://127.0.0.1:{stack.prometheus_port}/metrics"

    def cost_line():
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        hits = [ln for ln in text.splitlines() if ln.startswith("nadir_llm_cost_USD_total{") and 'nadir_tag_team="metrics-team"' in ln]
        return (hits, text) if hits else None

    (hits, text) = receiver.wait_for(cost_line, 10)  # on_complete runs just after the response
    assert len(hits) == 1 and hits[0].endswith(" 0.00045")
    assert "user-4711" not in text  # the user tag is never a label
    assert receiver.wait_for(lambda: {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "nadir.llm.cost",
                                      "nadir.router.decisions"} <= receiver.metric_names(), 15)


def test_no_raw_key_or_prompt_text_in_any_exported_byte(stack, receiver, oai, claude):
    # Markers go in both APIs once more, then we wait for their spans and a later metrics export.
    t1, tp1 = traceparent()
    t2, tp2 = traceparent()
    # (the body's ``user`` field is an identifier, not prompt text: it becomes the user tag)
    oai.chat.completions.create(model="auto", user="end-user-42",
                                messages=[{"role": "system", "content": MARK_PROMPT}, {"role": "user", "content": MARK_PROMPT}],
                                extra_headers={**tp1, **usage(input=3, output=2)})
    claude.messages.create(model="auto", max_tokens=16, messages=[{"role": "user", "content": MARK_PROMPT}],
                           extra_headers={**tp2, **usage(input=3, output=2)})
    assert receiver.our_span(lambda s: s.trace_id == t1).attrs["nadir.tag.user"] == "end-user-42"
    receiver.our_span(lambda s: s.trace_id == t2)
    envoy_spans(receiver, t2)
    n = len(receiver.metric_requests)
    receiver.wait_for(lambda: len(receiver.metric_requests) > n + 1, 15)
    # the markers did travel: the upstream got the key and the prompt
    sent = b"".join(r["body"] + json.dumps(r["headers"]).encode() for r in upstream_requests(stack))
    assert MARK_KEY.encode() in sent and MARK_PROMPT.encode() in sent
    exported = receiver.all_bytes()
    assert len(exported) > 0
    for m in MARKERS:
        if m in exported:
            i = exported.index(m)
            raise AssertionError(f"{m!r} exported: ...{exported[max(0, i - 200):i + 60]!r}")


def test_processes_logs_hold_no_marker_either(stack):
    for name in ("extproc", "envoy"):
        log = stack.log(name)
        assert "MARKERKEY" not in log and "MARKERPROMPT" not in log, name


def test_render_replaces_only_the_collector_port():
    # The shipped envoy.yaml (with its tracing block) is what the stack ran; the lifecycle tests
    # validate it with `envoy --mode validate`.

    cfg = render_envoy_config(listen_port=1, admin_port=2, extproc_port=3, upstream_port=4, otlp_port=4999)
    (c,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "opentelemetry_collector"]
    assert c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 4999
    default = render_envoy_config(listen_port=1, admin_port=2, extproc_port=3, upstream_port=4)
    (d,) = [c for c in default["static_resources"]["clusters"] if c["name"] == "opentelemetry_collector"]
    assert d["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 4317
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["tracing"]["provider"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == "opentelemetry_collector"
