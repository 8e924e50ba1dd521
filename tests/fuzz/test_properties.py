"""Issue 18: bad input as property-based tests (hypothesis). Properties:

- no exception escapes a phase (``internal_error`` never counted; every phase answers);
- memory stays bounded (the SSE parser's held bytes never exceed its bound plus one chunk);
- a rewrite changes nothing but the top-level ``model``;
- an unpriceable response is unpriced with a reason, never $0; no header value carries CR/LF.

Inputs: SSE streams (valid and corrupted) in arbitrary chunkings; usage blocks with null,
negative, string, huge, float or missing fields; request bodies that are not JSON, truncated, deeply
nested, with duplicate keys, invalid UTF-8 or a numeric ``model``; request header values with
CR/LF or non-ASCII; HTML error pages from an intermediary."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from hypothesis import given, strategies as st

from nadir_extproc.processor import RequestProcessor
from nadir_extproc.sse import SSEParser
from nadir_extproc.stats import COUNTS
from tests.test_processor import REQ, body, ctx, headers

CHAT_PATH = "/v1/chat/completions"
DIALECT_PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1beta/models/gemini-2.5-flash:generateContent"]


def internal_errors() -> int:
    return sum(v for k, v in COUNTS.items() if k.startswith("internal_error") or k == "on_complete_error")


def all_set_headers(r) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for phase in ("request_headers", "request_body", "response_headers", "response_body"):
        if r.HasField(phase):
            for o in getattr(r, phase).response.header_mutation.set_headers:
                out[o.header.key] = o.header.raw_value
    return out


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for c in [*points, len(data)]:
        out.append(data[prev:c])
        prev = c
    return out


# ------------------------------------------------------------------ SSE parser
EVENT = st.builds(
    lambda name, payload, crlf: ((f"event: {name}\n" if name else "") + f"data: {json.dumps(payload)}\n\n").replace(
        "\n", "\r\n" if crlf else "\n").encode(),
    st.one_of(st.none(), st.text("abcdefgh_", min_size=1, max_size=12)),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20), st.none()), max_size=4),
    st.booleans(),
)
VALID_STREAM = st.lists(EVENT, min_size=1, max_size=20).map(b"".join)
CORRUPT_STREAM = st.tuples(VALID_STREAM, st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=30)),
                                                  max_size=5)).map(
    lambda t: _insert(t[0], t[1]))


def _insert(data: bytes, junk: list[tuple[int, bytes]]) -> bytes:
    for at, b in junk:
        i = at % (len(data) + 1)
        data = data[:i] + b + data[i:]
    return data


def _feed(data: bytes, cuts: list[int], bound: int) -> tuple[list, bytes, SSEParser]:
    p = SSEParser(max_event_bytes=bound)
    events, out = [], b""
    for part in chunked(data, cuts):
        ev, passthrough = p.feed(part)
        events += ev
        out += b"".join(e.raw for e in ev) + passthrough
        # Memory: what the parser holds never exceeds its bound plus one chunk.
        assert len(p.pending) <= bound + len(part)
    out += p.flush()
    return events, out, p


@given(VALID_STREAM, st.lists(st.integers(0, 10_000), max_size=30))
def test_sse_any_chunking_of_a_valid_stream_gives_the_same_events_losslessly(data, cuts):
    whole, out1, _ = _feed(data, [], 1 << 20)
    events, out, _ = _feed(data, cuts, 1 << 20)
    assert out == out1 == data
    assert [(e.event, e.data) for e in events] == [(e.event, e.data) for e in whole]


@given(CORRUPT_STREAM, st.lists(st.integers(0, 10_000), max_size=30), st.integers(16, 4096))
def test_sse_corrupt_streams_never_raise_lose_or_hold_unbounded_bytes(data, cuts, bound):
    _, out, _ = _feed(data, cuts, bound)
    assert out == data  # every byte forwarded, in order


# ------------------------------------------------------------------ streamed responses through the processor
CHAT_STREAM = b"".join([
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"h\xc3\xa9"}}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":41,"completion_tokens":11}}\n\n',
    b"data: [DONE]\n\n",
])


def _stream_through(data: bytes, cuts: list[int]) -> tuple[bytes, list]:
    done: list = []
    proc = RequestProcessor(ctx(on_complete=done.append))
    proc.handle(headers("request_headers", REQ))
    proc.handle(body("request_body", b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}'))
    proc.handle(headers("response_headers", {":status": "200", "content-type": "text/event-stream"}))
    out = b""
    parts = [*chunked(data, cuts), b""]
    for i, part in enumerate(parts):
        r = proc.handle(body("response_body", part, eos=i == len(parts) - 1))
        cr = r.response_body.response
        out += cr.body_mutation.body if cr.HasField("body_mutation") else part
    proc.finish()
    return out, done


@given(st.lists(st.integers(0, 10_000), max_size=25))
def test_any_chunking_of_a_stream_prices_it_the_same_and_forwards_it_unchanged(cuts):
    before = internal_errors()
    out, done = _stream_through(CHAT_STREAM, cuts)
    # Forwarded unchanged but for the in-band cost: one SSE comment block before [DONE].
    inband = re.search(rb"(?m)^: x-nadir-routed-to=[^\n]*\n(?:: [^\n]*\n)*\n", out)
    assert inband and b"x-nadir-cost-usd=0.00001275" in inband.group(0)
    assert out[: inband.start()] + out[inband.end():] == CHAT_STREAM
    # gpt-4o-mini: 41 * 0.15/1e6 + 11 * 0.60/1e6 = 0.00001275 USD
    assert done[0].cost.total_usd == Decimal("0.00001275")
    assert internal_errors() == before


@given(CORRUPT_STREAM, st.lists(st.integers(0, 10_000), max_size=10))
def test_corrupt_streams_through_the_processor_never_raise(data, cuts):
    before = internal_errors()
    _, done = _stream_through(data, cuts)
    o = done[0]
    assert internal_errors() == before
    assert o.cost is None or o.cost.total_usd is None or o.cost.total_usd >= 0
    if o.cost is None or o.cost.total_usd is None:
        assert o.unpriced_reason


# ------------------------------------------------------------------ usage blocks
ODD = st.one_of(st.none(), st.integers(-10**30, 10**30), st.text(max_size=10), st.floats(allow_nan=True),
                st.booleans(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
USAGE_KEYS = {
    "/v1/chat/completions": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "/v1/responses": ["input_tokens", "output_tokens", "total_tokens"],
    "/v1/messages": ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"],
    "/v1beta/models/gemini-2.5-flash:generateContent": ["promptTokenCount", "candidatesTokenCount", "totalTokenCount",
                                                        "thoughtsTokenCount"],
}
MODELS = {"/v1/chat/completions": "gpt-4o-mini", "/v1/responses": "gpt-4o-mini", "/v1/messages": "claude-haiku-4-5",
          "/v1beta/models/gemini-2.5-flash:generateContent": "gemini-2.5-flash"}


@st.composite
def odd_usage(draw):
    path = draw(st.sampled_from(DIALECT_PATHS))
    keys = USAGE_KEYS[path]
    usage = {k: draw(ODD) for k in keys if draw(st.booleans())}
    ukey = "usageMetadata" if "gemini" in path else "usage"
    resp = {"id": "r1", "model": MODELS[path], ukey: usage if draw(st.booleans()) else draw(ODD)}
    return path, resp


def _valid(v) -> bool:
    """A non-negative integer count, here or in a nested details object."""
    if isinstance(v, dict):
        return any(_valid(x) for x in v.values())
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


@given(odd_usage())
def test_odd_usage_is_never_an_error_and_never_a_silent_zero(case):
    path, resp = case
    before = internal_errors()
    proc = RequestProcessor(ctx())
    req = {"contents": []} if "gemini" in path else {"model": MODELS[path], "max_tokens": 5, "messages": [], "input": "x"}
    proc.handle(headers("request_headers", {**REQ, ":path": path}))
    proc.handle(body("request_body", json.dumps(req).encode()))
    proc.handle(headers("response_headers", {":status": "200", "content-type": "application/json"}))
    try:
        raw = json.dumps(resp).encode()
    except ValueError:
        return
    h = all_set_headers(proc.handle(body("response_body", raw)))
    assert internal_errors() == before
    # Exactly one of: a cost, or an unpriced reason.
    assert ("x-nadir-cost-usd" in h) != ("x-nadir-unpriced-reason" in h), h
    if "x-nadir-cost-usd" in h:
        cost = Decimal(h["x-nadir-cost-usd"].decode())
        assert cost >= 0
        ukey = "usageMetadata" if "gemini" in path else "usage"
        u = resp[ukey]
        # A priced response had at least one readable count; none of what it counted was garbage.
        assert isinstance(u, dict) and any(_valid(v) for v in u.values()), (u, cost)
    for v in h.values():
        assert b"\r" not in v and b"\n" not in v


# ------------------------------------------------------------------ request bodies
JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                           lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c, max_size=3)),
                           max_leaves=10)


@st.composite
def request_bodies(draw):
    kind = draw(st.sampled_from(["valid", "bytes", "truncated", "deep", "dupes", "badutf8", "numeric"]))
    doc = {"model": "auto", "messages": [{"role": "user", "content": draw(st.text(max_size=30))}],
           **draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "model"), JSON_VALUES, max_size=3))}
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "truncated":
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    if kind == "deep":
        n = draw(st.integers(100, 5000))
        return b'{"model":"auto","x":' + b"[" * n + b"]" * n + b"}"
    if kind == "dupes":
        return b'{"model":"auto","model":"auto",' + raw[1:]
    if kind == "badutf8":
        return raw[:-1] + b',"s":"\xff\xfe\xc3"}'
    if kind == "numeric":
        return raw.replace(b'"model": "auto"', b'"model": ' + str(draw(st.integers())).encode(), 1)
    return raw


@given(request_bodies(), st.sampled_from(["/v1/chat/completions", "/v1/responses", "/v1/messages"]))
def test_any_request_body_is_answered_and_a_rewrite_changes_only_the_top_level_model(raw, path):
    before = internal_errors()
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", {**REQ, ":path": path}))
    r = proc.handle(body("request_body", raw))
    assert internal_errors() == before
    assert r.HasField("request_body") or r.HasField("immediate_response")
    cr = r.request_body.response
    if cr.HasField("body_mutation"):
        try:
            new = json.loads(cr.body_mutation.body)
            old = json.loads(raw)
        except RecursionError:  # nested deeper than Python's json reads: compare the bytes
            i = raw.index(b'"auto"')
            model = cr.body_mutation.body[i + 1:].split(b'"', 1)[0]
            assert cr.body_mutation.body == raw[:i] + b'"' + model + b'"' + raw[i + 6:]
            return
        assert set(new) == set(old) | {"model"} or set(new) == set(old)
        assert {k: v for k, v in new.items() if k not in ("model", "stream_options")} == \
               {k: v for k, v in old.items() if k not in ("model", "stream_options")}
        assert isinstance(new["model"], str) and new["model"] != "auto"
        hdrs = {o.header.key: o.header.raw_value for o in cr.header_mutation.set_headers}
        assert int(hdrs["content-length"]) == len(cr.body_mutation.body)


# ------------------------------------------------------------------ header values, HTML error pages
HEADER_VALUE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["a\r\nx-injected: 1", "\n", "é✓", "\x00\x7f", "Bearer sk-\r\n"])


@given(st.dictionaries(st.sampled_from(["x-nadir-user", "x-nadir-feature", "x-nadir-team", "authorization", "x-api-key",
                                        "x-nadir-tier", "user-agent", "x-request-id", "traceparent"]), HEADER_VALUE,
                       max_size=6))
def test_header_values_with_crlf_or_non_ascii_never_raise_or_reach_a_header_we_set(extra):
    before = internal_errors()
    proc = RequestProcessor(ctx())
    seen: dict[str, bytes] = {}
    for m in (headers("request_headers", {**REQ, **extra}),
              body("request_body", b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'),
              headers("response_headers", {":status": "200", "content-type": "application/json"}),
              body("response_body", b'{"model":"gpt-4o-mini","usage":{"prompt_tokens":1,"completion_tokens":1}}')):
        seen.update(all_set_headers(proc.handle(m)))
    proc.finish()
    assert internal_errors() == before
    for k, v in seen.items():
        assert b"\r" not in v and b"\n" not in v and b"\x00" not in v, (k, v)


@given(st.sampled_from([200, 400, 404, 429, 500, 502, 503, 504]), st.text(max_size=200),
       st.sampled_from(["text/html", "text/html; charset=utf-8", "application/json", "text/plain"]))
def test_html_error_pages_from_an_intermediary_are_unpriced_with_a_reason(status, text, ctype):
    page = f"<html><head><title>{status} Bad Gateway</title></head><body><h1>{text}</h1></body></html>".encode()
    before = internal_errors()
    proc = RequestProcessor(ctx())
    proc.handle(headers("request_headers", REQ))
    proc.handle(body("request_body", b'{"model":"auto","messages":[]}'))
    proc.handle(headers("response_headers", {":status": str(status), "content-type": ctype}))
    h = all_set_headers(proc.handle(body("response_body", page)))
    assert internal_errors() == before
    assert "x-nadir-cost-usd" not in h
    assert h["x-nadir-unpriced-reason"] == (b"provider_error" if status >= 400 else b"response_not_json")
