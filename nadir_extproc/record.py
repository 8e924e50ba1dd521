"""The typed per-request record: what happened to one LLM request, filled by the processor and
read — typed, never with ``getattr`` — by every sink (telemetry, ledger, budgets).

This module sits on the lowest floor of the package: at run time it imports nothing of ours, so
any room can import it without pulling in the processor. The types it names (``Usage``, ``Cost``,
``Decision``) are imported for type checking only.

Units: money is USD ``Decimal``; latency in ms; wall-clock times in Unix ns; token counts in
``usage`` (tokens).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    from nadir_extproc.pricing.cost import Cost
    from nadir_extproc.pricing.priced import Priced
    from nadir_extproc.pricing.usage import Usage
    from nadir_extproc.routing.base import Decision


class Result(StrEnum):
    """How one request ended — one name per result, used by the record, the spans and the ledger
    (the ledger's ``status`` column stores the value).

    - ``OK``: the provider answered with a success status and the response ended normally.
    - ``PROVIDER_ERROR``: an HTTP error status, or an error event inside a 200 stream.
    - ``CUT_STREAM``: a response that ended before its end (client gone, upstream reset): a stream
      without its terminal event, or a JSON body cut mid-way.
    - ``BLOCKED``: refused before the provider was called: a budget ``block`` rule's 429, or a
      request body too large (Envoy's own 413 over its buffer limit, or ours over
      ``max_request_bytes``).
    - ``NO_RESPONSE``: no response headers ever arrived (ledger only; derived, never set).
    """

    OK = "ok"
    PROVIDER_ERROR = "provider_error"
    CUT_STREAM = "cut_stream"
    BLOCKED = "blocked"
    NO_RESPONSE = "no_response"


#: How an unpriced reason ends a request (any other reason leaves the result as it was).
RESULT_OF_UNPRICED: dict[str, Result] = {
    "provider_error": Result.PROVIDER_ERROR,
    "stream_error": Result.PROVIDER_ERROR,
    "cut": Result.CUT_STREAM,
    "request_too_large": Result.BLOCKED,  # refused before the provider was called (refusal.TOO_LARGE)
}


@dataclass
class RequestInfo:
    """What a dialect reads from one request body (``Dialect.request_info``), in one call.

    - ``model``: the model asked for (from the path for APIs that put it there), ``None`` if absent.
    - ``model_in_path``: the model is a path segment (Gemini), so a rewrite changes the path.
    - ``stream``: the client asked for a streamed response (body flag or path method).
    - ``user``: the body's own end-user field, raw (OpenAI ``user``, Anthropic
      ``metadata.user_id``), ``None`` when absent.
    - ``message_count``: conversation turns (messages / input items / contents), 1 without a list.
    - ``prompt``: all prompt text joined by newlines — computed on first use only (the router
      reads it; it is never logged).
    """

    model: str | None
    model_in_path: bool
    stream: bool
    user: Any
    message_count: int
    prompt_of: Callable[[], str] = field(repr=False, compare=False)

    @cached_property
    def prompt(self) -> str:
        return self.prompt_of()


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What a dialect reads from one response (a JSON body, or a whole stream), in one call.

    - ``model``: the model that served it, as the provider reports it.
    - ``response_id`` / ``finish_reasons``: ``gen_ai.response.id`` / ``.finish_reasons``.
    - ``usage``: normalised usage (``None`` when the response reports none); billed extras
      beyond tokens (web-search calls …) travel inside it.
    - ``service_tier``: the tier the response says served it (raw string; ``None`` = standard or
      unreported); ``batch``: a batch result (batch rates).
    - ``failed``: an error reported inside a 200 response (a stream's error event).
    - ``variant``: price variants reported with a non-standard value (Anthropic ``speed`` …).
    """

    model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    usage: Usage | None = None
    service_tier: str | None = None
    batch: bool = False
    failed: bool = False
    variant: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to one request (handed to every sink once, when its gRPC stream ends).

    Identity: ``dialect`` (``openai_chat`` …) and ``provider`` (a ``nadir_extproc.providers`` id:
    ``openai``, ``anthropic``, ``google`` …). Models: ``requested_model`` (what the client sent,
    e.g. ``auto``), ``routed_model`` (what we sent upstream), ``response_model`` (what the
    provider reports having served). Money: ``cost`` / ``baseline`` (``Cost``, USD) and
    ``saved_usd``; ``unpriced_reason`` instead of a cost when there is none. Shadow routing:
    ``shadow`` / ``shadow_cost`` / ``opportunity_usd`` (explicit-model requests only).
    """

    dialect: str | None = None
    provider: str | None = None
    requested_model: str | None = None
    routed_model: str | None = None
    decision: Decision | None = None
    response_model: str | None = None
    #: HTTP status of the response (``None`` until response headers arrive).
    status: int | None = None
    stream: bool = False
    usage: Usage | None = None
    cost: Cost | None = None
    baseline: Cost | None = None
    saved_usd: Decimal | None = None
    #: Our processing time across every phase, ms.
    latency_ms: float = 0.0
    result: Result = Result.OK
    unpriced_reason: str | None = None
    #: Request tags (name -> value), the API key's id (never the key) and Envoy's x-request-id.
    tags: dict[str, str] = field(default_factory=dict)
    key_id: str | None = None
    request_id: str | None = None
    # -- telemetry (never raw keys or prompt text) --
    #: Wall-clock Unix ns: stream start, and response end (last stream event, or the cut).
    start_ns: int = field(default_factory=time.time_ns)
    end_ns: int | None = None
    #: gen_ai.request.* attributes of the parameters present in the body (telemetry.extract).
    request_params: dict[str, Any] = field(default_factory=dict)
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    #: Overrides the error.type derived from ``status``/``result``.
    error_type: str | None = None
    #: Time the router took, ms (None when no routing happened).
    router_ms: float | None = None
    #: W3C trace context (traceparent/tracestate): Envoy's gRPC metadata, else request headers.
    trace_carrier: dict[str, str] = field(default_factory=dict)
    #: Prompt/response content as span attributes; filled only when telemetry.capture_content.
    content: dict[str, str] | None = None
    #: A stream that ended with an error event is unpriced (``stream_error``); what its usage
    #: reported so far, priced, is kept here apart from ``cost`` (never its price).
    partial_cost: Cost | None = None
    # -- shadow routing (issue 21): explicit-model requests only; never in the response --
    #: What the router would have chosen for this prompt (``None``: ``model: auto``, not sampled,
    #: shadow routing off, or no tiers for the provider).
    shadow: Decision | None = None
    #: This response's usage priced at ``shadow.model``'s rates, same tokens (an estimate: another
    #: model would have answered with a different number of output tokens).
    shadow_cost: Cost | None = None
    #: Actual cost minus the what-if cost when positive, else 0 (USD); ``None`` unless both priced.
    opportunity_usd: Decimal | None = None
    #: Time the shadow router call took, ms.
    shadow_router_ms: float | None = None

    def note_priced(self, pr: Priced) -> None:
        """Copy the request's one priced result (``pricing.priced.Priced``) onto the record: served
        model, usage, cost, baseline (when routing chose the model), saving, partial cost, shadow
        what-if, and the unpriced reason with the result it implies (``RESULT_OF_UNPRICED``)."""
        self.response_model, self.usage, self.cost = pr.served, pr.usage, pr.cost
        if self.decision is not None:
            self.baseline = pr.baseline
        if pr.saved_usd is not None:
            self.saved_usd = pr.saved_usd
        if pr.shadow_cost is not None:
            self.shadow_cost, self.opportunity_usd = pr.shadow_cost, pr.opportunity_usd
        if pr.partial_cost is not None and self.partial_cost is None:
            self.partial_cost = pr.partial_cost
        if pr.unpriced_reason is not None:
            self.unpriced_reason = pr.unpriced_reason
            self.result = RESULT_OF_UNPRICED.get(pr.unpriced_reason, self.result)

    @property
    def served_model(self) -> str | None:
        """The model that served the request: the provider's own report, else what we sent."""
        return self.response_model or self.routed_model

    @property
    def duration_ms(self) -> float | None:
        """Wall-clock ms from stream start to response end; ``None`` when not finished."""
        s, e = self.start_ns, self.end_ns
        return (e - s) / 1e6 if s and e and e >= s else None

    @property
    def unpriced(self) -> str | None:
        """Why there is no cost: the processor's own reason, else the ``Cost``'s; ``None`` when
        priced (or not priced yet). The one fallback every sink uses."""
        if self.unpriced_reason:
            return self.unpriced_reason
        c = self.cost
        return c.unpriced_reason if c is not None and c.total_usd is None else None

    @property
    def cut(self) -> bool:
        """True when the response never reached its end."""
        return self.result == Result.CUT_STREAM


#: The name the issue text and newer code use; the same class.
RequestRecord = Outcome

__all__ = ["RESULT_OF_UNPRICED", "Outcome", "RequestInfo", "RequestRecord", "ResponseInfo", "Result"]
