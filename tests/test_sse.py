"""The incremental SSE parser: WHATWG grammar, arbitrary splits, bounded memory."""

from __future__ import annotations

import json
import random

from nadir_extproc.sse import SSEParser
from tests.conftest import load_case


def feed_all(data: bytes, cuts: list[int], parser: SSEParser | None = None):
    p = parser or SSEParser()
    events, passthrough = [], b""
    prev = 0
    for c in [*cuts, len(data)]:
        e, pt = p.feed(data[prev:c])
        events += e
        passthrough += pt
        prev = c
    return events, passthrough, p


def test_grammar_fields_comments_and_line_endings():
    data = (
        b": keep-alive comment\r\n\r\n"
        b"event: message_start\r\ndata:{\"a\": \"x: y\"}\r\n\r\n"
        b"id: 7\nretry: 1500\ndata: line one\ndata:  line two\n\n"
        b"data: cr only\r\rdata: [DONE]\n\n"
    )
    events, _, p = feed_all(data, [])
    assert [(e.event, e.data, e.has_data) for e in events] == [
        (None, "", False),                         # a comment-only block dispatches nothing useful
        ("message_start", '{"a": "x: y"}', True),  # no space after "data:" and ": " inside JSON
        (None, "line one\n line two", True),       # exactly one leading space stripped
        (None, "cr only", True),                   # bare CR line endings
        (None, "[DONE]", True),
    ]
    assert events[2].id == "7" and events[2].retry == "1500"
    assert b"".join(e.raw for e in events) == data and p.pending == b""


def test_every_split_point_gives_the_same_events_shared_case_15(cases_dir):
    case = load_case(cases_dir, "15-sse-grammar-comments-crlf-nospace")
    data = case["input"]["A_openai_compatible_gateway_crlf_with_comments"].encode()
    whole, _, _ = feed_all(data, [])
    data_events = [e for e in whole if e.has_data]
    assert len(data_events) == 5 and data_events[-1].data == "[DONE]"  # the case's data_events
    text = "".join(
        (json.loads(e.data)["choices"][0]["delta"].get("content") or "")
        for e in data_events[:-1] if json.loads(e.data)["choices"]
    )
    assert text == "Note: ratio is 3:2 {\"k\": [1]}"
    for cut in range(1, len(data)):
        events, _, _ = feed_all(data, [cut])
        assert [(e.event, e.data, e.raw) for e in events] == [(e.event, e.data, e.raw) for e in whole]


def test_split_inside_crlf_and_inside_a_utf8_character():
    data = "data: {\"t\": \"héllo ✓\"}\r\n\r\n".encode()
    i = data.index("✓".encode())
    events, _, _ = feed_all(data, [i + 1, data.index(b"\r\n") + 1])
    assert [e.data for e in events] == ['{"t": "héllo ✓"}']


def test_random_rechunking_is_lossless():
    rng = random.Random(20261130)
    data = b"".join(f"event: e{i}\ndata: {{\"i\": {i}}}\n\n".encode() for i in range(200))
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), 40))
        events, _, p = feed_all(data, cuts)
        assert [e.event for e in events] == [f"e{i}" for i in range(200)]
        assert b"".join(e.raw for e in events) == data and p.pending == b""


def test_partial_event_memory_is_bounded_and_overflow_counted():
    p = SSEParser(max_event_bytes=1024)
    big = b"data: " + b"x" * 5000
    events, passthrough = p.feed(big)
    assert events == [] and passthrough == big and p.overflows == 1 and p.pending == b""
    # The rest of the oversized event comes back in order, as a data-less event (forwarded
    # unparsed before the next events), then parsing resumes.
    events, passthrough = p.feed(b"yyy\n\ndata: ok\n\n")
    assert passthrough == b"" and [(e.raw, e.has_data) for e in events] == [(b"yyy\n\n", False), (b"data: ok\n\n", True)]
    assert events[1].data == "ok"


def test_flush_returns_an_unterminated_tail():
    p = SSEParser()
    assert p.feed(b"data: a\n\ndata: b") [0][0].data == "a"
    assert p.flush() == b"data: b" and p.pending == b""


def test_blank_lines_with_no_event_in_progress_dispatch_nothing_and_every_byte_comes_back():
    """WHATWG HTML 9.2.6: a blank line with an empty data buffer dispatches no event. A stream of
    bare line ends (a broken or hostile upstream) used to make one Event per line: 2 MiB of them
    was two million events. The bytes still all come back, in order, for forwarding."""
    p = SSEParser()
    chunks = [b"\n\n\r\n", b"\r", b"\n: ping\n\n", b"\n" * 5000, b"data: {\"a\": 1}\n\n", b"\n\n"]
    events, out = [], []
    for c in chunks:
        evs, passthrough = p.feed(c)
        events += evs
        out += [e.raw for e in evs] + [passthrough]
    out.append(p.flush())
    assert b"".join(out) == b"".join(chunks)
    assert [(e.data, e.has_data) for e in events] == [("", False), ('{"a": 1}', True)]
    assert events[0].raw == b"\n\n\r\n\r\n: ping\n\n"
    assert events[1].raw == b"\n" * 5000 + b"data: {\"a\": 1}\n\n"

    big = SSEParser()
    n = 0
    for _ in range(32):  # 2 MiB of "\n" in 64 KiB chunks: bounded by max_event_bytes, not per line
        evs, _ = big.feed(b"\n" * 65536)
        n += len(evs)
    assert n <= 2
