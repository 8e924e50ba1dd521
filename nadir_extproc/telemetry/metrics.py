"""Metrics per finished request, built only from its ``Outcome`` (names in ``names``).

- ``gen_ai.client.token.usage`` (histogram, ``{token}``, the convention's buckets): one input and
  one output record per request with known usage, ``gen_ai.token.type`` = ``input``/``output``.
- ``gen_ai.client.operation.duration`` (histogram, s): stream start to response end.
- ``nadir.llm.cost`` / ``nadir.llm.savings`` (counters, USD) by provider, model, feature, team,
  environment.
- ``nadir.router.decisions`` (counter) by tier, router, provider.
- ``nadir.unpriced.requests`` (counter) by reason, provider.
- ``nadir.extproc.processing.duration`` (histogram, s): our own time on the request.

Label sets are bounded: ``user`` tags and key ids never become labels; models are client or
provider names, bounded in the end by the SDK's per-metric cardinality limit (2000 sets).
USD values are converted from ``Decimal`` to float only here, at the metric boundary.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter

from nadir_extproc.telemetry import names as n
from nadir_extproc.telemetry.spans import error_type, operation_name, provider_name


class RequestMetrics:
    """The instruments, created once on ``meter``; ``record(outcome)`` per finished request."""

    def __init__(self, meter: Meter) -> None:
        self.tokens = meter.create_histogram(
            n.M_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(n.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            n.M_OPERATION_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS_S),
        )
        self.cost = meter.create_counter(n.M_COST, unit="USD", description="Cost of LLM calls (list prices).")
        self.savings = meter.create_up_down_counter(
            n.M_SAVINGS, unit="USD", description="Saving vs the provider's baseline model (negative when routing cost more)."
        )
        self.decisions = meter.create_counter(n.M_ROUTER_DECISIONS, unit="{decision}", description="Routing decisions.")
        self.unpriced = meter.create_counter(n.M_UNPRICED, unit="{request}", description="Requests without a cost, by reason.")
        self.processing = meter.create_histogram(
            n.M_PROCESSING_DURATION, unit="s", description="Time nadir-extproc spent on a request (all phases).",
            explicit_bucket_boundaries_advisory=list(n.PROCESSING_BUCKETS_S),
        )

    def record(self, out: Any) -> None:
        """Record one finished request's metrics."""
        prov = provider_name(out)
        op = operation_name(out)
        base: dict[str, Any] = {n.OPERATION_NAME: op}
        if prov:
            base[n.PROVIDER_NAME] = prov
        if out.requested_model:
            base[n.REQUEST_MODEL] = out.requested_model
        if out.response_model:
            base[n.RESPONSE_MODEL] = out.response_model
        u = out.usage
        if u is not None:
            self.tokens.record(u.input_tokens, {**base, n.TOKEN_TYPE: n.TOKEN_TYPE_INPUT})
            self.tokens.record(u.output_tokens, {**base, n.TOKEN_TYPE: n.TOKEN_TYPE_OUTPUT})
        start, end = getattr(out, "start_ns", None), getattr(out, "end_ns", None)
        if start and end and end >= start:
            et = error_type(out)
            self.duration.record((end - start) / 1e9, {**base, n.ERROR_TYPE_ATTR: et} if et else base)
        money: dict[str, Any] = {}
        if prov:
            money[n.PROVIDER_NAME] = prov
        model = out.response_model or out.routed_model
        if model:
            money[n.RESPONSE_MODEL] = model
        tags = getattr(out, "tags", None) or {}
        for t in n.METRIC_TAGS:
            v = tags.get(t)
            if isinstance(v, str) and v:
                money[n.TAG_PREFIX + t] = v
        cost = out.cost
        if cost is not None and cost.total_usd is not None:
            self.cost.add(float(cost.total_usd), money)
        if out.saved_usd is not None:
            self.savings.add(float(out.saved_usd), money)
        d = out.decision
        if d is not None:
            self.decisions.add(1, {n.ROUTE_TIER: d.tier, n.ROUTE_ROUTER: d.router, **({n.PROVIDER_NAME: prov} if prov else {})})
        unpriced = getattr(out, "unpriced_reason", None) or (
            cost.unpriced_reason if cost is not None and cost.total_usd is None else None
        )
        if unpriced:
            self.unpriced.add(1, {n.COST_UNPRICED_REASON: unpriced, **({n.PROVIDER_NAME: prov} if prov else {})})
        self.processing.record(float(out.latency_ms) / 1000.0, {n.DIALECT: out.dialect} if out.dialect else {})
