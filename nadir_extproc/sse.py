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
#: A run of line ends (blank lines): skipped in one step where no event is in progress.
_BLANKS = re.compile(rb"(?:\r\n|\n|\r(?!$))+")


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

    Linear in the stream: each byte is scanned once. The lines of an unfinished event are parsed as
    they complete and kept (as parsed fields and raw pieces) until the blank line; an unfinished
    line is kept as pieces and only joined once a chunk brings a line end. So an event split over
    many chunks costs no more than the same event in one chunk.
    """

    __slots__ = (
        "max_event_bytes", "overflows", "_skipping", "_parts", "_tail", "_size",
        "_type", "_data", "_id", "_retry", "_has_data", "_open",
    )

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self.max_event_bytes = max_event_bytes
        self.overflows = 0
        self._skipping = False
        self._parts: list[bytes] = []  # raw complete lines of the event in progress
        self._tail: list[bytes] = []  # pieces of the unfinished line
        self._size = 0  # bytes in _parts + _tail
        self._reset()

    def _reset(self) -> None:
        self._type: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: str | None = None
        self._has_data = False
        self._open = False  # a line other than a blank one has arrived for the event in progress

    @property
    def pending(self) -> bytes:
        """Bytes received that do not yet form a complete event."""
        return b"".join(self._parts) + b"".join(self._tail)

    def feed(self, chunk: bytes) -> tuple[list[Event], bytes]:
        """Add ``chunk``; return ``(events, passthrough)``.

        ``events`` are the events completed by this chunk, in order. ``passthrough`` is the bytes
        of an oversized partial event that was given up on (forward them unparsed, after the
        events; usually empty). The end of a given-up event (through its blank line) comes back
        in order as a data-less event (``has_data`` false), then parsing resumes.
        """
        events: list[Event] = []
        tail = self._tail
        if tail:
            if b"\n" not in chunk and b"\r" not in chunk and not tail[-1].endswith(b"\r"):
                # Still inside one line: keep the piece, scan nothing.
                tail.append(chunk)
                self._size += len(chunk)
                return events, self._bound()
            buf = b"".join(tail) + chunk
            self._size -= len(buf) - len(chunk)
            self._tail = []
        else:
            buf = chunk
        parts = self._parts
        start = 0  # start of this buffer's part of the current event
        pos = 0
        n = len(buf)
        while pos < n:
            m = _LINE.match(buf, pos)
            if m is None:
                break  # incomplete line (or a lone "\r" at the end): wait for more bytes
            line = m.group(1)
            if not line and not self._open and not self._skipping:
                # Blank lines with no event in progress dispatch nothing (section 9.2.6: the data
                # buffer is empty); the whole run is skipped in one step and its bytes travel as the
                # start of the next event's raw (or come back from flush()). A stream of bare line
                # ends used to make one Event per line (2 MiB of them: 13 s on the event loop).
                pos = _BLANKS.match(buf, pos).end()
                continue
            pos = m.end()
            if not line:
                raw = buf[start:pos]
                if parts:
                    raw = b"".join(parts) + raw
                    parts.clear()
                    self._size = 0
                if self._skipping:
                    self._skipping = False
                    events.append(Event(None, "", raw))
                else:
                    events.append(Event(self._type, "\n".join(self._data), raw, self._id, self._retry, self._has_data))
                start = pos
                self._reset()
                continue
            self._open = True
            if self._skipping or line[:1] == b":":
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value.decode("utf-8", "replace"))
                self._has_data = True
            elif name == b"event":
                self._type = value.decode("utf-8", "replace")
            elif name == b"id":
                self._id = value.decode("utf-8", "replace")
            elif name == b"retry":
                self._retry = value.decode("ascii", "replace")
        if pos > start:
            parts.append(buf[start:pos])
        if pos < n:
            self._tail.append(buf[pos:])
        self._size += n - start
        return events, self._bound()

    def _bound(self) -> bytes:
        """Give up on a partial event that grew beyond ``max_event_bytes``: its bytes so far."""
        if self._size <= self.max_event_bytes:
            return b""
        self.overflows += 1
        self._skipping = True
        out = self.pending
        self._parts = []
        self._tail = []
        self._size = 0
        self._reset()
        return out

    def flush(self) -> bytes:
        """End of stream: return (and forget) any unterminated tail, unparsed."""
        tail = self.pending
        self._parts = []
        self._tail = []
        self._size = 0
        self._skipping = False
        self._reset()
        return tail
