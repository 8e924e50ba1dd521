"""The one W3C ``traceparent`` reader (W3C Trace Context, section 3.2 "traceparent Header").

Pure; used by telemetry (our span's parent), budgets (the ``trace`` scope) and the ledger
(``trace_id`` column).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_TP = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class TraceParent(NamedTuple):
    """A valid ``traceparent``: ``version`` (2 hex), ``trace_id`` (32 lower-case hex),
    ``span_id`` (16 hex, the parent span) and ``flags`` (int; bit 0 = sampled)."""

    version: str
    trace_id: str
    span_id: str
    flags: int


def parse_traceparent(value: str | None) -> TraceParent | None:
    """``value`` read as a W3C ``traceparent``; ``None`` when absent or invalid: not
    ``version-traceid-parentid-flags`` in lower-case hex, version ``ff``, an all-zero trace or
    parent id, or a version ``00`` value with extra fields (later versions may add them).
    Never raises."""
    if not value:
        return None
    m = _TP.fullmatch(value)
    if m is None:
        return None
    version, tid, sid, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or tid == _ZERO_TRACE or sid == _ZERO_SPAN:
        return None
    return TraceParent(version, tid, sid, int(flags, 16))


def trace_id_of(value: str | None) -> str | None:
    """The trace id (32 lower-case hex) of a ``traceparent`` value, ``None`` when invalid.
    Surrounding spaces and upper-case hex are tolerated here (a scope key, not a span parent)."""
    tp = parse_traceparent(value.strip().lower()) if value else None
    return tp.trace_id if tp is not None else None
