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
from urllib.parse import unquote

from nadir_extproc import jsonbody, protocol as p
from nadir_extproc.budgets import H_REMAINING, Budgets, Reservation, block_reply, scope_values, trace_id
from nadir_extproc.tags import KeyIdentity, apply_body_fallback, check_value, read_tags
from nadir_extproc.config import Settings
from nadir_extproc.dialects import Dialect, detect, retrieval_dialect
from nadir_extproc.inband import format_block
from nadir_extproc.dialects.base import CARRIER, DROP, TERMINAL, USAGE, StreamUsage
from nadir_extproc.sse import SSEParser
from nadir_extproc.pricing.context import served_context, tier_context
from nadir_extproc.pricing.cost import Cost, price
from nadir_extproc.pricing.savings import baseline_cost, cost_saved
from nadir_extproc.pricing.money import format_usd
from nadir_extproc.pricing.usage import Usage
from nadir_extproc import headers as hn
from nadir_extproc import providers
from nadir_extproc.providers import known
from nadir_extproc.record import Outcome, Result
from nadir_extproc.routing.base import Decision, RouteRequest, Router
from nadir_extproc.routing.policy import TierPolicy
from nadir_extproc.stats import count
from nadir_extproc.telemetry.context import carrier_from_headers
from nadir_extproc.telemetry.extract import note_request, note_response

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
#: Content encodings we can decode to read usage.
_DECODABLE = {"gzip", "x-gzip", "deflate", "identity"}


@dataclass
class Context:
    """What every request processor shares (built once at start-up)."""

    settings: Settings
    router: Router
    policy: TierPolicy
    #: Key ids (HMAC of the API key) and budget rules; ``None`` = off (``nadir_extproc.tags``,
    #: ``nadir_extproc.budgets``).
    identity: KeyIdentity | None = None
    budgets: Budgets | None = None
    #: Called once per finished request with its ``Outcome`` (telemetry/ledger hook; off path).
    #: Use ``add_on_complete`` to chain several sinks.
    on_complete: Callable[["Outcome"], None] | None = None
    #: Response ids already priced (background Responses fetched by ``GET /v1/responses/{id}``):
    #: a response is priced once, however often it is polled.
    priced_responses: "OnceSet" = field(default_factory=lambda: OnceSet(100_000))

    def add_on_complete(self, sink: Callable[["Outcome"], None]) -> None:
        """Add a sink to ``on_complete`` (kept as a plain callable while there is only one)."""
        cur = self.on_complete
        if cur is None:
            self.on_complete = sink
        elif isinstance(cur, FanOut):
            cur.sinks.append(sink)
        else:
            self.on_complete = FanOut([cur, sink])


class OnceSet:
    """A bounded set of keys seen once (oldest forgotten first): ``first(key)`` is True the first
    time a key is offered, False after. Thread-unsafe by design: one asyncio loop owns it."""

    __slots__ = ("_keys", "_max")

    def __init__(self, max_keys: int) -> None:
        from collections import OrderedDict

        self._keys: OrderedDict[str, None] = OrderedDict()
        self._max = max_keys

    def add(self, key: str) -> None:
        self.first(key)

    def first(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self._max:
            self._keys.popitem(last=False)
        return True


class FanOut:
    """Calls every sink with the outcome; one sink raising does not stop the others (counted as
    ``on_complete_error``)."""

    __slots__ = ("sinks",)

    def __init__(self, sinks: list[Callable[["Outcome"], None]]) -> None:
        self.sinks = sinks

    def __call__(self, out: "Outcome") -> None:
        for sink in self.sinks:
            try:
                sink(out)
            except Exception as e:  # noqa: BLE001
                count("on_complete_error", f"{getattr(sink, '__qualname__', sink)}: {type(e).__name__}: {e}")


def _safe_model(m: str | None) -> str | None:
    return m if m is not None and _SAFE_MODEL.fullmatch(m) else None


def _narrow_accept_encoding(value: str) -> str | None:
    """``accept-encoding`` without encodings we cannot decode; ``None`` if nothing to change."""
    parts = [x.strip() for x in value.split(",") if x.strip()]
    keep = [x for x in parts if x.split(";")[0].strip().lower() in _DECODABLE]
    if len(keep) == len(parts):
        return None
    return ", ".join(keep) or "identity"


def _key_out_of_query(path: str, name: str = "key") -> tuple[str, str] | None:
    """``(path without the name= parameter, its value)`` when ``path``'s query has ``name=``; else
    ``None``. Other parameters are kept byte for byte, in order."""
    q = path.find("?")
    eq = name + "="
    if q < 0 or eq not in path[q:]:
        return None
    key = None
    keep = []
    for part in path[q + 1 :].split("&"):
        if part.startswith(eq) and key is None:
            key = unquote(part[len(eq):])
        else:
            keep.append(part)
    if not key:
        return None
    return (path[:q] + ("?" + "&".join(keep) if keep else "")), key


def _with_json_field(ev: Any, key: str, value: Any) -> bytes:
    """The event's raw bytes with ``key: value`` added to its top-level JSON ``data`` object (its
    ``event:``/``id:`` lines and line ending kept); the original bytes if the data is not an object."""
    try:
        obj = json.loads(ev.data)
    except ValueError:
        return ev.raw
    if not isinstance(obj, dict):
        return ev.raw
    obj[key] = value
    nl = b"\r\n" if ev.raw.endswith(b"\r\n") else (b"\r" if ev.raw.endswith(b"\r\r") else b"\n")
    keep = [ln for ln in ev.raw.splitlines() if ln and not ln.startswith(b"data")]
    data = b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return nl.join([*keep, data]) + nl + nl


#: Default bound on a decoded (decompressed) body; the processor passes ``max_message_bytes``
#: (16 MiB: a rewritten body must fit in one gRPC reply anyway). A compressed body within Envoy's
#: 8 MiB buffer limit can inflate without bound (a "zip bomb": 8 MiB of gzip is ~8 GiB of zeros);
#: past the bound we stop at once, pass the body through untouched and count it.
MAX_DECODED_BYTES = 16 * 1024 * 1024


def _inflate(body: bytes, wbits: int, limit: int) -> bytes | None:
    """Decompress every member of a zlib/gzip/raw-deflate stream, at most ``limit`` bytes out;
    ``None`` when the output would be larger. Raises ``zlib.error`` on corrupt input."""
    out: list[bytes] = []
    size = 0
    data = body
    while data:
        d = zlib.decompressobj(wbits)
        chunk = d.decompress(data, limit - size + 1)
        size += len(chunk)
        if size > limit:
            return None
        out.append(chunk)
        if not d.eof:
            if d.unconsumed_tail:
                return None  # stopped by max_length: more output than the limit
            raise zlib.error("truncated stream")
        data = d.unused_data  # gzip allows several members one after another
        if wbits != 31:
            break
    return b"".join(out)


def decode_body(body: bytes, encoding: str, limit: int = MAX_DECODED_BYTES) -> bytes | None:
    """Decode a body by its ``content-encoding``; ``None`` if we cannot (e.g. br, zstd, corrupt
    gzip) or if it would inflate beyond ``limit`` bytes (counted as ``body_inflate_limit``).
    Never raises. Linear in the output, which is bounded."""
    enc = encoding.strip().lower()
    if not enc or enc == "identity":
        return body
    try:
        if enc in ("gzip", "x-gzip"):
            out = _inflate(body, 31, limit)
        elif enc == "deflate":
            try:
                out = _inflate(body, 15, limit)
            except zlib.error:
                out = _inflate(body, -zlib.MAX_WBITS, limit)
        else:
            return None
    except (OSError, EOFError, zlib.error):
        return None
    if out is None:
        count("body_inflate_limit", enc)
    return out


class RequestProcessor:
    """State of one HTTP request across its ext_proc phases (one per gRPC stream)."""

    __slots__ = (
        "ctx", "dialect", "out", "_ns", "_req_headers", "_status", "_encoding", "_sse", "_done",
        "_path", "_injected", "_stream", "_parser", "_inflate", "_raw_stream", "_raw_overflow",
        "_inband_sent", "_stream_done", "_priced", "_overflow_counted", "_cost_in_body",
        "_scopes", "_budget_h", "_spent", "_tier", "_batch", "_terminal_seen", "_held", "_admission", "_reservation",
        "_variant", "_reported", "_raw_usage", "_partial", "_nl", "_entry", "_once", "_req_tier", "_req_body",
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
        self._path = ""
        self._injected = False  # we added stream_options.include_usage to the request
        self._stream: StreamUsage | None = None  # set for streamed responses
        self._parser: SSEParser | None = None
        self._inflate: Any = None
        self._raw_stream = bytearray()  # appended in place: linear, not a copy per chunk
        self._raw_overflow = False
        self._inband_sent = False
        self._stream_done = False
        self._priced = False
        self._overflow_counted = False
        self._scopes: dict[str, str] | None = None  # budget scope values (None: no budgets)
        self._budget_h: dict[str, str] = {}
        self._spent = False  # cost added to the budget totals
        self._admission: tuple[int, dict[str, Any] | None] | None = None  # (body bytes, body) to admit
        self._reservation: Reservation | None = None  # what admission reserved (settled once)
        self._tier: str | None = None  # service tier the response reports (flex, priority …)
        self._batch = False  # a batch result (batch rates)
        self._terminal_seen = False  # the stream's terminal event went through
        self._cost_in_body = False  # client opted in (x-nadir-cost-in-body) to the JSON cost field
        self._held: Any = None  # a CARRIER event held for the opt-in cost field (see _stream_chunk)
        self._variant: dict[str, str] = {}  # price variants the response reported (speed=fast …)
        self._reported: Decimal | None = None  # the provider's own cost (OpenRouter usage.cost …)
        self._raw_usage: Any = None  # the usage object as sent (provider usage rules read it)
        self._partial: Usage | None = None  # usage of a stream that ended with an error event
        self._nl = b""  # the stream's line ending, from its first event (CRLF streams get CRLF)
        self._entry: known.Entry | None = None  # the provider's entry (hooks, OTel name)
        self._once: bool | None = None  # first pricing of this response id (decided once)
        self._req_tier: str | None = None  # the service tier the request asked for (OpenAI service_tier)
        self._req_body: dict[str, Any] | None = None  # kept only for a provider whose variants read it

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
        if self._stream is not None and not self._stream_done and not self._terminal_seen:
            # Cancelled stream (client gone, upstream reset, Envoy closed the gRPC stream): record
            # it as cut, priced on the tokens known so far.
            self.out.result = Result.CUT_STREAM
            count("stream_cut")
            if not self._priced:
                try:
                    self._cost_headers(*self._stream_result(), 0)
                except Exception as e:  # noqa: BLE001
                    count("internal_error", f"finish: {type(e).__name__}: {e}")
        st = self._stream
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
        narrowed = _narrow_accept_encoding(h.get("accept-encoding", ""))
        if narrowed is not None:
            set_h["accept-encoding"] = narrowed
        if named.key_query and named.key_query_header:
            moved = _key_out_of_query(self._path, named.key_query)
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
        except (ValueError, UnicodeDecodeError):
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

    def _route(self, d: Dialect, body: dict[str, Any]) -> Decision:
        # messages (OpenAI chat, Anthropic), input items (Responses), contents (Gemini)
        msgs = body.get("messages") or body.get("input") or body.get("contents")
        req = RouteRequest(
            provider=self._tiers_of(),
            dialect=d.name,
            prompt=d.prompt_text(body),
            message_count=len(msgs) if isinstance(msgs, list) else 1,
            body=body,
            pinned_tier=self._req_headers.get(H_TIER) or None,
        )
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
        ctype = h.get("content-type", "").lower()
        self._sse = ctype.startswith("text/event-stream")
        set_h: dict[str, str] = {}
        d = self.dialect
        if d is not None and (self._sse or (self.out.stream and not msg.end_of_stream)):
            # A stream: STREAMED response body so no event is held back (the override must carry
            # the whole mode). Cost goes in-band later; only the routed model is known now.
            self.out.stream = True
            # A usage chunk we asked for is always removed (the client did not ask for that
            # shape); an opted-in "nadir" object rides on the chunk before it (CARRIER).
            self._stream = d.stream_usage(
                self._injected, usage_object=self._entry.usage_object if self._entry is not None else None)
            if self._sse:
                if self._encoding in ("", "identity"):
                    self._parser = SSEParser(self.ctx.settings.max_sse_event_bytes)
                elif self._encoding in ("gzip", "x-gzip", "deflate"):
                    self._parser = SSEParser(self.ctx.settings.max_sse_event_bytes)
                    self._inflate = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
            routed = _safe_model(self.out.routed_model)
            if routed:
                set_h[H_ROUTED_TO] = routed
            r.mode_override.CopyFrom(p.MODE_STREAM_RESPONSE)
        elif msg.end_of_stream:
            set_h = self._cost_headers(*self._read_json(None), time.perf_counter_ns())
        if self._budget_h:
            set_h = {**set_h, **self._budget_h}
        remove = spoofed
        if self._parser is not None and self._inflate is None and "content-length" in h:
            # An SSE response with a length (a canned or buffering upstream): the in-band cost
            # changes the length and Envoy answers 500 on a mismatch, so it goes out chunked.
            remove = [*spoofed, "content-length"]
        r.response_headers.response.CopyFrom(p.common(set_h or None, remove or None))
        return r

    def _response_body(self, msg: Any, t0: int) -> p.ProcessingResponse:
        r = p.ProcessingResponse()
        if self._stream is not None:
            body = self._stream_chunk(msg, t0)
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
    def _stream_chunk(self, msg: Any, t0: int) -> bytes | None:
        """One STREAMED response chunk: returns the bytes to send instead, or ``None`` to forward
        it unchanged. Complete events are forwarded as they come; a partial event at the end of a
        chunk is held until it completes (no complete event is ever delayed, except, with the
        opt-in cost field, a Chat finish chunk until the usage chunk we drop right after it). What
        each dialect gets in-band: ``nadir_extproc.inband``."""
        chunk: bytes = msg.body
        eos: bool = msg.end_of_stream
        parser = self._parser
        if parser is None:
            # Not SSE (e.g. Gemini's JSON-array stream) or an encoding we cannot decode: forward
            # unchanged, keep a bounded copy to read usage from at the end.
            if self._encoding in ("", "identity") and len(self._raw_stream) + len(chunk) <= self.ctx.settings.max_message_bytes:
                self._raw_stream += chunk
            elif chunk:
                self._raw_overflow = True
            if eos:
                self._end_stream(t0)
            return None
        if self._inflate is not None:
            # Compressed SSE: parse the inflated copy, forward the compressed bytes untouched (no
            # in-band cost: rewriting would need re-compression).
            try:
                events, _ = parser.feed(self._inflate.decompress(chunk))
            except zlib.error:
                count("sse_inflate_error")
                self._inflate = None
                self._parser = None
                self._raw_overflow = True
                events = []
            for ev in events:
                self._stream.on_event(ev)
            if eos:
                self._end_stream(t0)
            return None
        events, passthrough = parser.feed(chunk)
        out: list[bytes] = []
        comments = self.dialect.sse_comments
        for ev in events:
            verdict = self._stream.on_event(ev)
            raw = ev.raw
            if not self._nl:
                self._nl = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
            held = self._held
            if held is not None:
                # The held CARRIER gets the cost field once the usage is known (the usage event, or
                # the end); any other event after it means it was not the last: send it unchanged.
                self._held = None
                out.append(_with_json_field(held, "nadir", self._cost_fields(t0)) if verdict & (USAGE | TERMINAL) else held.raw)
            if verdict & CARRIER and self._cost_in_body:
                self._held = ev
                continue
            if verdict & USAGE and self._cost_in_body and not verdict & DROP:
                raw = _with_json_field(ev, "nadir", self._cost_fields(t0))
            if verdict & TERMINAL:
                # The client has everything once the terminal event is through: a gRPC stream
                # closed after it (client hung up on [DONE]) is complete, not cut.
                self._terminal_seen = True
                if comments and not self._inband_sent:
                    out.append(self._inband(t0, ev.raw))
            if not verdict & DROP:
                out.append(raw)
        if passthrough:
            if self._held is not None:
                out.append(self._held.raw)
                self._held = None
            out.append(passthrough)
        if eos:
            if self._held is not None:
                out.append(_with_json_field(self._held, "nadir", self._cost_fields(t0)))
                self._held = None
            out.append(parser.flush())
            if comments and not self._inband_sent:
                out.append(self._inband(t0, self._nl or b"\n"))
            elif not self._priced:
                self._cost_headers(*self._stream_result(), t0)
            self._stream_done = True
        if parser.overflows and not self._overflow_counted:
            self._overflow_counted = True
            count("sse_event_overflow")
        body = b"".join(out)
        return None if body == chunk else body

    def _stream_result(self) -> tuple[str | None, Usage | None, str | None]:
        """(served model, usage, unpriced reason) of the stream as known now."""
        st = self._stream
        served = st.model or self.out.routed_model
        self._tier, self._batch = tier_context(st.service_tier or self._req_tier)
        if self._status >= 400:
            return served, None, "provider_error"
        if st.failed:
            # An error event after HTTP 200: not a complete response, so no cost header or
            # in-band cost may present a price for it; what was reported so far is priced apart
            # as the partial cost (Outcome.partial_cost).
            self.out.result = Result.PROVIDER_ERROR
            self._partial = st.usage()
            return served, None, "stream_error" if self._partial is not None else "provider_error"
        if self._parser is None and self._raw_stream is not None and not self._raw_overflow:
            served2, usage, unpriced = self._read_json(bytes(self._raw_stream))
            return served2 or served, usage, unpriced
        if self._parser is None and self._raw_overflow:
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

    def _inband(self, t0: int, before: bytes) -> bytes:
        """The SSE comment block carrying the cost fields (every SSE parser ignores comments).
        Uses the stream's own line ending (from the event it precedes)."""
        self._inband_sent = True
        h = self._cost_headers(*self._stream_result(), t0)
        return format_block(h, b"\r\n" if before.endswith(b"\r\n") else b"\n")

    def _cost_fields(self, t0: int) -> dict[str, str]:
        """The cost fields as a JSON object for the opt-in usage-event field: the header names
        without the ``x-nadir-`` prefix, with ``_`` for ``-`` (``cost_usd``, ``cost_saved`` …)."""
        h = self._cost_headers(*self._stream_result(), t0)
        return {k[len("x-nadir-"):].replace("-", "_"): v for k, v in h.items()}

    def _end_stream(self, t0: int) -> None:
        self._stream_done = True
        if not self._priced:
            self._cost_headers(*self._stream_result(), t0)

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
            return served, None, "provider_error"
        if not raw:
            return served, None, "no_usage"
        data = decode_body(raw, self._encoding, self.ctx.settings.max_message_bytes)
        if data is None:
            count("response_undecodable", self._encoding)
            return served, None, "unsupported_content_encoding"
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, list):
            body = next((x for x in reversed(body) if isinstance(x, dict) and d.usage(x) is not None), None)
            if body is None:
                return served, None, "no_usage"
        if not isinstance(body, dict):
            count("response_not_json")
            return served, None, "response_not_json"
        served = d.response_model(body) or served
        self._variant = dict(d.price_variant(body))
        usage = self._provider_rules(d.usage(body), body)
        self._tier, self._batch = served_context(body)
        if self._tier is None and not self._batch:
            # The response is silent about its tier: the tier the request asked for, else standard.
            self._tier, self._batch = tier_context(self._req_tier)
        note_response(self.out, body, self.ctx.settings.telemetry.capture_content)
        if usage is None:
            return served, None, "background_pending" if d.is_pending(body) else "no_usage"
        if d.retrievable and not self._first_pricing(body.get("id")):
            return served, None, "already_priced"
        return served, usage, None

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
        """Price (served model, usage), record it in the outcome, return the ``x-nadir-*`` fields."""
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
            else:
                unpriced = cost.unpriced_reason or "unknown_model"
        if unpriced is not None:
            out.unpriced_reason = unpriced
            headers[H_UNPRICED] = unpriced
            count(f"unpriced_{unpriced}")
        if unpriced in ("provider_error", "stream_error"):
            out.result = Result.PROVIDER_ERROR
        if unpriced == "stream_error" and self._partial is not None and served is not None and out.partial_cost is None:
            out.partial_cost = price(self._catalogue_provider(), served, self._partial,
                                     service_tier=self._tier, batch=self._batch, variant=self._variant)
        headers[H_LATENCY] = f"{self.latency_ms(time.perf_counter_ns(), t0):.3f}"
        return headers

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
