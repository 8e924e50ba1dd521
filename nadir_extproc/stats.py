"""In-process event counters with log-once: how the service counts what it passed over.

Every anomaly the request path tolerates (non-JSON body, missing ``model``, unknown encoding, an
internal error answered with CONTINUE) is counted here by a short event name, and logged the first
time that event is seen (never with prompt text or keys). The telemetry layer exports these counts.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("nadir_extproc")

#: event name -> occurrences since start (process-wide).
COUNTS: Counter[str] = Counter()


def count(event: str, detail: str = "") -> None:
    """Count one ``event``; log it at WARNING the first time it occurs in this process."""
    COUNTS[event] += 1
    if COUNTS[event] == 1:
        log.warning("first %s%s (counted from now on, logged once)", event, f": {detail}" if detail else "")
