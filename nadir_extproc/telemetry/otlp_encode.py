"""OTLP span encoding for the export thread, byte for byte what the SDK's ``encode_spans`` gives.

The OTel exporter (``opentelemetry-exporter-otlp-proto-common``) builds two protobuf messages per
attribute per span (``KeyValue`` + ``AnyValue``) through a chain of ``isinstance`` checks and then
copies them into the ``Span`` message: about 105-200 us per GenAI span of 25 attributes on this
machine, more than any other per-request cost of our telemetry (bench/results). Here a span is
written straight in the protobuf wire format (the OTLP ``trace.proto`` field numbers below), and
the wire bytes of an attribute pair that repeats from request to request (operation, provider,
models, tier, router, dialect, catalogue, key id, tags) are built once and reused; floats and
per-request ids are never cached; the cache is bounded. The batch's bytes are parsed once into
the ``ExportTraceServiceRequest`` the exporter sends (upb: ~2 us per span): ~10 us per span in
all, against ~84 us when the messages were built from cached ``KeyValue`` objects.

``encode_spans`` returns the same ``ExportTraceServiceRequest`` as the SDK function (checked
byte for byte in ``tests/telemetry/test_otlp_encode.py``); spans with events or links, or an
attribute value of another type (or an int outside int64, a string that is not UTF-8), are
encoded by the SDK's own ``_encode_span``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import _encode_instrumentation_scope, _encode_resource
from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder as _sdk
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

#: Attribute keys whose values are unique per request (never worth caching).
_UNIQUE_KEYS = frozenset({"gen_ai.response.id", "nadir.request_id", "http.request.id"})
_CACHE_MAX = 8192
#: (key, type, value) -> the wire bytes of ``Span.attributes`` entry (field 9) for that pair.
_cache: dict[tuple[str, type, Any], bytes] = {}
_float_heads: dict[str, bytes] = {}  # key -> the entry's bytes before a float attribute's 8 bytes
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_INT64 = 1 << 63
_double = struct.Struct("<d").pack
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack


class _Fallback(Exception):
    pass


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of ``n`` >= 0."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` (one byte here), length, payload."""
    return tag + _varint(len(payload)) + payload


# Wire tags ((field number << 3) | wire type) of common.proto's AnyValue and KeyValue:
# AnyValue string_value 1, bool_value 2, int_value 3 (int64), double_value 4, array_value 5;
# ArrayValue values 1; KeyValue key 1, value 2.
def _any(v: Any) -> bytes:
    """The ``AnyValue`` bytes of an attribute value (a oneof: always written, even 0 / "")."""
    t = type(v)
    try:
        if t is str:
            return _ld(b"\x0a", v.encode("utf-8"))
        if t is bool:
            return b"\x10\x01" if v else b"\x10\x00"
        if t is int:
            if not -_INT64 <= v < _INT64:
                raise _Fallback
            return b"\x18" + _varint(v if v >= 0 else v + (1 << 64))
        if t is float:
            return b"\x21" + _double(v)
        if t is tuple and all(type(x) is str for x in v):
            return _ld(b"\x2a", b"".join(_ld(b"\x0a", _ld(b"\x0a", x.encode("utf-8"))) for x in v))
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8
        raise _Fallback from None
    raise _Fallback


def _attr(key: str, value: Any) -> bytes:
    """``Span.attributes`` (field 9) entry bytes for one pair, cached unless per-request."""
    t = type(value)
    if t is float:  # never cached; its key's bytes are (the entry's length does not depend on the value)
        head = _float_heads.get(key)
        if head is None:
            kf = _ld(b"\x0a", key.encode("utf-8"))
            head = b"\x4a" + _varint(len(kf) + 11) + kf + b"\x12\x09\x21"  # value: AnyValue{double_value}
            if len(_float_heads) < _CACHE_MAX:
                _float_heads[key] = head
        return head + _double(value)
    ck = (key, t, value)
    m = _cache.get(ck)
    if m is not None:
        return m
    try:
        k = key.encode("utf-8")
    except UnicodeEncodeError:
        raise _Fallback from None
    m = _ld(b"\x4a", _ld(b"\x0a", k) + _ld(b"\x12", _any(value)))
    if key not in _UNIQUE_KEYS:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[ck] = m
    return m


def _span(s: Any) -> bytes:
    """One ``Span`` (trace.proto) as wire bytes; the SDK's encoder for what is not ours to write."""
    if s.events or s.links:
        return _sdk._encode_span(s).SerializeToString()
    try:
        attrs = [_attr(k, v) for k, v in s.attributes.items()] if s.attributes else ()
        sc = s.get_span_context()
        parent = s.parent
        # trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6 (enum),
        # start 7 / end 8 (fixed64), attributes 9, dropped counts 10 / 12 / 14, status 15, flags 16.
        out = [b"\x0a\x10", sc.trace_id.to_bytes(16, "big"), b"\x12\x08", sc.span_id.to_bytes(8, "big")]
        ts = _sdk._encode_trace_state(sc.trace_state)
        if ts:
            out.append(_ld(b"\x1a", ts.encode("utf-8")))
        if parent:
            out += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        if s.name:
            out.append(_ld(b"\x2a", s.name.encode("utf-8")))
        kind = _sdk._SPAN_KIND_MAP[s.kind]
        if kind:
            out += (b"\x30", _varint(kind))
        if s.start_time:
            out += (b"\x39", _fixed64(s.start_time))
        if s.end_time:
            out += (b"\x41", _fixed64(s.end_time))
        out += attrs
        for tag, n in ((b"\x50", s.dropped_attributes), (b"\x60", s.dropped_events), (b"\x70", s.dropped_links)):
            if n:
                out += (tag, _varint(n))
        st = s.status
        if st is not None:  # Status: message 2, code 3 (a set message is written even when empty)
            desc, code = st.description, st.status_code.value
            out.append(_ld(b"\x7a", (_ld(b"\x12", desc.encode("utf-8")) if desc else b"") + (b"\x18" + _varint(code) if code else b"")))
        out += (b"\x85\x01", _fixed32(_HAS_IS_REMOTE | (_IS_REMOTE if parent and parent.is_remote else 0)))
        return b"".join(out)
    except (_Fallback, UnicodeEncodeError):
        return _sdk._encode_span(s).SerializeToString()


def encode_spans(spans: Sequence[Any]) -> ExportTraceServiceRequest:
    """``opentelemetry…trace_encoder.encode_spans``, written as wire bytes (same message)."""
    groups: dict[Any, dict[Any, list[bytes]]] = {}
    first = spans[0].resource if spans else None
    if all(s.resource is first for s in spans):
        # One tracer provider, one Resource object: hashed once per batch, not per span (the
        # SDK's Resource.__hash__ JSON-dumps its attributes, ~4 us; bench/results).
        scopes: dict[Any, list[bytes]] = {}
        for s in spans:
            scopes.setdefault(s.instrumentation_scope or None, []).append(_span(s))
        if scopes:
            groups[first] = scopes
    else:
        for s in spans:
            scope = s.instrumentation_scope or None
            groups.setdefault(s.resource, {}).setdefault(scope, []).append(_span(s))
    # ExportTraceServiceRequest.resource_spans 1; ResourceSpans: resource 1, scope_spans 2,
    # schema_url 3; ScopeSpans: scope 1, spans 2, schema_url 3.
    out = []
    for res, scopes in groups.items():
        rs = [_ld(b"\x0a", _encode_resource(res).SerializeToString())]
        for scope, pb in scopes.items():
            ss = []
            enc = _encode_instrumentation_scope(scope)
            if enc is not None:
                ss.append(_ld(b"\x0a", enc.SerializeToString()))
            ss += [_ld(b"\x12", b) for b in pb]
            if scope is not None and scope.schema_url:
                ss.append(_ld(b"\x1a", scope.schema_url.encode("utf-8")))
            rs.append(_ld(b"\x12", b"".join(ss)))
        if res.schema_url:
            rs.append(_ld(b"\x1a", res.schema_url.encode("utf-8")))
        out.append(_ld(b"\x0a", b"".join(rs)))
    return ExportTraceServiceRequest.FromString(b"".join(out))
