"""OTLP span encoding for the export thread, byte for byte what the SDK's ``encode_spans`` gives.

The OTel exporter (``opentelemetry-exporter-otlp-proto-common``) builds two protobuf messages per
attribute per span (``KeyValue`` + ``AnyValue``) through a chain of ``isinstance`` checks: about
105 µs per GenAI span of 25 attributes on this machine, more than any other per-request cost of
our telemetry (bench/results). Most attribute pairs repeat from request to request (operation,
provider, models, tier, router, dialect, catalogue, key id, tags), so the ``KeyValue`` of a pair
is built once and reused (protobuf copies it into each span): ~33 µs per span. Floats and
per-request ids are never cached; the cache is bounded.

``encode_spans`` returns the same ``ExportTraceServiceRequest`` as the SDK function (checked
byte for byte in ``tests/telemetry/test_otlp_encode.py``); spans with events or links, or an
attribute value of another type, are encoded by the SDK's own ``_encode_span``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import _encode_instrumentation_scope, _encode_resource
from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder as _sdk
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

#: Attribute keys whose values are unique per request (never worth caching).
_UNIQUE_KEYS = frozenset({"gen_ai.response.id", "nadir.request_id", "http.request.id"})
_CACHE_MAX = 8192
_cache: dict[tuple[str, type, Any], KeyValue] = {}
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class _Fallback(Exception):
    pass


def _kv(key: str, value: Any) -> KeyValue:
    t = type(value)
    if t is float:
        return KeyValue(key=key, value=AnyValue(double_value=value))
    ck = (key, t, value)
    m = _cache.get(ck)
    if m is not None:
        return m
    if t is str:
        m = KeyValue(key=key, value=AnyValue(string_value=value))
    elif t is bool:
        m = KeyValue(key=key, value=AnyValue(bool_value=value))
    elif t is int:
        m = KeyValue(key=key, value=AnyValue(int_value=value))
    elif t is tuple and all(type(x) is str for x in value):
        m = KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=x) for x in value])))
    else:
        raise _Fallback
    if key not in _UNIQUE_KEYS:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[ck] = m
    return m


def _span(s: Any) -> Span:
    if s.events or s.links:
        return _sdk._encode_span(s)
    sc = s.get_span_context()
    parent = s.parent
    st = s.status
    try:
        attrs = [_kv(k, v) for k, v in s.attributes.items()] if s.attributes else None
    except _Fallback:
        return _sdk._encode_span(s)
    return Span(
        trace_id=sc.trace_id.to_bytes(16, "big"),
        span_id=sc.span_id.to_bytes(8, "big"),
        trace_state=_sdk._encode_trace_state(sc.trace_state),
        parent_span_id=parent.span_id.to_bytes(8, "big") if parent else None,
        name=s.name,
        kind=_sdk._SPAN_KIND_MAP[s.kind],
        start_time_unix_nano=s.start_time,
        end_time_unix_nano=s.end_time,
        attributes=attrs,
        status=Status(code=st.status_code.value, message=st.description) if st is not None else None,
        dropped_attributes_count=s.dropped_attributes,
        dropped_events_count=s.dropped_events,
        dropped_links_count=s.dropped_links,
        flags=_HAS_IS_REMOTE | (_IS_REMOTE if parent and parent.is_remote else 0),
    )


def encode_spans(spans: Sequence[Any]) -> ExportTraceServiceRequest:
    """``opentelemetry…trace_encoder.encode_spans`` with cached attribute pairs (same bytes)."""
    groups: dict[Any, dict[Any, list[Span]]] = {}
    first = spans[0].resource if spans else None
    if all(s.resource is first for s in spans):
        # One tracer provider, one Resource object: hashed once per batch, not per span (the
        # SDK's Resource.__hash__ JSON-dumps its attributes, ~4 us; bench/results).
        scopes: dict[Any, list[Span]] = {}
        for s in spans:
            scopes.setdefault(s.instrumentation_scope or None, []).append(_span(s))
        if scopes:
            groups[first] = scopes
    else:
        for s in spans:
            scope = s.instrumentation_scope or None
            groups.setdefault(s.resource, {}).setdefault(scope, []).append(_span(s))
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(
            resource=_encode_resource(res),
            scope_spans=[ScopeSpans(scope=_encode_instrumentation_scope(scope), spans=pb,
                                    schema_url=scope.schema_url if scope else None)
                         for scope, pb in scopes.items()],
            schema_url=res.schema_url,
        )
        for res, scopes in groups.items()
    ])
