"""One HTTP request's life in the ext_proc: each ProcessingRequest in, one ProcessingResponse out.

Phases (Envoy sends them in this order on one gRPC stream; ``envoy/envoy.yaml`` sets the mode):

1. ``request_headers`` — pick the dialect by path. Other paths: a ``mode_override`` that skips
   every later phase. LLM paths: narrow ``accept-encoding`` to encodings we can decode.
2. ``request_body`` (BUFFERED, whole body) — parse JSON; if ``model`` is the auto marker, route
   and rewrite only the top-level ``model``, set ``content-length`` to the new length (Envoy
   answers 500 otherwise), set ``x-nadir-provider`` with ``clear_route_cache`` so Envoy's route
   table picks the upstream cluster.
3. ``response_headers`` — strip upstream ``x-nadir-*`` (no spoofing). An SSE response switches the
   response body to STREAMED (``mode_override``, the complete mode) and gets ``x-nadir-routed-to``
   now, because header mutations sent with STREAMED body replies are dropped by Envoy.
4. ``response_body`` (BUFFERED) — read model and usage, price, add ``x-nadir-routed-to``,
   ``x-nadir-cost-usd`` (or ``x-nadir-unpriced-reason``), ``x-nadir-cost-saved``,
   ``x-nadir-latency-ms``.

Anything we cannot read is passed through untouched and counted (``nadir_extproc.stats``); an
exception inside a phase is answered with a plain CONTINUE for that phase, so our bugs never break
the user's call.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from nadir_extproc import protocol as p
from nadir_extproc.config import Settings
from nadir_extproc.dialects import Dialect, RewriteError, detect
from nadir_extproc.pricing.cost import Cost, price, saving
from nadir_extproc.pricing.money import format_usd
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.routing.base import Decision, RouteRequest, Router
from nadir_extproc.routing.policy import TierPolicy
from nadir_extproc.stats import count

log = logging.getLogger("nadir_extproc")

H_PROVIDER = "x-nadir-provider"
H_TIER = "x-nadir-tier"  # request header: the client pins a routing tier
H_ROUTED_TO = "x-nadir-routed-to"
H_COST = "x-nadir-cost-usd"
H_SAVED = "x-nadir-cost-saved"
H_LATENCY = "x-nadir-latency-ms"
H_UNPRICED = "x-nadir-unpriced-reason"
H_PRICE_SOURCE = "x-nadir-price-source"

#: Model names we reflect into headers must match this (shared case 12: no header injection).
_SAFE_MODEL = re.compile(r"[A-Za-z0-9._:/@-]{1,128}")
#: Content encodings we can decode to read usage.
_DECODABLE = {"gzip", "x-gzip", "deflate", "identity"}


@dataclass
class Context:
    """What every request processor shares (built once at start-up)."""

    settings: Settings
    router: Router
    policy: TierPolicy
    #: Called once per finished request with its ``Outcome`` (telemetry/ledger hook; off path).
    on_complete: Callable[["Outcome"], None] | None = None


@dataclass
class Outcome:
    """What happened to one request (handed to ``Context.on_complete``).

    Costs are USD ``Decimal``; latency in ms; token counts in ``usage``.
    """

    dialect: str | None = None
    provider: str | None = None
    requested_model: str | None = None
    routed_model: str | None = None
    decision: Decision | None = None
    response_model: str | None = None
    status: int | None = None
    stream: bool = False
    usage: Usage | None = None
    cost: Cost | None = None
    baseline: Cost | None = None
    saved_usd: Decimal | None = None
    latency_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


def _safe_model(m: str | None) -> str | None:
    return m if m is not None and _SAFE_MODEL.fullmatch(m) else None


def _narrow_accept_encoding(value: str) -> str | None:
    """``accept-encoding`` without encodings we cannot decode; ``None`` if nothing to change."""
    parts = [x.strip() for x in value.split(",") if x.strip()]
    keep = [x for x in parts if x.split(";")[0].strip().lower() in _DECODABLE]
    if len(keep) == len(parts):
        return None
    return ", ".join(keep) or "identity"


def decode_body(body: bytes, encoding: str) -> bytes | None:
    """Decode a response body by its ``content-encoding``; ``None`` if we cannot (e.g. br, zstd,
    corrupt gzip). Never raises."""
    enc = encoding.strip().lower()
    if not enc or enc == "identity":
        return body
    try:
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        return None
    return None


class RequestProcessor:
    """State of one HTTP request across its ext_proc phases (one per gRPC stream)."""

    __slots__ = (
        "ctx", "dialect", "out", "_ns", "_req_headers", "_status", "_encoding", "_sse", "_done",
    )

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.dialect: Dialect | None = None
        self.out = Outcome()
        self._ns = 0
        self._req_headers: dict[str, str] = {}
        self._status = 0
        self._encoding = ""
        self._sse = False
        self._done = False

    # ------------------------------------------------------------------ dispatch
    def handle(self, req: p.ProcessingRequest) -> p.ProcessingResponse:
        """Answer one ProcessingRequest. Never raises: on an internal error the phase is
        answered with a plain CONTINUE (request unmodified), logged once and counted."""
        t0 = time.perf_counter_ns()
        phase = req.WhichOneof("request")
        try:
            if phase == "request_headers":
                r = self._request_headers(req.request_headers)
            elif phase == "request_body":
                r = self._request_body(req.request_body)
            elif phase == "response_headers":
                r = self._response_headers(req.response_headers)
            elif phase == "response_body":
                r = self._response_body(req.response_body, t0)
            elif phase is None:
                count("unknown_processing_request")
                r = p.ProcessingResponse()
            else:
                r = p.continue_reply(phase)
        except Exception as e:  # noqa: BLE001 — our bug must not break the user's call
            count("internal_error", f"{phase}: {type(e).__name__}: {e}")
            log.debug("internal error in %s", phase, exc_info=True)
            r = p.continue_reply(phase) if phase else p.ProcessingResponse()
        self._ns += time.perf_counter_ns() - t0
        return r

    def latency_ms(self, now_ns: int | None = None, since_ns: int = 0) -> float:
        """Our processing time so far for this request, in ms (including the running phase when
        ``since_ns`` is that phase's start)."""
        extra = (now_ns - since_ns) if now_ns is not None and since_ns else 0
        return (self._ns + extra) / 1e6

    def finish(self) -> None:
        """Called once when the gRPC stream ends, however it ends: hand the outcome on."""
        if self._done:
            return
        self._done = True
        self.out.latency_ms = self.latency_ms()
        cb = self.ctx.on_complete
        if cb is not None and self.out.dialect is not None:
            try:
                cb(self.out)
            except Exception as e:  # noqa: BLE001
                count("on_complete_error", f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------ phases
    def _request_headers(self, msg: Any) -> p.ProcessingResponse:
        h = p.headers_map(msg)
        r = p.ProcessingResponse()
        dialect = detect(h.get(":path", ""), self.ctx.settings.paths)
        if dialect is None or h.get(":method") != "POST":
            r.request_headers.response.SetInParent()
            r.mode_override.CopyFrom(p.MODE_SKIP_REST)
            return r
        self.dialect = dialect
        self._req_headers = h
        self.out.dialect = dialect.name
        self.out.provider = dialect.provider
        narrowed = _narrow_accept_encoding(h.get("accept-encoding", ""))
        if narrowed is not None:
            r.request_headers.response.CopyFrom(p.common({"accept-encoding": narrowed}))
        else:
            r.request_headers.response.SetInParent()
        return r

    def _request_body(self, msg: Any) -> p.ProcessingResponse:
        r = p.ProcessingResponse()
        d = self.dialect
        if d is None:
            r.request_body.response.SetInParent()
            return r
        raw: bytes = msg.body
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            count("request_not_json")
            body = None
        if not isinstance(body, dict):
            if body is not None:
                count("request_not_object")
            r.request_body.response.SetInParent()
            return r
        self.out.stream = d.is_stream(body)
        model = d.request_model(body)
        self.out.requested_model = model
        if model is None:
            count("request_no_model")
            r.request_body.response.SetInParent()
            return r
        provider = d.provider
        if model != self.ctx.settings.auto_model:
            self.out.routed_model = model
            r.request_body.response.CopyFrom(p.common({H_PROVIDER: provider}, clear_route_cache=True))
            return r
        decision = self._route(d, body)
        new = d.rewrite_model(raw, body, decision.model)
        self.out.decision = decision
        self.out.routed_model = decision.model
        r.request_body.response.CopyFrom(
            p.common(
                {"content-length": str(len(new)), H_PROVIDER: provider},
                body=new,
                clear_route_cache=True,
            )
        )
        return r

    def _route(self, d: Dialect, body: dict[str, Any]) -> Decision:
        msgs = body.get("messages")
        req = RouteRequest(
            provider=d.provider,
            dialect=d.name,
            prompt=d.prompt_text(body),
            message_count=len(msgs) if isinstance(msgs, list) else 1,
            body=body,
            pinned_tier=self._req_headers.get(H_TIER) or None,
        )
        try:
            return self.ctx.router.route(req)
        except Exception as e:  # noqa: BLE001 — fall back to the route's default model
            count("router_error", f"{type(e).__name__}: {e}")
            fallback = self.ctx.policy.default_model(d.provider)
            if fallback is None:
                raise
            return Decision(model=fallback, tier="default", score=None, reason="router_error", router="fallback")

    def _response_headers(self, msg: Any) -> p.ProcessingResponse:
        r = p.ProcessingResponse()
        h = p.headers_map(msg)
        spoofed = [k for k in h if k.startswith("x-nadir-")]
        if spoofed:
            count("upstream_x_nadir_header_removed")
        try:
            self._status = int(h.get(":status", "0"))
        except ValueError:
            self._status = 0
        self.out.status = self._status
        self._encoding = h.get("content-encoding", "")
        ctype = h.get("content-type", "").lower()
        self._sse = ctype.startswith("text/event-stream")
        set_h: dict[str, str] = {}
        if self._sse:
            self.out.stream = True
            routed = _safe_model(self.out.routed_model)
            if routed:
                set_h[H_ROUTED_TO] = routed
            r.mode_override.CopyFrom(p.MODE_STREAM_RESPONSE)
        elif msg.end_of_stream:
            set_h = self._final_headers(None, time.perf_counter_ns())
        r.response_headers.response.CopyFrom(p.common(set_h or None, spoofed or None))
        return r

    def _response_body(self, msg: Any, t0: int) -> p.ProcessingResponse:
        r = p.ProcessingResponse()
        if self._sse or not msg.end_of_stream:
            # STREAMED chunks pass through untouched (streamed usage is read by the SSE layer).
            r.response_body.response.SetInParent()
            return r
        set_h = self._final_headers(msg.body, t0)
        r.response_body.response.CopyFrom(p.common(set_h))
        return r

    # ------------------------------------------------------------------ pricing
    def _final_headers(self, raw: bytes | None, t0: int) -> dict[str, str]:
        """Read usage from a whole JSON response body and return the cost headers."""
        d = self.dialect
        out = self.out
        unpriced: str | None = None
        usage: Usage | None = None
        served = out.routed_model
        if d is None:
            return {}
        if self._status >= 400:
            unpriced = "provider_error"
        elif raw is None or not raw:
            unpriced = "no_usage"
        else:
            data = decode_body(raw, self._encoding)
            if data is None:
                count("response_undecodable", self._encoding)
                unpriced = "unsupported_content_encoding"
            else:
                try:
                    body = json.loads(data)
                except (ValueError, UnicodeDecodeError):
                    body = None
                if not isinstance(body, dict):
                    count("response_not_json")
                    unpriced = "response_not_json"
                else:
                    served = d.response_model(body) or served
                    usage = d.usage(body)
                    if usage is None:
                        unpriced = "no_usage"
        out.response_model = served
        out.usage = usage
        headers: dict[str, str] = {}
        safe = _safe_model(served)
        if safe:
            headers[H_ROUTED_TO] = safe
        if unpriced is None and served is not None and usage is not None:
            cost = price(d.provider, served, usage)
            out.cost = cost
            if cost.total_usd is not None:
                headers[H_COST] = format_usd(cost.total_usd)
                headers[H_PRICE_SOURCE] = cost.catalogue
                saved = self._saving(d, cost, usage)
                if saved is not None:
                    out.saved_usd = saved
                    headers[H_SAVED] = format_usd(saved)
            else:
                unpriced = cost.unpriced_reason or "unknown_model"
        if unpriced is not None:
            headers[H_UNPRICED] = unpriced
            count(f"unpriced_{unpriced}")
        headers[H_LATENCY] = f"{self.latency_ms(time.perf_counter_ns(), t0):.3f}"
        return headers

    def _saving(self, d: Dialect, cost: Cost, usage: Usage) -> Decimal | None:
        """Saving vs the provider's baseline model at the same token counts; exactly 0 when the
        client chose the model itself (routing changed nothing); ``None`` if the baseline is
        unpriced."""
        if self.out.decision is None:
            return Decimal(0)
        base_model = self.ctx.policy.default_model(d.provider)
        if base_model is None:
            return None
        baseline = price(d.provider, base_model, usage)
        self.out.baseline = baseline
        return saving(cost, baseline)
