"""Our OTLP span encoding (``telemetry.otlp_encode``) gives exactly the SDK encoder's bytes."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from nadir_extproc.telemetry import otlp_encode

RES = Resource({"service.name": "nadir-extproc", "k": 1})
SCOPE = InstrumentationScope("nadir_extproc", "1", "https://opentelemetry.io/schemas/1.41.1")
ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 14, "gen_ai.usage.cost": 2.7e-06,
         "nadir.stream": False, "gen_ai.response.finish_reasons": ("stop",), "gen_ai.response.id": "chatcmpl-1",
         "nadir.cost.usd": "0.0000027"}


def span(i: int, **kw) -> ReadableSpan:
    parent = kw.pop("parent", SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1)))
    return ReadableSpan(
        name=f"chat auto {i}",
        context=SpanContext(0xABC, 0x100 + i, is_remote=False, trace_flags=TraceFlags(1), trace_state=kw.pop("ts", None)),
        parent=parent, resource=kw.pop("resource", RES), attributes={**ATTRS, "nadir.latency_ms": 1.5 + i, **kw.pop("attrs", {})},
        kind=SpanKind.CLIENT, status=kw.pop("status", Status(StatusCode.UNSET)), start_time=1_000 + i, end_time=2_000 + i,
        instrumentation_scope=kw.pop("scope", SCOPE), events=kw.pop("events", ()),
    )


def test_same_bytes_as_the_sdk_encoder():
    spans = [
        span(0),
        span(1),  # same attribute pairs again: served from the cache
        span(2, parent=None, status=Status(StatusCode.ERROR, "error.type=500"), attrs={"error.type": "500"}),
        span(3, ts=TraceState([("vendor", "x")]), parent=SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))),
        span(4, events=[Event("e", {"a": 1}, timestamp=5)]),  # events: the SDK's own span encoder
        span(5, attrs={"odd": ("a", 1)}),  # a mixed list: SDK path too
        span(6, resource=Resource({"service.name": "other"}), scope=InstrumentationScope("x")),
    ]
    assert otlp_encode.encode_spans(spans).SerializeToString() == sdk_encode_spans(spans).SerializeToString()
    assert otlp_encode.encode_spans(spans[:2]).SerializeToString() == sdk_encode_spans(spans[:2]).SerializeToString()


def test_same_bytes_whatever_the_resource_objects():
    """One Resource object (the fast path: hashed once per batch), equal Resource objects that are
    not the same object (grouped by content, like the SDK), several scopes, and no spans."""
    twin = Resource({"service.name": "nadir-extproc", "k": 1})  # == RES, another object
    other_scope = InstrumentationScope("y", "2")
    batches = [
        [span(0), span(1, scope=other_scope), span(2)],
        [span(0), span(1, resource=twin), span(2), span(3, resource=twin, scope=other_scope)],
        [],
    ]
    for spans in batches:
        assert otlp_encode.encode_spans(spans).SerializeToString() == sdk_encode_spans(spans).SerializeToString()


def test_same_bytes_for_every_attribute_value_shape():
    """The wire writer against the SDK on the value shapes spans carry: negative and large ints,
    zero values (a oneof member is written even when 0, "" or False), non-ASCII text, empty and
    non-ASCII string tuples, a repeated float, a per-request id; and span shapes: no parent, a
    local parent, an empty name, an ERROR status without text."""
    odd = {"i.neg": -5, "i.big": 2**63 - 1, "i.min": -(2**63), "i.zero": 0, "f.zero": 0.0, "f.neg": -1.25e-9,
           "s.empty": "", "s.uni": "prix 0,5 € — 東京", "b.false": False, "b.true": True, "t.empty": (),
           "t.uni": ("é", "", "ß"), "nadir.request_id": "req-1", "gen_ai.usage.cost": 1e-6}
    spans = [
        span(0, attrs=odd),
        span(1, attrs=odd),  # from the cache this time (the unique and float keys never are)
        span(2, parent=None, attrs={"x": 1}),
        span(3, parent=SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))),
        span(4, status=Status(StatusCode.ERROR)),
        span(5, status=Status(StatusCode.OK)),
    ]
    named = ReadableSpan(name="", context=SpanContext(1, 2, is_remote=False), resource=RES, attributes={},
                         kind=SpanKind.INTERNAL, start_time=7, end_time=8, instrumentation_scope=SCOPE)
    for batch in (spans, [named], spans + [named]):
        assert otlp_encode.encode_spans(batch).SerializeToString() == sdk_encode_spans(batch).SerializeToString()
