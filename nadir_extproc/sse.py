"""The one incremental Server-Sent Events parser, shared by every dialect.

Grammar: WHATWG HTML "Server-sent events", section 9.2.6 (interpreting an event stream):
lines end in ``\\r\\n``, ``\\n`` or ``\\r``; a blank line dispatches the event; a line starting with
``:`` is a comment; the field name is the text before the first ``:`` and exactly one space after
it is stripped; ``data`` lines are joined with ``\\n``; ``event``, ``id``, ``retry`` are kept.

Besides parsing, the parser keeps the *raw bytes* of each event (from its first line through the
blank line that ends it), so the processor can forward, drop, or insert bytes at event
boundaries. Bytes arrive split anywhere (mid-line, mid-JSON, mid-UTF-8 character, between ``\\r``
and ``\\n``); only complete events are returned, the partial tail is kept for the next chunk.

Memory per stream is bounded by ``max_event_bytes``: a partial event growing beyond it is dropped
(its bytes are still returned to be forwarded unparsed) and ``overflows`` is incremented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: One line and its terminator. A lone trailing "\r" is not matched (it may be the first half of
#: a "\r\n" split across chunks) — see ``SSEParser.feed``.
_LINE = re.compile(rb"([^\r\n]*)(\r\n|\n|\r(?!$))")


@dataclass(slots=True)
class Event:
    """One dispatched SSE event.

    - ``event``: the ``event:`` field (``None`` when absent; SSE's default type is "message").
    - ``data``: the ``data:`` lines joined with ``\\n`` (``""`` when the event had none).
    - ``id``, ``retry``: the fields when present.
    - ``raw``: the exact bytes of the event, blank line included (what the client receives).
    - ``has_data``: whether any ``data`` field was present (an all-comment block has none).
    """

    event: str | None
    data: str
    raw: bytes
    id: str | None = None
    retry: str | None = None
    has_data: bool = False


class SSEParser:
    """Incremental SSE parser: ``feed(chunk)`` returns the events completed by ``chunk``.

    ``pending`` holds the bytes of the event in progress (not yet complete).
    """

    __slots__ = ("_buf", "max_event_bytes", "overflows", "_skipping")

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self._buf = b""
        self.max_event_bytes = max_event_bytes
        self.overflows = 0
        self._skipping = False

    @property
    def pending(self) -> bytes:
        """Bytes received that do not yet form a complete event."""
        return self._buf

    def feed(self, chunk: bytes) -> tuple[list[Event], bytes]:
        """Add ``chunk``; return ``(events, passthrough)``.

        ``events`` are the events completed by this chunk, in order. ``passthrough`` is the bytes
        of an oversized partial event that was given up on (forward them unparsed; usually empty).
        """
        buf = self._buf + chunk if self._buf else chunk
        events: list[Event] = []
        passthrough = b""
        start = 0  # start of the current event in buf
        pos = 0
        ev_type: str | None = None
        data: list[str] = []
        ev_id: str | None = None
        retry: str | None = None
        has_data = False
        n = len(buf)
        while pos < n:
            m = _LINE.match(buf, pos)
            if m is None:
                break  # incomplete line (or a lone "\r" at the end): wait for more bytes
            line = m.group(1)
            pos = m.end()
            if not line:
                if self._skipping:
                    passthrough += buf[start:pos]
                    self._skipping = False
                else:
                    events.append(Event(ev_type, "\n".join(data), buf[start:pos], ev_id, retry, has_data))
                start = pos
                ev_type, data, ev_id, retry, has_data = None, [], None, None, False
                continue
            if self._skipping or line[:1] == b":":
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value.decode("utf-8", "replace"))
                has_data = True
            elif name == b"event":
                ev_type = value.decode("utf-8", "replace")
            elif name == b"id":
                ev_id = value.decode("utf-8", "replace")
            elif name == b"retry":
                retry = value.decode("ascii", "replace")
        rest = buf[start:]
        if len(rest) > self.max_event_bytes:
            self.overflows += 1
            self._skipping = True
            passthrough += rest
            rest = b""
        self._buf = rest
        return events, passthrough

    def flush(self) -> bytes:
        """End of stream: return (and forget) any unterminated tail, unparsed."""
        tail, self._buf = self._buf, b""
        self._skipping = False
        return tail
