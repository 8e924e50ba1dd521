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

This module is the phase state machine only. The rooms it calls: ``dialects`` / ``providers``
(every wire shape and provider rule), ``httpcodec`` (body encodings), ``stream`` (a STREAMED
response body: parser, inflater, raw copy, in-band cost), ``response`` (a JSON response read into
``pricing.priced.Billed``), ``pricing.priced`` (priced once: ``price_request``), ``protocol`` (the
replies), ``budgets.ticket`` (reservation and settlement), ``record`` (the ``Outcome`` every sink
reads).
"""


from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from nadir_extproc import headers as hn
from nadir_extproc import protocol as p
from nadir_extproc import providers, refusal
from nadir_extproc.budgets import scope_values, trace_id
from nadir_extproc.budgets.ticket import Ticket
from nadir_extproc.dialects import Dialect, detect, retrieval_dialect
from nadir_extproc.httpcodec import narrow_accept_encoding, parse_request
from nadir_extproc.pricing.priced import Billed, PriceRoute, RequestFacts, price_request
from nadir_extproc.providers import known
from nadir_extproc.record import Outcome, RequestInfo, Result
from nadir_extproc.response import Asked, JsonRead, read_json
from nadir_extproc.routing.base import Decision, RouteRequest
from nadir_extproc.stats import count
from nadir_extproc.stream import ResponseStream
from nadir_extproc.tags import apply_body_fallback, identify
from nadir_extproc.telemetry.context import carrier_from_headers
from nadir_extproc.telemetry.extract import note_request, note_response_content

if TYPE_CHECKING:  # pragma: no cover
    from nadir_extproc.server import Context

log = logging.getLogger("nadir_extproc")

class RequestProcessor:
    """State of one HTTP request across its ext_proc phases (one per gRPC stream)."""

    __slots__ = (
        "ctx", "dialect", "out", "_ns", "_req_headers", "_status", "_encoding", "_done", "_path", "_injected",
        "_stream", "_fields", "_cost_in_body", "_ticket", "_entry", "_once", "_req_tier", "_req_body",
        "_body_seen", "_awaiting_body",
    )

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.dialect: Dialect | None = None
        self.out = Outcome()
        self._ns = 0  # our processing time so far, ns
        self._req_headers: dict[str, str] = {}
        self._status = 0
        self._encoding = ""  # the response's content-encoding
        self._done = False
        self._path = ""
        self._injected = False  # we added stream_options.include_usage to the request
        self._stream: ResponseStream | None = None  # set for streamed responses
        self._fields: dict[str, str] | None = None  # the priced result's x-nadir-* fields (priced once)
        self._cost_in_body = False  # client opted in (x-nadir-cost-in-body) to the JSON cost field
        self._ticket: Ticket | None = None  # budgets: scopes, reservation, settlement
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
        if self._fields is not None:
            self._settle()
        self._ns += time.perf_counter_ns() - t0
        return r

    async def handle_async(self, req: p.ProcessingRequest) -> p.ProcessingResponse:
        """``handle``, then budget admission once the request body has been read (the one phase
        that may wait: on the shared budget store, at most ``budget_redis.timeout_ms``)."""
        r = self.handle(req)
        t = self._ticket
        if t is not None and t.pending:
            t0 = time.perf_counter_ns()
            out = self.out
            blocked = await t.admit(self._entry.id, self._entry.catalogue_id, out.routed_model or out.requested_model,
                                    self.dialect)
            if blocked is not None:
                out.result, out.status, out.stream = Result.BLOCKED, 429, False  # one JSON body, ours
                r = blocked
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
        out = self.out
        try:
            if self._stream is not None and not self._stream.complete:
                # Cancelled stream (client gone, upstream reset, Envoy closed the gRPC stream):
                # record it as cut, priced on the tokens known so far.
                out.result = Result.CUT_STREAM
                count("stream_cut")
                self._stream_fields(0)
            elif self._awaiting_body and self._fields is None:
                # A JSON response whose body never came whole: the upstream reset mid-body (Envoy
                # then drops the stream before the BUFFERED body phase). Cut, unpriced.
                self._price(JsonRead(Billed(out.routed_model, unpriced=self._error_reason() or "cut")), 0)
        except Exception as e:  # noqa: BLE001
            count("internal_error", f"finish: {type(e).__name__}: {e}")
        if self._stream is not None:  # gen_ai.response.id / finish_reasons of a stream
            st = self._stream.reader
            out.response_id = st.response_id or out.response_id
            out.finish_reasons = st.finish_reasons or out.finish_reasons
        self._settle()
        out.latency_ms = self.latency_ms()
        if out.end_ns is None:
            out.end_ns = time.time_ns()
        if "traceparent" not in out.trace_carrier and "traceparent" in self._req_headers:
            out.trace_carrier = carrier_from_headers(self._req_headers)
        if out.dialect is not None:
            self.ctx.complete(out)

    # ------------------------------------------------------------------ phases
    def _request_headers(self, msg: Any, attributes: Any = None) -> p.ProcessingResponse:
        h = p.headers_map(msg)
        method = h.get(":method")
        path = h.get(":path", "")
        # A provider's route may mount its API under a prefix: its dialects also match by suffix.
        meta, cluster, _ = providers.from_envoy(attributes) if attributes else (None, None, None)
        mounted = meta or cluster
        dialect = detect(path, self.ctx.settings.paths, mounted.dialects if mounted else None)
        if dialect is None and method == "GET":
            dialect = retrieval_dialect(path)  # GET /v1/responses/{id}: a background response's result
        elif method != "POST":
            dialect = None
        if dialect is None:
            return p.skip_rest()
        # The provider is Envoy's to say (route metadata), else the endpoint's (Vertex AI, Azure
        # paths), else the cluster's, else the dialect's main one: nadir_extproc.providers.resolve.
        named, unknown = providers.resolve(dialect.name, path, attributes)
        if unknown is not None:
            count("provider_unknown", unknown)
        self.dialect, self._entry, self._req_headers, self._path = dialect, named, h, path
        self._cost_in_body = h.get(hn.COST_IN_BODY, "").strip().lower() in ("1", "true", "yes")
        self.out.dialect = dialect.name
        self.out.provider = named.id
        # Tags and key id; our own control headers are for the sidecar, not the provider.
        remove = self._identify(h) + [k for k in (hn.TIER, hn.COST_IN_BODY) if k in h]
        set_h: dict[str, str] = {}
        narrowed = narrow_accept_encoding(h.get("accept-encoding", ""))
        if narrowed is not None:
            set_h["accept-encoding"] = narrowed
        moved = named.key_out_of_path(path, h)  # no API key left in a logged or traced URL
        if moved is not None:
            self._path, key_h = moved
            set_h.update(key_h)
        return p.reply("request_headers", set_h, remove)

    def _request_body(self, msg: Any) -> p.ProcessingResponse:
        d = self.dialect
        if d is None:
            return p.reply("request_body")
        raw: bytes = msg.body
        self._body_seen = True
        limit = self.ctx.settings.max_request_bytes
        if limit and len(raw) > limit:
            count("request_too_large")
            self.out.result, self.out.unpriced_reason, self.out.status = Result.BLOCKED, refusal.TOO_LARGE, 413
            return refusal.too_large(d.name, len(raw), limit)
        req_encoding = self._req_headers.get("content-encoding", "").strip().lower()
        encoded = req_encoding not in ("", "identity")
        parsed = parse_request(raw, req_encoding, self.ctx.settings.max_message_bytes)
        if parsed is None:
            return p.reply("request_body")  # an encoding we cannot decode: passed through, counted
        raw, body = parsed
        self._budget_scopes(len(raw), body if isinstance(body, dict) else None)
        if not isinstance(body, dict):
            if body is not None:
                count("request_not_object")
            return p.reply("request_body")
        info = d.request_info(body, self._path)  # model, stream flag, user, turns, prompt: one call
        self.out.stream = info.stream
        note_request(self.out, body, d, self.ctx.settings.telemetry.capture_content)
        model = self.out.requested_model = info.model
        self._req_tier = d.requested_tier(body)
        if self._entry.price_variant is not None:
            self._req_body = body  # e.g. Perplexity's web_search_options.search_context_size
        if model is None:
            count("request_no_model")
            return p.reply("request_body")
        set_h = {hn.PROVIDER: self._entry.id}
        new: bytes | None = None
        if model.lower() == self.ctx.settings.auto_model.lower():
            decision = self.out.decision = self._route(d, info, body)
            model = decision.model
            if info.model_in_path:
                set_h[":path"] = d.rewrite_path(self._path, model)
            else:
                new = d.rewrite_model(raw, body, model)
                body = {**body, "model": model}
        else:
            self._shadow_route(d, info, body)
        self.out.routed_model = model
        if d.name in self.ctx.settings.inject_stream_usage:
            injected = d.inject_stream_usage(raw if new is None else new, body)
            if injected is not None:
                new, self._injected = injected, True
        remove: list[str] | None = None
        if new is not None:
            set_h["content-length"] = str(len(new))
            if encoded:
                remove = ["content-encoding"]  # we rewrote the decoded body: send it uncompressed
                count("request_body_decompressed")
        return p.reply("request_body", set_h, remove, body=new, clear_route_cache=True)

    def _response_headers(self, msg: Any) -> p.ProcessingResponse:
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
        stream = d is not None and (sse or (self.out.stream and not msg.end_of_stream))
        if stream:
            # A stream: STREAMED response body so no event is held back (the override must carry
            # the whole mode). Cost goes in-band later; only the routed model is known now. A
            # usage chunk we asked for is removed; an opted-in "nadir" object rides on the chunk
            # before it (CARRIER).
            self.out.stream = True
            st = self.ctx.settings
            reader = d.stream_usage(self._injected, usage_object=self._entry.usage_object)
            self._stream = ResponseStream(d, reader, sse=sse, encoding=self._encoding, cost_in_body=self._cost_in_body,
                                          max_event_bytes=st.max_sse_event_bytes, max_raw_bytes=st.max_message_bytes)
            routed = hn.safe_model(self.out.routed_model)
            if routed:
                set_h[hn.ROUTED_TO] = routed
        elif msg.end_of_stream and d is not None:
            set_h = self._price(self._read_json(None), time.perf_counter_ns())
        elif d is not None:
            self._awaiting_body = True
        if self._ticket is not None and self._ticket.headers:
            set_h = {**set_h, **self._ticket.headers}
        remove = spoofed
        if self._stream is not None and self._stream.rewrites and "content-length" in h:
            # An SSE response with a length (a canned or buffering upstream): the in-band cost
            # changes the length and Envoy answers 500 on a mismatch, so it goes out chunked.
            remove = [*spoofed, "content-length"]
        r = p.reply("response_headers", set_h, remove)
        if stream:
            r.mode_override.CopyFrom(p.MODE_STREAM_RESPONSE)
        return r

    def _response_body(self, msg: Any, t0: int) -> p.ProcessingResponse:
        if self._stream is not None:
            body = self._stream.feed(msg.body, msg.end_of_stream, lambda: self._stream_fields(t0))
            return p.reply("response_body", body=body)
        if not msg.end_of_stream:
            return p.reply("response_body")
        return p.reply("response_body", self._price(self._read_json(msg.body), t0))

    # ------------------------------------------------------------------ reading and pricing
    def _asked(self) -> Asked:
        return Asked(self.out.routed_model, self._error_reason(), self._req_tier, self._req_body, self._first_pricing)

    def _read_json(self, raw: bytes | None) -> JsonRead:
        return read_json(self.dialect, self._entry, raw, self._asked(), encoding=self._encoding,
                         max_bytes=self.ctx.settings.max_message_bytes)

    def _stream_fields(self, t0: int) -> dict[str, str]:
        """The stream's cost fields: priced once (``_price``), then the same fields."""
        return self._fields if self._fields is not None else self._price(self._stream.read(self._entry, self._asked()), t0)

    def _price(self, read: JsonRead, t0: int) -> dict[str, str]:
        """Price the request once (``pricing.priced.price_request``), record the result in the
        outcome and return its ``x-nadir-*`` fields; later calls return the same fields (the
        headers, the comment block and the JSON object are one result with one latency)."""
        if self._fields is not None:
            return self._fields
        out = self.out
        if read.response_id is not None:
            out.response_id = read.response_id
        if read.finish_reasons is not None:
            out.finish_reasons = read.finish_reasons
        if read.body is not None and self.ctx.settings.telemetry.capture_content:
            note_response_content(out, read.body, self.dialect)
        shadow = out.shadow.model if out.shadow is not None else None
        pr = price_request(self._price_route(), RequestFacts(out.decision is not None, shadow), read.billed)
        out.note_priced(pr)
        if pr.cost is not None and pr.cost.disagrees:
            c = pr.cost
            count("provider_cost_disagrees", f"{c.provider}/{c.model}: reported {c.reported_usd}, catalogue {c.catalogue_usd}")
        if pr.shadow_cost is not None and pr.shadow_cost.total_usd is None:
            count("shadow_unpriced", pr.shadow_cost.unpriced_reason or "unknown_model")
        if pr.unpriced_reason is not None:
            count(f"unpriced_{pr.unpriced_reason}")
        self._fields = pr.fields(self.latency_ms(time.perf_counter_ns(), t0))
        return self._fields

    def _price_route(self) -> PriceRoute:
        """Where prices come from (the provider entry's catalogue id: Vertex AI -> ``google``) and
        the route's savings baseline (``baseline_models``, else its tier models)."""
        key = self._tiers_of()
        return PriceRoute(self._entry.catalogue_id, self.ctx.settings.baseline_models.get(key),
                          tuple(self.ctx.policy.tiers.get(key, {}).values()))

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
        """Whether this response id is priced now (``OnceSet.first_pricing``), decided once."""
        if self._once is None:
            self._once = self.ctx.priced_responses.first_pricing(response_id, self._req_headers.get(":method") == "GET")
        return self._once

    # ------------------------------------------------------------------ routing
    def _tiers_of(self) -> str:
        """The provider id whose routing tiers and baseline apply (``TierPolicy.tiers_key``)."""
        return self.ctx.policy.tiers_key(self._entry.id, self._entry.models_of)

    def _route_request(self, d: Dialect, info: RequestInfo, body: dict[str, Any], pin: bool = True) -> RouteRequest:
        return RouteRequest(provider=self._tiers_of(), dialect=d.name, prompt=info.prompt, message_count=info.message_count,
                            body=body, pinned_tier=(self._req_headers.get(hn.TIER) or None) if pin else None)

    def _route(self, d: Dialect, info: RequestInfo, body: dict[str, Any]) -> Decision:
        req = self._route_request(d, info, body)
        t_route = time.perf_counter_ns()
        try:
            return self.ctx.policy.route(self.ctx.router, req)  # the route's default model if the router fails
        finally:
            self.out.router_ms = (time.perf_counter_ns() - t_route) / 1e6

    def _shadow_route(self, d: Dialect, info: RequestInfo, body: dict[str, Any]) -> None:
        """Shadow routing (issue 21): score an explicit-model request with the same router call the
        auto path makes, keep the decision in the outcome (priced at completion with the actual
        cost, ``_price``). Nothing reaches the request or the response. Sampled by
        ``shadow_routing.sample_rate``; at 0 (or disabled) the router is never called (counted
        ``shadow_not_sampled``). A router error is counted, never a fallback decision."""
        if not self.ctx.settings.shadow_routing.sampled():
            count("shadow_not_sampled")
            return
        if self._tiers_of() not in self.ctx.policy.tiers:
            count("shadow_no_tiers", self._tiers_of())
            return
        t0 = time.perf_counter_ns()
        try:
            # No pin: x-nadir-tier asks the auto path for a tier; the shadow question is what the router chooses.
            self.out.shadow = self.ctx.router.route(self._route_request(d, info, body, pin=False))
        except Exception as e:  # noqa: BLE001 — shadow scoring must never affect the request
            count("shadow_router_error", f"{type(e).__name__}: {e}")
        finally:
            self.out.shadow_router_ms = (time.perf_counter_ns() - t0) / 1e6

    # ------------------------------------------------------------------ tags, key ids, budgets
    def _identify(self, h: dict[str, str]) -> list[str]:
        """Tags, request id and key id from the request headers (``tags.identify``); returns the
        tag headers to remove before upstream (none with ``tags.forward``)."""
        cfg = self.ctx.settings.tags
        res, self.out.request_id, self.out.key_id = identify(h, cfg, self.ctx.identity)
        self.out.tags = res.tags
        return [] if cfg.forward else list(res.tag_headers)

    def _budget_scopes(self, body_bytes: int, body: dict[str, Any] | None) -> None:
        """Body user fallback, then — with budgets configured — this request's budget ticket
        (admitted by ``handle_async`` once this phase is answered)."""
        cfg = self.ctx.settings.tags
        if cfg.body_user:
            apply_body_fallback(self.out.tags, self.out.dialect, body, cfg.max_len)
        if self.ctx.budgets:
            scopes = scope_values(self.out.tags, self.out.key_id, trace_id(self._req_headers))
            self._ticket = Ticket(self.ctx.budgets, scopes, body_bytes, body)

    def _settle(self) -> None:
        """Settle the budget reservation, once: as soon as the response is priced, or when the
        request ends unpriced (cut, aborted, provider error), releasing what was reserved."""
        t = self._ticket
        if t is not None and not t.settled:
            c = self.out.cost
            t.settle(c.total_usd if c is not None else None)
