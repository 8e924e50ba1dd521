"""The in-band cost block of a streamed response: written by the processor, read by clients.

Response headers leave before a stream's usage exists, so the ``x-nadir-*`` fields travel inside
the stream as SSE comment lines (``: name=value``), one block ended by a blank line, placed before
the terminal event. Comments are ignored by every SSE parser (WHATWG HTML, "Server-sent events",
9.2.6), the official SDKs included.
"""

from __future__ import annotations

PREFIX = b": x-nadir-"


def format_block(fields: dict[str, str], newline: bytes = b"\n") -> bytes:
    """``fields`` (header name -> value, latin-1 text) as one SSE comment block with ``newline``
    line endings, ended by a blank line."""
    lines = [f": {k}={v}".encode("latin-1") for k, v in fields.items()]
    return newline.join(lines) + newline + newline


def parse_fields(stream: bytes) -> dict[str, str]:
    """The ``x-nadir-*`` fields of every in-band comment line in a streamed body (name -> value);
    empty when the stream has none."""
    out: dict[str, str] = {}
    for line in stream.splitlines():
        if line.startswith(PREFIX):
            k, _, v = line[2:].decode("latin-1").partition("=")
            out[k] = v
    return out
