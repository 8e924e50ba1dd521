"""Metrics per finished request, built only from its ``Outcome`` (names in ``names``).

- ``gen_ai.client.token.usage`` (histogram, ``{token}``, the convention's buckets): one input and
  one output record per request with known usage, ``gen_ai.token.type`` = ``input``/``output``.
- ``gen_ai.client.operation.duration`` (histogram, s): stream start to response end.
- ``nadir.llm.cost`` / ``nadir.llm.savings`` (counters, USD) by provider, model, feature, team,
  environment.
- ``nadir.llm.opportunity`` (counter, USD): shadow routing's estimated saving on explicit-model
  requests (actual minus what-if cost when positive), by provider, model, shadow tier and the tags.
- ``nadir.router.decisions`` (counter) by tier, router, provider.
- ``nadir.unpriced.requests`` (counter) by reason, provider.
- ``nadir.extproc.processing.duration`` (histogram, s): our own time on the request.

Label sets are bounded: ``user`` tags and key ids never become labels; models are client or
provider names, bounded in the end by the SDK's per-metric cardinality limit (2000 sets).
USD values are converted from ``Decimal`` to float only here, at the metric boundary.

Cost on the request path (``record`` runs on the event loop): every SDK measurement cleans and
hashes its attribute set once per metric reader, so the four counters are summed here instead —
per attribute set, exactly (USD as ``Decimal``), under a lock — and handed to the SDK as
observable counters (same names, units, Sum data points, monotonic or not) when a reader
collects. Their attribute sets are bounded like the SDK's: beyond ``CARDINALITY_LIMIT`` sets, the
rest goes to one ``otel.metric.overflow=true`` set. Histogram attribute dicts are built once per
(operation, provider, models, error) and reused.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from nadir_extproc.record import Outcome
from nadir_extproc.telemetry import names as n
from nadir_extproc.telemetry.histograms import FastHistogram
from nadir_extproc.telemetry.spans import error_type, identity_attributes, provider_name

#: Distinct attribute sets per counter before the overflow set (the SDK's default limit).
CARDINALITY_LIMIT = 2000
_OVERFLOW: tuple[tuple[str, Any], ...] = (("otel.metric.overflow", True),)
_CACHE_MAX = 4096  # histogram attribute dicts kept (cleared when full)


class Sums:
    """Running totals per attribute set (a tuple of ``(name, value)`` pairs) for one observable
    counter. ``add`` is called on the request path, ``observe`` by the metric readers' threads.
    Values are ``Decimal`` (USD) or int; observations are floats/ints."""

    __slots__ = ("_lock", "_totals", "_limit")

    def __init__(self, limit: int = CARDINALITY_LIMIT) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[tuple[str, Any], ...], Any] = {}
        self._limit = limit

    def add(self, key: tuple[tuple[str, Any], ...], amount: Any) -> None:
        with self._lock:
            t = self._totals
            if key in t:
                t[key] += amount
            elif len(t) < self._limit:
                t[key] = amount
            else:
                t[_OVERFLOW] = t.get(_OVERFLOW, 0) + amount

    def observe(self, _options: CallbackOptions | None = None) -> list[Observation]:
        with self._lock:
            items = list(self._totals.items())
        return [Observation(float(v) if isinstance(v, Decimal) else v, dict(k)) for k, v in items]


class RequestMetrics:
    """The instruments, created once on ``meter``; ``record(outcome)`` per finished request."""

    def __init__(self, meter: Meter) -> None:
        # FastHistogram: the SDK's record without its per-record attribute cleaning and hashing,
        # for our reused attribute dicts (telemetry.histograms; same data points).
        self.tokens = FastHistogram(meter.create_histogram(
            n.M_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(n.TOKEN_BUCKETS),
        ))
        self.duration = FastHistogram(meter.create_histogram(
            n.M_OPERATION_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS_S),
        ))
        self.cost, self.savings, self.decisions, self.unpriced = Sums(), Sums(), Sums(), Sums()
        self.opportunity = Sums()
        meter.create_observable_counter(
            n.M_OPPORTUNITY, callbacks=[self.opportunity.observe], unit="USD",
            description="What routing would save on explicit-model requests (shadow routing; estimate at equal tokens).")
        meter.create_observable_counter(
            n.M_COST, callbacks=[self.cost.observe], unit="USD", description="Cost of LLM calls (list prices).")
        meter.create_observable_up_down_counter(
            n.M_SAVINGS, callbacks=[self.savings.observe], unit="USD",
            description="Saving vs the provider's baseline model (negative when routing cost more).",
        )
        meter.create_observable_counter(
            n.M_ROUTER_DECISIONS, callbacks=[self.decisions.observe], unit="{decision}", description="Routing decisions.")
        meter.create_observable_counter(
            n.M_UNPRICED, callbacks=[self.unpriced.observe], unit="{request}", description="Requests without a cost, by reason.")
        # (op, provider, requested, response model, error.type) -> (input, output, duration) attrs
        self._hist_attrs: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        self._proc_attrs: dict[Any, dict[str, Any]] = {}
        self.processing = FastHistogram(meter.create_histogram(
            n.M_PROCESSING_DURATION, unit="s", description="Time nadir-extproc spent on a request (all phases).",
            explicit_bucket_boundaries_advisory=list(n.PROCESSING_BUCKETS_S),
        ))

    def _attrs(self, out: Outcome, prov: str | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Token (input, output) and duration attribute dicts for this outcome (cached)."""
        et = error_type(out)
        key = (out.dialect, prov, out.requested_model, out.response_model, et)
        hit = self._hist_attrs.get(key)
        if hit is not None:
            return hit
        base = identity_attributes(out, prov)
        hit = (
            {**base, n.TOKEN_TYPE: n.TOKEN_TYPE_INPUT},
            {**base, n.TOKEN_TYPE: n.TOKEN_TYPE_OUTPUT},
            {**base, n.ERROR_TYPE_ATTR: et} if et else base,
        )
        if len(self._hist_attrs) >= _CACHE_MAX:
            self._hist_attrs.clear()
        self._hist_attrs[key] = hit
        return hit

    def record(self, out: Outcome) -> None:
        """Record one finished request's metrics."""
        prov = provider_name(out)
        tokens_in, tokens_out, dur = self._attrs(out, prov)
        u = out.usage
        if u is not None:
            self.tokens.record(u.input_tokens, tokens_in)
            self.tokens.record(u.output_tokens, tokens_out)
        dur_ms = out.duration_ms
        if dur_ms is not None:
            self.duration.record(dur_ms / 1e3, dur)
        cost = out.cost
        saved = out.saved_usd
        if (cost is not None and cost.total_usd is not None) or saved is not None:
            money: list[tuple[str, Any]] = []
            if prov:
                money.append((n.PROVIDER_NAME, prov))
            model = out.response_model or out.routed_model
            if model:
                money.append((n.RESPONSE_MODEL, model))
            tags = out.tags
            for t in n.METRIC_TAGS:
                v = tags.get(t)
                if isinstance(v, str) and v:
                    money.append((n.TAG_PREFIX + t, v))
            mkey = tuple(money)
            if cost is not None and cost.total_usd is not None:
                self.cost.add(mkey, cost.total_usd)
            if saved is not None:
                self.savings.add(mkey, saved)
            opp = out.opportunity_usd
            if opp is not None and out.shadow is not None:
                self.opportunity.add((*mkey, (n.SHADOW_TIER, out.shadow.tier)), opp)
        d = out.decision
        if d is not None:
            self.decisions.add(
                ((n.ROUTE_TIER, d.tier), (n.ROUTE_ROUTER, d.router), *(((n.PROVIDER_NAME, prov),) if prov else ())), 1)
        unpriced = out.unpriced
        if unpriced:
            self.unpriced.add(((n.COST_UNPRICED_REASON, unpriced), *(((n.PROVIDER_NAME, prov),) if prov else ())), 1)
        pa = self._proc_attrs.get(out.dialect)
        if pa is None:
            pa = self._proc_attrs[out.dialect] = {n.DIALECT: out.dialect} if out.dialect else {}
        self.processing.record(float(out.latency_ms) / 1000.0, pa)
