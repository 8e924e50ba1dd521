"""One streamed response body, chunk by chunk (STREAMED mode): the SSE parser — or the inflater of a
compressed stream, or a bounded raw copy of a non-SSE one — the dialect's stream reader, and where
the in-band cost goes (``nadir_extproc.inband``).

``ResponseStream.feed`` takes one chunk and returns the bytes to send instead (``None``: forward
it unchanged). The cost fields come from the caller's ``fields`` callback — the processor's one
priced result — so the comment block and the opt-in JSON object carry the same values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nadir_extproc import headers as hn
from nadir_extproc.dialects import Dialect
from nadir_extproc.dialects.base import CARRIER, DROP, TERMINAL, USAGE, StreamUsage, tier_and_batch
from nadir_extproc.httpcodec import DECODABLE, MAX_DECODED_BYTES, StreamDecoder
from nadir_extproc.inband import format_block
from nadir_extproc.pricing.priced import Billed
from nadir_extproc.providers.base import Provider
from nadir_extproc.response import Asked, JsonRead, read_json
from nadir_extproc.sse import SSEParser
from nadir_extproc.stats import count

#: The JSON key of the opt-in in-body cost object.
JSON_KEY = "nadir"

Fields = Callable[[], dict[str, str]]


def with_json_field(ev: Any, key: str, value: Any) -> bytes:
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


def json_object(fields: dict[str, str]) -> dict[str, str]:
    """The cost fields as the in-body JSON object: header names without ``x-nadir-``, ``_`` for
    ``-`` (``cost_usd``, ``cost_saved`` …)."""
    return {hn.json_field(k): v for k, v in fields.items()}


class ResponseStream:
    """The state of one streamed response body.

    ``reader``: the dialect's stream reader; ``sse``: the response is ``text/event-stream``;
    ``encoding``: its ``content-encoding``; ``cost_in_body``: the client opted in to the JSON cost
    object; ``max_event_bytes`` / ``max_raw_bytes``: the SSE event and raw-copy bounds."""

    __slots__ = (
        "dialect", "reader", "parser", "inflate", "encoding", "raw", "raw_overflow", "max_raw",
        "cost_in_body", "inband_sent", "terminal_seen", "done", "held", "nl", "overflow_counted",
    )

    def __init__(self, dialect: Dialect, reader: StreamUsage, *, sse: bool, encoding: str, cost_in_body: bool,
                 max_event_bytes: int, max_raw_bytes: int) -> None:
        self.dialect = dialect
        self.reader = reader
        self.encoding = encoding
        self.parser: SSEParser | None = None
        self.inflate: Any = None
        if sse and encoding in ("", "identity"):
            self.parser = SSEParser(max_event_bytes)
        elif sse and encoding in DECODABLE:
            # gzip / deflate / br / zstd: decoded incrementally, bounded per chunk (httpcodec)
            self.parser = SSEParser(max_event_bytes)
            self.inflate = StreamDecoder(encoding, max(max_raw_bytes, MAX_DECODED_BYTES))
        self.raw = bytearray()  # non-SSE copy, appended in place: linear, not a copy per chunk
        self.raw_overflow = False
        self.max_raw = max_raw_bytes
        self.cost_in_body = cost_in_body
        self.inband_sent = False
        self.terminal_seen = False  # the terminal event went through: the client has everything
        self.done = False  # end_of_stream seen
        self.held: Any = None  # a CARRIER event held for the opt-in cost field
        self.nl = b""  # the stream's line ending, from its first event (CRLF streams get CRLF)
        self.overflow_counted = False

    @property
    def rewrites(self) -> bool:
        """True when the stream's bytes may change (plain SSE): a ``content-length`` must go."""
        return self.parser is not None and self.inflate is None

    @property
    def complete(self) -> bool:
        """The client got the whole stream (its end, or its terminal event)."""
        return self.done or self.terminal_seen

    def feed(self, chunk: bytes, eos: bool, fields: Fields) -> bytes | None:
        """One STREAMED response chunk: the bytes to send instead, or ``None`` to forward it
        unchanged. Complete events are forwarded as they come; a partial event at the end of a
        chunk is held until it completes (no complete event is ever delayed, except, with the
        opt-in cost field, a Chat finish chunk until the usage chunk we drop right after it).
        ``fields()`` gives the cost fields; it is called once the usage is known, and at the end."""
        parser = self.parser
        if parser is None:
            # Not SSE (e.g. Gemini's JSON-array stream) or an encoding we cannot decode: forward
            # unchanged, keep a bounded copy to read usage from at the end (compressed as it came,
            # decoded at the end within the same bound).
            if (not self.raw_overflow and (not self.encoding or self.encoding in DECODABLE)
                    and len(self.raw) + len(chunk) <= self.max_raw):
                self.raw += chunk
            elif chunk:
                self.raw_overflow = True
            if eos:
                self._end(fields)
            return None
        if self.inflate is not None:
            # Compressed SSE: parse the inflated copy, forward the compressed bytes untouched (no
            # in-band cost: rewriting would need re-compression).
            data = self.inflate.feed(chunk)
            if data is not None:
                events, _ = parser.feed(data)
            else:  # corrupt, or a decompression bomb (counted by the decoder as body_inflate_limit)
                count("sse_inflate_error", self.encoding)
                self.inflate = None
                self.parser = None
                self.raw_overflow = True
                events = []
            for ev in events:
                self.reader.on_event(ev)
            if eos:
                self._end(fields)
            return None
        events, passthrough = parser.feed(chunk)
        out: list[bytes] = []
        comments = self.dialect.sse_comments
        for ev in events:
            verdict = self.reader.on_event(ev)
            raw = ev.raw
            if not self.nl:
                self.nl = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
            held = self.held
            if held is not None:
                # The held CARRIER gets the cost field once the usage is known (the usage event, or
                # the end); any other event after it means it was not the last: send it unchanged.
                self.held = None
                out.append(self._with_cost(held, fields) if verdict & (USAGE | TERMINAL) else held.raw)
            if verdict & CARRIER and self.cost_in_body:
                self.held = ev
                continue
            if verdict & USAGE and self.cost_in_body and not verdict & DROP:
                raw = self._with_cost(ev, fields)
            if verdict & TERMINAL:
                # The client has everything once the terminal event is through: a gRPC stream
                # closed after it (client hung up on [DONE]) is complete, not cut.
                self.terminal_seen = True
                if comments and not self.inband_sent:
                    out.append(self._inband(fields, ev.raw))
            if not verdict & DROP:
                out.append(raw)
        if passthrough:
            if self.held is not None:
                out.append(self.held.raw)
                self.held = None
            out.append(passthrough)
        if eos:
            if self.held is not None:
                out.append(self._with_cost(self.held, fields))
                self.held = None
            out.append(parser.flush())
            if comments and not self.inband_sent:
                out.append(self._inband(fields, self.nl or b"\n"))
            self._end(fields)
        if parser.overflows and not self.overflow_counted:
            self.overflow_counted = True
            count("sse_event_overflow")
        body = b"".join(out)
        return None if body == chunk else body

    def read(self, provider: Provider, asked: Asked) -> JsonRead:
        """What the stream reported so far, ready to price (``Billed``), with its response id and
        finish reasons: the dialect's stream reader, then ``provider``'s rules. An error event
        after HTTP 200 is ``stream_error`` (its usage so far is ``Billed.partial``, priced apart)
        or ``provider_error``; a non-SSE stream is read as one JSON body (``response.read_json``);
        a compressed one we could not inflate is ``unsupported_content_encoding``."""
        st = self.reader
        served = st.model or asked.routed
        tier, batch = tier_and_batch(st.service_tier or asked.tier)
        if asked.error is not None:
            return JsonRead(Billed(served, unpriced=asked.error, service_tier=tier, batch=batch))
        ids = (st.response_id, st.finish_reasons)
        if st.failed:
            # Not a complete response: no cost header or in-band cost may present a price for it.
            partial = st.usage()
            return JsonRead(Billed(served, unpriced="stream_error" if partial is not None else "provider_error",
                                   service_tier=tier, batch=batch, variant=dict(st.price_variant()), partial=partial), *ids)
        if self.parser is None and not self.raw_overflow:
            r = read_json(self.dialect, provider, bytes(self.raw), Asked(served, None, asked.tier, asked.body, asked.first),
                          encoding=self.encoding, max_bytes=self.max_raw)
            return JsonRead(r.billed, r.response_id or st.response_id, r.finish_reasons or st.finish_reasons, r.body)
        if self.parser is None:
            return JsonRead(Billed(served, unpriced="unsupported_content_encoding", service_tier=tier, batch=batch), *ids)
        raw_usage = st.raw_usage() if hasattr(st, "raw_usage") else None
        usage, reported, extra = provider.bill(st.usage(), {"usage": raw_usage} if isinstance(raw_usage, dict) else {}, asked.body)
        variant = {**st.price_variant(), **extra}
        if usage is None:
            return JsonRead(Billed(served, unpriced="no_usage", service_tier=tier, batch=batch, variant=variant), *ids)
        if self.dialect.retrievable and not asked.first(st.response_id):
            return JsonRead(Billed(served, unpriced="already_priced", service_tier=tier, batch=batch, variant=variant), *ids)
        return JsonRead(Billed(served, usage, None, tier, batch, variant, reported), *ids)

    def _end(self, fields: Fields) -> None:
        self.done = True
        fields()  # priced now at the latest

    def _with_cost(self, ev: Any, fields: Fields) -> bytes:
        return with_json_field(ev, JSON_KEY, json_object(fields()))

    def _inband(self, fields: Fields, before: bytes) -> bytes:
        """The SSE comment block of the cost fields, in the stream's own line ending (from the
        event it precedes)."""
        self.inband_sent = True
        return format_block(fields(), b"\r\n" if before.endswith(b"\r\n") else b"\n")
