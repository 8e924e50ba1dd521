"""Where our span's parent comes from, through the real grpc.aio service: the ext_proc stream's gRPC
metadata (what Envoy sends), else a ``traceparent`` request header, else a new trace."""

from __future__ import annotations

import json

import grpc
import pytest

from nadir_extproc.config import Settings
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.pb import external_processor_pb2_grpc as ep_grpc
from nadir_extproc.server import Context
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.server import Service
from nadir_extproc.telemetry.context import carrier_from_metadata
from tests.telemetry.memory import MemTelemetry

TRACE_MD = "11111111111111111111111111111111"
SPAN_MD = "2222222222222222"
TRACE_H = "33333333333333333333333333333333"
SPAN_H = "4444444444444444"


def _headers(field: str, h: dict[str, str], eos: bool = False) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in h.items()])
    return ep.ProcessingRequest(**{field: ep.HttpHeaders(headers=hm, end_of_stream=eos)})


def _body(field: str, data: bytes) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{field: ep.HttpBody(body=data, end_of_stream=True)})


async def _one_request(port: int, metadata: tuple, extra_headers: dict[str, str]) -> None:
    req_h = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", **extra_headers}
    resp = {"id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    msgs = [
        _headers("request_headers", req_h),
        _body("request_body", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()),
        _headers("response_headers", {":status": "200", "content-type": "application/json"}),
        _body("response_body", json.dumps(resp).encode()),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ep_grpc.ExternalProcessorStub(ch).Process(metadata=metadata)
        for m in msgs:
            await call.write(m)
            await call.read()
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF


@pytest.mark.parametrize(
    "metadata, headers, want",
    [
        ((("traceparent", f"00-{TRACE_MD}-{SPAN_MD}-01"),), {}, (TRACE_MD, SPAN_MD)),
        ((), {"traceparent": f"00-{TRACE_H}-{SPAN_H}-01"}, (TRACE_H, SPAN_H)),
        ((("traceparent", f"00-{TRACE_MD}-{SPAN_MD}-01"),), {"traceparent": f"00-{TRACE_H}-{SPAN_H}-01"}, (TRACE_MD, SPAN_MD)),
        ((), {}, None),
    ],
    ids=["grpc-metadata", "request-header-fallback", "metadata-wins", "new-trace"],
)
async def test_parent_of_our_span(metadata, headers, want):
    mem = MemTelemetry()
    s = Settings(listen="127.0.0.1:0")
    pol = s.policy()
    ctx = Context(settings=s, router=RuleRouter(pol), policy=pol)
    ctx.add_on_complete(mem.tel.record)
    svc = Service(s, ctx=ctx, telemetry=mem.tel)
    port = await svc.start()
    try:
        await _one_request(port, metadata, headers)
    finally:
        await svc.stop(1)  # also shuts telemetry down, which flushes the span
    (span,) = mem.exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    if want is None:
        assert span.parent is None
    else:
        assert (format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x")) == want


def test_carrier_keeps_only_trace_context_keys():
    md = (("authorization", "Bearer sk-secret"), ("traceparent", "00-a-b-01"), ("TraceState", "k=v"), ("x-other", "1"))
    assert carrier_from_metadata(md) == {"traceparent": "00-a-b-01", "tracestate": "k=v"}
    assert carrier_from_metadata(None) == {}


@pytest.mark.parametrize("tp", [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "garbage",
])
def test_parent_is_what_the_w3c_propagator_reads(tp):
    # parent_context reads plain version-00 traceparents itself; OTel's own propagator is the reference.
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from nadir_extproc.telemetry.context import parent_context

    ref = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": tp})).get_span_context()
    got = parent_context({"traceparent": tp})
    if not ref.is_valid:
        assert got is None
        return
    sc = trace.get_current_span(got).get_span_context()
    assert (sc.trace_id, sc.span_id, sc.trace_flags, sc.is_remote, sc.trace_state) == (
        ref.trace_id, ref.span_id, ref.trace_flags, ref.is_remote, ref.trace_state)
