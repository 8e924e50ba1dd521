"""One GenAI span per LLM request, built only from the request's ``Outcome``.

Span name ``{gen_ai.operation.name} {gen_ai.request.model}`` (``chat auto``), kind CLIENT, start
and end at the request's wall-clock times (``Outcome.start_ns`` / ``end_ns``: the ext_proc stream's
start and the end of the response — for a stream, after its last event, or at the cut). Attribute
names are in ``names``; values:

- usage (tokens): ``gen_ai.usage.input_tokens`` is *all* input (uncached + cache reads + cache
  writes), ``output_tokens`` includes reasoning. When usage is unknown every usage attribute is
  absent; the cache and reasoning attributes are set only when non-zero (``Usage`` cannot tell a
  reported 0 from an absent field), so no attribute ever claims a 0 nobody reported.
- money (USD): exact decimal strings under ``nadir.cost.*``; ``gen_ai.usage.cost`` as a float.
- provider errors (HTTP status >= 400): span status ERROR and ``error.type`` = the status code.
- no raw keys, no prompt or response text unless ``capture_content`` (opt-in).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from time import time_ns

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import sampling as _sampling
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer, get_current_span

from nadir_extproc.pricing.money import format_usd
from nadir_extproc import providers
from nadir_extproc.dialects import DIALECTS
from nadir_extproc.record import Outcome, Result
from nadir_extproc.telemetry import names as n
from nadir_extproc.telemetry.context import parent_context

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class _Enabled:
    is_enabled = True


_ENABLED = _Enabled()


def operation_name(out: Outcome) -> str:
    """``gen_ai.operation.name`` of the outcome's dialect (the dialect owns it; ``chat`` when
    unknown)."""
    d = DIALECTS.get(out.dialect or "")
    return d.operation if d is not None else n.DEFAULT_OPERATION


def provider_name(out: Outcome) -> str | None:
    """``gen_ai.provider.name`` for the outcome's provider id (the id itself when the convention
    has no well-known value for it)."""
    return providers.otel_name(out.provider)


def span_name(out: Outcome) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``; just the operation when the model is
    unknown."""
    op = operation_name(out)
    return f"{op} {out.requested_model}" if out.requested_model else op


def error_type(out: Outcome) -> str | None:
    """``error.type``: the outcome's own ``error_type`` if set, else the HTTP status (>= 400) as
    a string, else ``"provider_error"`` for an error reported inside a 200 stream, else ``None``
    (a cut stream is not an error by itself: see ``nadir.stream.cut``)."""
    et = out.error_type
    if et:
        return str(et)
    status = out.status
    if status is not None and status >= 400:
        return str(status)
    return "provider_error" if out.result == Result.PROVIDER_ERROR else None


def is_cut(out: Outcome) -> bool:
    """True when the response never reached its end (client or upstream cut the stream)."""
    return out.cut


def identity_attributes(out: Outcome, prov: str | None) -> dict[str, Any]:
    """The GenAI identity attributes spans and metrics share: ``gen_ai.operation.name``,
    ``gen_ai.provider.name`` (``prov``), ``gen_ai.request.model``, ``gen_ai.response.model``
    (those known)."""
    a: dict[str, Any] = {n.OPERATION_NAME: operation_name(out)}
    if prov:
        a[n.PROVIDER_NAME] = prov
    if out.requested_model:
        a[n.REQUEST_MODEL] = out.requested_model
    if out.response_model:
        a[n.RESPONSE_MODEL] = out.response_model
    return a


def span_attributes(out: Outcome, *, emit_usage_cost: bool = True, capture_content: bool = False) -> dict[str, Any]:
    """All span attributes for one ``Outcome`` (name -> str | bool | int | float | list[str]).

    Reads ``Outcome`` fields only, typed. Never includes ``None`` values."""
    a = identity_attributes(out, provider_name(out))
    if out.dialect:
        a[n.DIALECT] = out.dialect
    rid = out.response_id
    if rid:
        a[n.RESPONSE_ID] = rid
    reasons = out.finish_reasons
    if reasons:
        a[n.RESPONSE_FINISH_REASONS] = list(reasons)
    params = out.request_params
    for k, v in params.items():
        if v is not None:
            a[k] = v
    if out.status is not None:
        a[n.HTTP_STATUS] = out.status
    et = error_type(out)
    if et:
        a[n.ERROR_TYPE_ATTR] = et

    u = out.usage
    if u is not None:
        a[n.USAGE_INPUT_TOKENS] = u.input_tokens
        a[n.USAGE_OUTPUT_TOKENS] = u.output_tokens
        if u.cache_read_tokens:
            a[n.USAGE_CACHE_READ_INPUT_TOKENS] = u.cache_read_tokens
        writes = u.cache_write_tokens + u.cache_write_1h_tokens
        if writes:
            a[n.USAGE_CACHE_CREATION_INPUT_TOKENS] = writes
        if u.reasoning_tokens:
            a[n.USAGE_REASONING_OUTPUT_TOKENS] = u.reasoning_tokens

    cost = out.cost
    if cost is not None and cost.total_usd is not None:
        a[n.COST_USD] = format_usd(cost.total_usd)
        a[n.COST_CATALOGUE] = cost.catalogue
        if emit_usage_cost:
            a[n.USAGE_COST] = float(cost.total_usd)
        if cost.reported_usd is not None:
            a[n.COST_REPORTED_USD] = format_usd(cost.reported_usd)
            if cost.catalogue_usd is not None:
                a[n.COST_CATALOGUE_USD] = format_usd(cost.catalogue_usd)
    if cost is not None and cost.corrections:
        a[n.COST_CORRECTIONS] = list(cost.corrections)
    partial = out.partial_cost
    if partial is not None and partial.total_usd is not None:
        a[n.COST_PARTIAL_USD] = format_usd(partial.total_usd)
    unpriced = out.unpriced
    if unpriced:
        a[n.COST_UNPRICED_REASON] = unpriced
    if out.saved_usd is not None:
        a[n.COST_SAVED_USD] = format_usd(out.saved_usd)
    base = out.baseline
    if base is not None:
        bm = base.model
        if bm:
            a[n.COST_BASELINE_MODEL] = bm
        if base.total_usd is not None:
            a[n.COST_BASELINE_USD] = format_usd(base.total_usd)

    if out.routed_model:
        a[n.ROUTE_MODEL] = out.routed_model
    d = out.decision
    if d is not None:
        a[n.ROUTE_TIER] = d.tier
        a[n.ROUTE_REASON] = d.reason
        a[n.ROUTE_ROUTER] = d.router
        if d.score is not None:
            a[n.ROUTE_SCORE] = float(d.score)
    rms = out.router_ms
    if rms is not None:
        a[n.ROUTE_LATENCY_MS] = float(rms)
    sh = out.shadow
    if sh is not None:  # shadow routing (issue 21): explicit-model requests only
        a[n.SHADOW_TIER] = sh.tier
        a[n.SHADOW_MODEL] = sh.model
        a[n.SHADOW_ROUTER] = sh.router
        if sh.score is not None:
            a[n.SHADOW_SCORE] = float(sh.score)
        sc = out.shadow_cost
        if sc is not None and sc.total_usd is not None:
            a[n.SHADOW_COST_USD] = format_usd(sc.total_usd)
        if out.opportunity_usd is not None:
            a[n.SHADOW_OPPORTUNITY_USD] = format_usd(out.opportunity_usd)
    a[n.PROCESSING_LATENCY_MS] = float(out.latency_ms)
    a[n.STREAM] = bool(out.stream)
    if out.stream:
        a[n.STREAM_CUT] = is_cut(out)

    tags = out.tags
    for k, v in tags.items():
        if isinstance(k, str) and isinstance(v, str):
            a[n.TAG_PREFIX + k] = v
    kid = out.key_id
    if kid:
        a[n.KEY_ID] = str(kid)
    if capture_content:
        for k, v in (out.content or {}).items():
            a[k] = v
    return a


def record_span(tracer: Tracer, out: Any, *, emit_usage_cost: bool = True, capture_content: bool = False) -> None:
    """Start and end the request's span on ``tracer``, parented from ``out.trace_carrier``.

    Start/end times are ``out.start_ns`` / ``out.end_ns`` (Unix ns); the span is handed to the
    tracer provider's processors (the batch processor queues it; nothing is exported here).

    With the SDK's default sampler (parent-based, always on) the finished span is built directly
    as the ``ReadableSpan`` the SDK would produce and handed to the processors' ``on_end``: the
    same span (ids from the provider's id generator, the parent's trace state, resource and
    scope), without the live-span machinery and per-value attribute checks that cost more than
    the rest of our telemetry (bench/results). Our attributes are built here from plain str,
    bool, int, float and str lists, so there is nothing to check. Any other sampler, or a
    non-SDK tracer, takes the SDK's own path."""
    ctx = parent_context(out.trace_carrier)
    attrs = span_attributes(out, emit_usage_cost=emit_usage_cost, capture_content=capture_content)
    start = out.start_ns
    end = out.end_ns
    et = attrs.get(n.ERROR_TYPE_ATTR)
    if getattr(tracer, "sampler", None) is _sampling.DEFAULT_ON and getattr(tracer, "_tracer_config", _ENABLED).is_enabled:
        _emit_finished(tracer, span_name(out), ctx, attrs, start, end, et)
        return
    span = tracer.start_span(span_name(out), context=ctx, kind=SpanKind.CLIENT, attributes=attrs, start_time=start)
    if et:
        span.set_status(Status(StatusCode.ERROR, f"error.type={et}"))
    span.end(end_time=end)


_UNSET = Status(StatusCode.UNSET)


def _emit_finished(tracer: Any, name: str, ctx: Any, attrs: dict[str, Any], start: int | None, end: int | None, et: str | None) -> None:
    """The SDK tracer's ``start_span`` + ``end`` for a CLIENT span under ``ParentBased(ALWAYS_ON)``,
    as one ``ReadableSpan`` handed to ``on_end`` (see ``record_span``)."""
    parent = get_current_span(ctx).get_span_context() if ctx is not None else None
    if parent is not None and parent.is_valid:
        if not parent.trace_flags.sampled:
            return  # ParentBased: an unsampled parent makes a non-recording span (nothing exported)
        trace_id, trace_state = parent.trace_id, parent.trace_state
    else:
        parent = None
        trace_id, trace_state = tracer.id_generator.generate_trace_id(), None
    sc = SpanContext(trace_id, tracer.id_generator.generate_span_id(), is_remote=False,
                     trace_flags=_SAMPLED, trace_state=trace_state)
    now = time_ns()
    span = ReadableSpan(
        name=name, context=sc, parent=parent, resource=tracer.resource,
        attributes={k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items() if v is not None},
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, f"error.type={et}") if et else _UNSET,
        start_time=start if start is not None else now, end_time=end if end is not None else now,
        instrumentation_scope=tracer._instrumentation_scope, instrumentation_info=tracer.instrumentation_info,
    )
    tracer.span_processor.on_end(span)
