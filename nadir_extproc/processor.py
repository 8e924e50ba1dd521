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

import json
import logging
import random
import re
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nadir_extproc import headers as hn
from nadir_extproc import jsonbody, protocol as p
from nadir_extproc import providers, refusal
from nadir_extproc.budgets import H_REMAINING, Reservation, block_reply, scope_values, trace_id
from nadir_extproc.dialects import Dialect, detect, retrieval_dialect
from nadir_extproc.dialects.base import tier_and_batch
from nadir_extproc.httpcodec import MAX_DECODED_BYTES, decode_body, narrow_accept_encoding, take_query_param  # noqa: F401
from nadir_extproc.pricing.cost import Cost, price
from nadir_extproc.pricing.money import format_usd
from nadir_extproc.pricing.savings import baseline_cost, cost_saved
from nadir_extproc.pricing.usage import Usage
from nadir_extproc.providers import known
from nadir_extproc.record import Outcome, Result
from nadir_extproc.routing.base import Decision, RouteRequest
from nadir_extproc.stats import count
from nadir_extproc.stream import ResponseStream
from nadir_extproc.tags import apply_body_fallback, check_value, read_tags
from nadir_extproc.telemetry.context import carrier_from_headers
from nadir_extproc.telemetry.extract import note_request, note_response_content

if TYPE_CHECKING:  # pragma: no cover
    from nadir_extproc.server import Context

log = logging.getLogger("nadir_extproc")

# Header names live in nadir_extproc.headers; these aliases keep older imports working.
H_PROVIDER = hn.PROVIDER
H_TIER = hn.TIER
H_COST_IN_BODY = hn.COST_IN_BODY
H_ROUTED_TO = hn.ROUTED_TO
H_COST = hn.COST
H_SAVED = hn.SAVED
H_LATENCY = hn.LATENCY
H_UNPRICED = hn.UNPRICED
H_PRICE_SOURCE = hn.PRICE_SOURCE

#: Model names we reflect into headers must match this (shared case 12: no header injection).
_SAFE_MODEL = re.compile(r"[A-Za-z0-9._:/@-]{1,128}")


def _safe_model(m: str | None) -> str | None:
    return m if m is not None and _SAFE_MODEL.fullmatch(m) else None


def __getattr__(name: str) -> Any:
    """``Context`` and ``FanOut`` live in ``nadir_extproc.server`` (which owns them); importing
    them from here still works."""
    if name in ("Context", "FanOut", "OnceSet"):
        from nadir_extproc import server

        return getattr(server, name)
    raise AttributeError(name)


class RequestProcessor:
    """State of one HTTP request across its ext_proc phases (one per gRPC stream)."""

    __slots__ = (
        "ctx", "dialect", "out", "_ns", "_req_headers", "_status", "_encoding", "_done",
        "_path", "_injected", "_stream", "_priced", "_fields", "_cost_in_body",
        "_scopes", "_budget_h", "_spent", "_tier", "_batch", "_admission", "_reservation",
        "_variant", "_reported", "_partial", "_entry", "_once", "_req_tier", "_req_body",
        "_body_seen", "_awaiting_body",
    )

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.dialect: Dialect | None = None
        self.out = Outcome()
        self._ns = 0
        self._req_headers: dict[str, str] = {}
        self._status = 0
        self._encoding = ""
        self._done = False
        self._path = ""
        self._injected = False  # we added stream_options.include_usage to the request
        self._stream: ResponseStream | None = None  # set for streamed responses
        self._priced = False
        self._fields: dict[str, str] | None = None  # the priced cost fields (priced once)
        self._scopes: dict[str, str] | None = None  # budget scope values (None: no budgets)
        self._budget_h: dict[str, str] = {}
        self._spent = False  # cost added to the budget totals
        self._admission: tuple[int, dict[str, Any] | None] | None = None  # (body bytes, body) to admit
        self._reservation: Reservation | None = None  # what admission reserved (settled once)
        self._tier: str | None = None  # service tier the response reports (flex, priority …)
        self._batch = False  # a batch result (batch rates)
        self._cost_in_body = False  # client opted in (x-nadir-cost-in-body) to the JSON cost field
        self._variant: dict[str, str] = {}  # price variants the response reported (speed=fast …)
        self._reported: Decimal | None = None  # the provider's own cost (OpenRouter usage.cost …)
        self._partial: Usage | None = None  # usage of a stream that ended with an error event
        self._entry: known.Entry | None = None  # the provider's entry (hooks, OTel name)
        self._once: bool | None = None  # first pricing of this response id (decided once)
        self._req_tier: str | None = None  # the service tier the request asked for (OpenAI service_tier)
        self._req_body: dict[str, Any] | None = None  # kept only for a provider whose variants read it
        self._body_seen = False  # the request-body phase ran (an Envoy 413 comes before it)
        self._awaiting_body = False  # JSON response headers came, its body has not (yet)

    # ------------------------------------------------------------------ dispatch
    def handle(self, req: p.ProcessingRequest) -> p.ProcessingResponse:
        """Answer one ProcessingRequest. Never raises: on an internal error the phase is
        answered with a plain CONTINUE (request unmodified), logged once and counted."""
        t0 = time.perf_counter_ns()
        phase = req.WhichOneof("request")
        try:
            if phase == "request_headers":
                r = self._request_headers(req.request_headers, req.attributes)
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
        if self._priced and not self._spent:
            self._record_spend()
        self._ns += time.perf_counter_ns() - t0
        return r

    async def handle_async(self, req: p.ProcessingRequest) -> p.ProcessingResponse:
        """``handle``, then budget admission once the request body has been read (the one phase
        that may wait: on the shared budget store, at most ``budget_redis.timeout_ms``)."""
        r = self.handle(req)
        if self._admission is not None:
            t0 = time.perf_counter_ns()
            r = await self._admit(r)
            self._ns += time.perf_counter_ns() - t0  # part of our time on this request
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
        if self._stream is not None and not self._stream.complete:
            # Cancelled stream (client gone, upstream reset, Envoy closed the gRPC stream): record
            # it as cut, priced on the tokens known so far.
            self.out.result = Result.CUT_STREAM
            count("stream_cut")
            if not self._priced:
                try:
                    self._cost_headers(*self._stream_result(), 0)
                except Exception as e:  # noqa: BLE001
                    count("internal_error", f"finish: {type(e).__name__}: {e}")
        elif self._awaiting_body and not self._priced:
            # A JSON (non-streamed) response whose body never came whole: the upstream reset
            # mid-body (Envoy then drops the stream before the BUFFERED body phase). Cut, unpriced.
            try:
                self._cost_headers(self.out.routed_model, None, self._error_reason() or "cut", 0)
            except Exception as e:  # noqa: BLE001
                count("internal_error", f"finish: {type(e).__name__}: {e}")
        st = self._stream.reader if self._stream is not None else None
        if st is not None:  # gen_ai.response.id / finish_reasons of a stream (JSON: _read_json)
            self.out.response_id = st.response_id or self.out.response_id
            self.out.finish_reasons = st.finish_reasons or self.out.finish_reasons
        self._record_spend()
        self.out.latency_ms = self.latency_ms()
        if self.out.end_ns is None:
            self.out.end_ns = time.time_ns()
        if "traceparent" not in self.out.trace_carrier and "traceparent" in self._req_headers:
            self.out.trace_carrier = carrier_from_headers(self._req_headers)
        cb = self.ctx.on_complete
        if cb is not None and self.out.dialect is not None:
            try:
                cb(self.out)
            except Exception as e:  # noqa: BLE001
                count("on_complete_error", f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------ phases
    def _request_headers(self, msg: Any, attributes: Any = None) -> p.ProcessingResponse:
        h = p.headers_map(msg)
        r = p.ProcessingResponse()
        method = h.get(":method")
        # A provider's route may mount its API under a prefix: its dialects also match by suffix.
        meta, cluster, _ = providers.from_envoy(attributes) if attributes else (None, None, None)
        mounted = meta or cluster
        dialect = detect(h.get(":path", ""), self.ctx.settings.paths, mounted.dialects if mounted else None)
        if dialect is None and method == "GET":
            # GET /v1/responses/{id}: a background response's result, priced when fetched.
            dialect = retrieval_dialect(h.get(":path", ""))
        elif method != "POST":
            dialect = None
        if dialect is None:
            r.request_headers.response.SetInParent()
            r.mode_override.CopyFrom(p.MODE_SKIP_REST)
            return r
        self.dialect = dialect
        self._req_headers = h
        self._path = h.get(":path", "")
        self._cost_in_body = h.get(H_COST_IN_BODY, "").strip().lower() in ("1", "true", "yes")
        self.out.dialect = dialect.name
        # The provider is Envoy's to say (route metadata), else the endpoint's (Vertex AI, Azure
        # paths), else the cluster's, else the dialect's main one: nadir_extproc.providers.resolve.
        named, unknown = providers.resolve(dialect.name, self._path, attributes)
        if unknown is not None:
            count("provider_unknown", unknown)
        self._entry = named
        self.out.provider = named.id
        remove = list(self._identify(h))
        # Our own control headers are for the sidecar, not the provider.
        remove += [k for k in (H_TIER, H_COST_IN_BODY) if k in h]
        set_h: dict[str, str] = {}
        narrowed = narrow_accept_encoding(h.get("accept-encoding", ""))
        if narrowed is not None:
            set_h["accept-encoding"] = narrowed
        if named.key_query and named.key_query_header:
            moved = take_query_param(self._path, named.key_query)
            if moved is not None:
                # A key in the query (Gemini ?key=) would otherwise sit in every URL that is logged
                # or traced (Envoy's span http.url, access logs): send it as the provider's header.
                self._path, key = moved
                set_h[":path"] = self._path
                if named.key_query_header not in h:
                    set_h[named.key_query_header] = key
        if set_h or remove:
            r.request_headers.response.CopyFrom(p.common(set_h or None, remove or None))
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
        self._body_seen = True
        limit = self.ctx.settings.max_request_bytes
        if limit and len(raw) > limit:
            count("request_too_large")
            self.out.result = Result.BLOCKED
            self.out.unpriced_reason = refusal.TOO_LARGE
            self.out.status = 413
            return refusal.too_large(d.name, len(raw), limit)
        req_encoding = self._req_headers.get("content-encoding", "").strip().lower()
        if req_encoding and req_encoding != "identity":
            decoded = decode_body(raw, req_encoding, self.ctx.settings.max_message_bytes)
            if decoded is None:
                count("request_undecodable", req_encoding)
                r.request_body.response.SetInParent()
                return r
            raw = decoded
        try:
            # Parsed once; the JsonObject keeps its values' spans for the model rewrite.
            body = jsonbody.parse(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            count("request_not_json")
            body = None
        self._budget_scopes(len(raw), body if isinstance(body, dict) else None)
        if not isinstance(body, dict):
            if body is not None:
                count("request_not_object")
            r.request_body.response.SetInParent()
            return r
        self.out.stream = d.is_stream(body) or d.is_stream_path(self._path)
        note_request(self.out, body, self.ctx.settings.telemetry.capture_content)
        path_model = d.model_from_path(self._path)
        model = path_model or d.request_model(body)
        self.out.requested_model = model
        self._req_tier = d.requested_tier(body)
        if self._entry is not None and self._entry.price_variant is not None:
            self._req_body = body  # e.g. Perplexity's web_search_options.search_context_size
        if model is None:
            count("request_no_model")
            r.request_body.response.SetInParent()
            return r
        set_h = {H_PROVIDER: self._entry.id}
        new: bytes | None = None
        if model.lower() == self.ctx.settings.auto_model.lower():
            decision = self._route(d, body)
            self.out.decision = decision
            model = decision.model
            if path_model is not None:
                set_h[":path"] = d.rewrite_path(self._path, model)
            else:
                new = d.rewrite_model(raw, body, model)
                body = {**body, "model": model}
        else:
            self._shadow_route(d, body)
        self.out.routed_model = model
        if d.name in self.ctx.settings.inject_stream_usage:
            injected = d.inject_stream_usage(raw if new is None else new, body)
            if injected is not None:
                new = injected
                self._injected = True
        remove: list[str] | None = None
        if new is not None:
            set_h["content-length"] = str(len(new))
            if req_encoding and req_encoding != "identity":
                # We rewrote the decoded body: send it uncompressed.
                remove = ["content-encoding"]
                count("request_body_decompressed")
        p.common(set_h, remove, body=new, clear_route_cache=True, into=r.request_body.response)
        return r

    def _shadow_route(self, d: Dialect, body: dict[str, Any]) -> None:
        """Shadow routing (issue 21): score an explicit-model request with the same router call the
        auto path makes, keep the decision in the outcome (priced at completion, in
        ``_cost_headers``). Nothing reaches the request or the response. Sampled by
        ``shadow_routing.sample_rate``; at 0 (or disabled) the router is never called (counted
        ``shadow_not_sampled``). A router error is counted, never a fallback decision."""
        sr = self.ctx.settings.shadow_routing
        rate = sr.sample_rate
        if not sr.enabled or rate <= 0.0 or (rate < 1.0 and random.random() >= rate):
            count("shadow_not_sampled")
            return
        if self._tiers_of() not in self.ctx.policy.tiers:
            count("shadow_no_tiers", self._tiers_of())
            return
        t0 = time.perf_counter_ns()
        try:
            # No pin: x-nadir-tier asks the auto path for a tier; the shadow question is what the router chooses.
            self.out.shadow = self.ctx.router.route(self._route_request(d, body, pin=False))
        except Exception as e:  # noqa: BLE001 — shadow scoring must never affect the request
            count("shadow_router_error", f"{type(e).__name__}: {e}")
        finally:
            self.out.shadow_router_ms = (time.perf_counter_ns() - t0) / 1e6

    def _route_request(self, d: Dialect, body: dict[str, Any], pin: bool = True) -> RouteRequest:
        # messages (OpenAI chat, Anthropic), input items (Responses), contents (Gemini)
        msgs = body.get("messages") or body.get("input") or body.get("contents")
        return RouteRequest(
            provider=self._tiers_of(),
            dialect=d.name,
            prompt=d.prompt_text(body),
            message_count=len(msgs) if isinstance(msgs, list) else 1,
            body=body,
            pinned_tier=(self._req_headers.get(H_TIER) or None) if pin else None,
        )

    def _route(self, d: Dialect, body: dict[str, Any]) -> Decision:
        req = self._route_request(d, body)
        t_route = time.perf_counter_ns()
        try:
            return self.ctx.router.route(req)
        except Exception as e:  # noqa: BLE001 — fall back to the route's default model
            count("router_error", f"{type(e).__name__}: {e}")
            fallback = self.ctx.policy.default_model(self._tiers_of())
            if fallback is None:
                raise
            return Decision(model=fallback, tier="default", score=None, reason="router_error", router="fallback")
        finally:
            self.out.router_ms = (time.perf_counter_ns() - t_route) / 1e6

    def _response_headers(self, msg: Any) -> p.ProcessingResponse:
        r = p.ProcessingResponse()
        h = p.headers_map(msg)
        spoofed = [k for k in h if k.startswith(hn.PREFIX)]
        if spoofed:
            count("upstream_x_nadir_header_removed")
        try:
            self._status = int(h.get(":status", "0"))
        except ValueError:
            self._status = 0
        self.out.status = self._status
        self._encoding = h.get("content-encoding", "").strip().lower()
        sse = h.get("content-type", "").lower().startswith("text/event-stream")
        set_h: dict[str, str] = {}
        d = self.dialect
        if d is not None and (sse or (self.out.stream and not msg.end_of_stream)):
            # A stream: STREAMED response body so no event is held back (the override must carry
            # the whole mode). Cost goes in-band later; only the routed model is known now.
            self.out.stream = True
            # A usage chunk we asked for is always removed (the client did not ask for that
            # shape); an opted-in "nadir" object rides on the chunk before it (CARRIER).
            st = self.ctx.settings
            self._stream = ResponseStream(d, d.stream_usage(self._injected, usage_object=self._entry.usage_object if self._entry is not None else None), sse=sse, encoding=self._encoding,
                                          cost_in_body=self._cost_in_body, max_event_bytes=st.max_sse_event_bytes,
                                          max_raw_bytes=st.max_message_bytes)
            routed = _safe_model(self.out.routed_model)
            if routed:
                set_h[H_ROUTED_TO] = routed
            r.mode_override.CopyFrom(p.MODE_STREAM_RESPONSE)
        elif msg.end_of_stream:
            set_h = self._cost_headers(*self._read_json(None), time.perf_counter_ns())
        elif d is not None:
            self._awaiting_body = True
        if self._budget_h:
            set_h = {**set_h, **self._budget_h}
        remove = spoofed
        if self._stream is not None and self._stream.rewrites and "content-length" in h:
            # An SSE response with a length (a canned or buffering upstream): the in-band cost
            # changes the length and Envoy answers 500 on a mismatch, so it goes out chunked.
            remove = [*spoofed, "content-length"]
        r.response_headers.response.CopyFrom(p.common(set_h or None, remove or None))
        return r

    def _response_body(self, msg: Any, t0: int) -> p.ProcessingResponse:
        r = p.ProcessingResponse()
        if self._stream is not None:
            body = self._stream.feed(msg.body, msg.end_of_stream, lambda: self._stream_fields(t0))
            if body is None:
                r.response_body.response.SetInParent()
            else:
                r.response_body.response.CopyFrom(p.common(body=body))
            return r
        if not msg.end_of_stream:
            r.response_body.response.SetInParent()
            return r
        set_h = self._cost_headers(*self._read_json(msg.body), t0)
        r.response_body.response.CopyFrom(p.common(set_h))
        return r

    # ------------------------------------------------------------------ streams
    def _stream_fields(self, t0: int) -> dict[str, str]:
        """The stream's cost fields: priced once (``_cost_headers``), then the same fields."""
        return self._fields if self._fields is not None else self._cost_headers(*self._stream_result(), t0)

    def _stream_result(self) -> tuple[str | None, Usage | None, str | None]:
        """(served model, usage, unpriced reason) of the stream as known now."""
        rs = self._stream
        st = rs.reader
        served = st.model or self.out.routed_model
        self._tier, self._batch = tier_and_batch(st.service_tier or self._req_tier)
        if self._status >= 400:
            return served, None, self._error_reason()
        if st.failed:
            # An error event after HTTP 200: not a complete response, so no cost header or
            # in-band cost may present a price for it; what was reported so far is priced apart
            # as the partial cost (Outcome.partial_cost).
            self.out.result = Result.PROVIDER_ERROR
            self._partial = st.usage()
            return served, None, "stream_error" if self._partial is not None else "provider_error"
        if rs.parser is None and not rs.raw_overflow:
            served2, usage, unpriced = self._read_json(bytes(rs.raw))
            return served2 or served, usage, unpriced
        if rs.parser is None:
            return served, None, "unsupported_content_encoding"
        usage = st.usage()
        self._variant = dict(st.price_variant())
        raw_usage = st.raw_usage() if hasattr(st, "raw_usage") else None
        usage = self._provider_rules(usage, {"usage": raw_usage} if isinstance(raw_usage, dict) else {})
        if usage is None:
            return served, None, "no_usage"
        if self.dialect.retrievable and not self._first_pricing(st.response_id):
            return served, None, "already_priced"
        return served, usage, None

    def _provider_rules(self, usage: Usage | None, body: dict[str, Any]) -> Usage | None:
        """Apply the provider's own rules (``providers.known.Entry``) to what the dialect read:
        its usage-counting difference, its reported cost and its price variants."""
        e = self._entry
        if e is None or usage is None:
            return usage
        raw_usage = body.get("usage")
        if e.usage_fix is not None and isinstance(raw_usage, dict):
            usage = e.usage_fix(raw_usage, usage)
        if e.reported_cost is not None:
            self._reported = e.reported_cost(body)
        if e.price_variant is not None:
            self._variant.update(e.price_variant(body, self._req_body))
        return usage

    # ------------------------------------------------------------------ pricing
    def _read_json(self, raw: bytes | None) -> tuple[str | None, Usage | None, str | None]:
        """(served model, usage, unpriced reason) from a whole JSON response body (``None`` for
        a response without a body). A JSON array (Gemini's non-SSE stream) is read from its last
        element that reports usage."""
        d = self.dialect
        served = self.out.routed_model
        if d is None:
            return served, None, "no_dialect"
        if self._status >= 400:
            return served, None, self._error_reason()
        if not raw:
            return served, None, "no_usage"
        data = decode_body(raw, self._encoding, self.ctx.settings.max_message_bytes)
        if data is None:
            count("response_undecodable", self._encoding)
            return served, None, "unsupported_content_encoding"
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
        if isinstance(body, list):
            body = next((x for x in reversed(body) if isinstance(x, dict) and d.usage(x) is not None), None)
            if body is None:
                return served, None, "no_usage"
        if body is None and data.lstrip()[:1] in (b"{", b"["):
            # JSON that stops short: the body was cut (an upstream reset, a proxy's limit).
            count("response_cut")
            return served, None, "cut"
        if not isinstance(body, dict):
            count("response_not_json")
            return served, None, "response_not_json"
        info = d.response_info(body)  # model, id, finish reasons, usage, tier, variants: one call
        served = info.model or served
        self._variant = dict(info.variant)
        usage = self._provider_rules(info.usage, body)
        self._tier, self._batch = info.service_tier, info.batch
        if self._tier is None and not self._batch:
            # The response is silent about its tier: the tier the request asked for, else standard.
            self._tier, self._batch = tier_and_batch(self._req_tier)
        self.out.response_id, self.out.finish_reasons = info.response_id, info.finish_reasons
        if self.ctx.settings.telemetry.capture_content:
            note_response_content(self.out, body)
        if usage is not None and _counts_nothing(usage, body):
            usage = None  # e.g. {"prompt_tokens": null}: unpriced, never a silent $0
        if usage is None:
            return served, None, "background_pending" if d.is_pending(body) else "no_usage"
        if d.retrievable and not self._first_pricing(body.get("id")):
            return served, None, "already_priced"
        return served, usage, None

    def _error_reason(self) -> str | None:
        """The unpriced reason of an HTTP error status (``None`` below 400): Envoy's own 413 (the
        body was over its buffer limit, so the request-body phase never ran) is
        ``request_too_large``, not the provider's error."""
        if self._status < 400:
            return None
        if self._status == 413 and not self._body_seen:
            return refusal.TOO_LARGE
        return "provider_error"

    def _first_pricing(self, response_id: Any) -> bool:
        """False when this is a retrieval (``GET``) of a response id priced before (a background
        response polled again, or a stored response fetched after its request): it is billed
        once. A ``POST`` is always its own request: its id is remembered, never refused."""
        if self._once is None:
            if not isinstance(response_id, str) or not response_id:
                self._once = True
            elif self._req_headers.get(":method") == "GET":
                self._once = self.ctx.priced_responses.first(response_id)
            else:
                self.ctx.priced_responses.add(response_id)
                self._once = True
        return self._once

    def _cost_headers(self, served: str | None, usage: Usage | None, unpriced: str | None, t0: int) -> dict[str, str]:
        """Price (served model, usage) once, record it in the outcome, return the ``x-nadir-*``
        fields. Later calls return the same fields: the response headers, the in-band comment
        block and the in-body JSON object are one result with one latency value."""
        if self._fields is not None:
            return self._fields
        d = self.dialect
        out = self.out
        self._priced = True
        out.response_model = served
        out.usage = usage
        headers: dict[str, str] = {}
        if d is None:
            return headers
        safe = _safe_model(served)
        if safe:
            headers[H_ROUTED_TO] = safe
        if unpriced is None and served is not None and usage is not None:
            cost = price(self._catalogue_provider(), served, usage, service_tier=self._tier, batch=self._batch,
                         variant=self._variant, reported_usd=self._reported)
            out.cost = cost
            if cost.disagrees:
                count("provider_cost_disagrees", f"{cost.provider}/{cost.model}: reported {cost.reported_usd}, catalogue {cost.catalogue_usd}")
            if cost.total_usd is not None:
                headers[H_COST] = format_usd(cost.total_usd)
                headers[H_PRICE_SOURCE] = cost.catalogue
                saved = self._saving(d, cost, usage)
                if saved is not None:
                    out.saved_usd = saved
                    headers[H_SAVED] = format_usd(saved)
                if out.shadow is not None:
                    self._shadow_cost(cost.total_usd, usage)
            else:
                unpriced = cost.unpriced_reason or "unknown_model"
        if unpriced is not None:
            out.unpriced_reason = unpriced
            headers[H_UNPRICED] = unpriced
            count(f"unpriced_{unpriced}")
        if unpriced in ("provider_error", "stream_error"):
            out.result = Result.PROVIDER_ERROR
        elif unpriced == "cut":
            out.result = Result.CUT_STREAM
        elif unpriced == refusal.TOO_LARGE:
            out.result = Result.BLOCKED  # refused before the provider was called
        if unpriced == "stream_error" and self._partial is not None and served is not None and out.partial_cost is None:
            out.partial_cost = price(self._catalogue_provider(), served, self._partial,
                                     service_tier=self._tier, batch=self._batch, variant=self._variant)
        headers[H_LATENCY] = f"{self.latency_ms(time.perf_counter_ns(), t0):.3f}"
        self._fields = headers
        return headers

    def _shadow_cost(self, actual: Decimal, usage: Usage) -> None:
        """The what-if of shadow routing, priced once here with the actual cost: the same usage
        (every token class) at the shadow model's catalogue rates, same service tier and batch
        flag (no provider-reported cost, no price variants: those belong to the model that
        served). ``opportunity_usd`` = actual - what-if when positive, else 0."""
        out = self.out
        what_if = price(self._catalogue_provider(), out.shadow.model, usage, service_tier=self._tier, batch=self._batch)
        out.shadow_cost = what_if
        if what_if.total_usd is None:
            count("shadow_unpriced", what_if.unpriced_reason or "unknown_model")
            return
        out.opportunity_usd = max(actual - what_if.total_usd, Decimal(0))

    def _tiers_of(self) -> str:
        """The provider id whose routing tiers and baseline apply: the provider's own when the
        policy has a tier map for it, else the one whose models it serves (``Provider.models_of``:
        Vertex AI -> google)."""
        e = self._entry
        if e.id in self.ctx.policy.tiers or not e.models_of:
            return e.id
        return e.models_of

    def _catalogue_provider(self) -> str:
        """The provider id prices are looked up under: the provider entry's catalogue id (Vertex AI
        -> ``google``), else the dialect's provider."""
        e = self._entry
        return e.catalogue_id

    def _saving(self, d: Dialect, cost: Cost, usage: Usage) -> Decimal | None:
        """What routing saved (``nadir_extproc.pricing.savings``): the same usage priced on the
        route's baseline model (``baseline_models[provider]``, else the most expensive of the
        provider's tier models) minus the actual cost, signed. Exactly 0 when the client chose the
        model itself (routing changed nothing); ``None`` when the baseline cannot be priced."""
        if self.out.decision is None:
            return Decimal(0)
        baseline = baseline_cost(
            self._catalogue_provider(), usage, self.ctx.policy.tiers.get(self._tiers_of(), {}).values(),
            configured=self.ctx.settings.baseline_models.get(self._tiers_of()),
            service_tier=self._tier, batch=self._batch,
        )
        self.out.baseline = baseline
        return cost_saved(cost, baseline)

    # ------------------------------------------------------------------ tags, key ids, budgets
    def _identify(self, h: dict[str, str]) -> list[str]:
        """Tags, key id and request id from the request headers; returns the tag headers to
        remove before upstream (none with ``tags.forward``)."""
        cfg = self.ctx.settings.tags
        res = read_tags(h, cfg.headers, frozenset(cfg.allow), cfg.max_len, cfg.generic_prefix)
        self.out.tags = res.tags
        self.out.request_id = check_value(h.get("x-request-id", ""), 128)[0]
        if self.ctx.identity is not None:
            self.out.key_id = self.ctx.identity.key_id(h)
        return [] if cfg.forward else res.tag_headers

    def _budget_scopes(self, body_bytes: int, body: dict[str, Any] | None) -> None:
        """Body user fallback, then the budget scope values; marks the request for admission
        (``handle_async``) when budgets are configured."""
        cfg = self.ctx.settings.tags
        if cfg.body_user:
            apply_body_fallback(self.out.tags, self.out.dialect, body, cfg.max_len)
        if not self.ctx.budgets:
            return
        self._scopes = scope_values(self.out.tags, self.out.key_id, trace_id(self._req_headers))
        self._admission = (body_bytes, body)

    async def _admit(self, r: p.ProcessingResponse) -> p.ProcessingResponse:
        """Reserve this request's estimated maximum cost against its budgets: ``r`` when admitted
        (the remaining amount after the reservation goes on the response headers), else the 429
        reply. A failure here admits the request unchanged (counted)."""
        body_bytes, body = self._admission  # type: ignore[misc]
        self._admission = None
        b = self.ctx.budgets
        d = self.dialect
        if not b or d is None or self._scopes is None:
            return r
        try:
            model = self.out.routed_model or self.out.requested_model
            # Per-route defaults by the route's provider id; rates from the catalogue the cost will use.
            est = b.estimate(self._entry.id, model, body_bytes, body, catalogue=self._catalogue_provider())
            a = await b.admit(self._scopes, est)
        except Exception as e:  # noqa: BLE001 — our bug must not break the user's call
            count("internal_error", f"budget admission: {type(e).__name__}: {e}")
            return r
        v = a.verdict
        self._reservation = a.reservation
        if v.remaining_usd is not None:
            self._budget_h = {H_REMAINING: format_usd(v.remaining_usd)}
        if v.action != "block":
            return r
        self.out.result = Result.BLOCKED
        self.out.status = 429
        self.out.stream = False  # answered by us with one JSON body
        return block_reply(self.out.dialect, v)

    def _record_spend(self) -> None:
        """Settle the budget reservation, once: as soon as the response is priced, or when the
        request ends unpriced (cut, aborted, provider error), releasing what was reserved."""
        if self._spent:
            return
        self._spent = True
        if self.ctx.budgets and self._reservation is not None:
            cost = self.out.cost
            self.ctx.budgets.settle(self._reservation, cost.total_usd if cost is not None else None)


def _has_count(v: Any, depth: int = 0) -> bool:
    """Whether ``v`` holds a non-negative integer token count (not a bool), at most 4 levels deep."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v >= 0
    if depth < 4 and isinstance(v, dict):
        return any(_has_count(x, depth + 1) for x in v.values())
    return False


def _counts_nothing(usage: Usage, body: dict[str, Any]) -> bool:
    """A usage that read as all zeros from a block with no count in it at all (null, strings,
    garbage): the response reported nothing priceable, so it must be unpriced, not $0 (issue 18).
    A real zero (``"prompt_tokens": 0``) is a count."""
    if any(getattr(usage, f) for f in usage.__dataclass_fields__):
        return False
    blocks = [body.get("usage"), body.get("usageMetadata")]
    resp = body.get("response")
    if isinstance(resp, dict):
        blocks.append(resp.get("usage"))
    return not any(_has_count(b) for b in blocks)
