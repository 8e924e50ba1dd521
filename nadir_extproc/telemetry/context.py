"""Trace context: where our span's parent comes from.

Envoy (>= 1.31) starts a span for the ext_proc gRPC stream and sends its W3C trace context
(``traceparent``, ``tracestate``) in that stream's gRPC metadata; we parent our span from it. When
Envoy does not trace, a ``traceparent`` request header from the client is the fallback (copied by
the processor); with neither, our span starts a new trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.context import Context

from nadir_extproc.traceparent import parse_traceparent
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: The W3C trace-context keys we carry (nothing else from metadata or headers is kept).
KEYS = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()


def carrier_from_metadata(metadata: Iterable[Any] | None) -> dict[str, str]:
    """W3C trace-context entries of gRPC invocation metadata (``(key, value)`` pairs or objects
    with ``.key``/``.value``); ``{}`` when there are none. Never raises."""
    out: dict[str, str] = {}
    if not metadata:
        return out
    try:
        for item in metadata:
            k, v = (item.key, item.value) if hasattr(item, "key") else item
            k = k.lower()
            if k in KEYS and isinstance(v, str):
                out[k] = v
    except (TypeError, ValueError):
        return {}
    return out


def carrier_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """W3C trace-context entries of lowercase request headers; ``{}`` when absent."""
    return {k: headers[k] for k in KEYS if k in headers}


#: The common case, read without the propagator (``nadir_extproc.traceparent``): version 00 alone.
_V00_SHAPE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def parent_context(carrier: Mapping[str, str] | None) -> Context | None:
    """The OTel ``Context`` a W3C carrier describes, or ``None`` (start a new trace) when the
    carrier is empty or its ``traceparent`` is invalid.

    A plain version-00 ``traceparent`` without ``tracestate`` (what Envoy sends) is read here
    directly into the same remote ``SpanContext`` the W3C propagator builds (a third of its
    cost); anything else goes through ``TraceContextTextMapPropagator``."""
    if not carrier or "traceparent" not in carrier:
        return None
    from opentelemetry import trace

    if len(carrier) == 1:
        tp = parse_traceparent(carrier["traceparent"])
        if tp is not None and tp.version == "00":
            sc = trace.SpanContext(int(tp.trace_id, 16), int(tp.span_id, 16), is_remote=True,
                                   trace_flags=trace.TraceFlags(tp.flags))
            return trace.set_span_in_context(trace.NonRecordingSpan(sc), Context())
        if tp is None and _V00_SHAPE.fullmatch(carrier["traceparent"]):
            return None  # a version-00 shape with a zero id: invalid, no parent
    ctx = _PROPAGATOR.extract(carrier=dict(carrier))
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx
