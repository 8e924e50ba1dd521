"""The background ledger writer: rows leave the request path through a bounded queue.

``submit()`` is what the request path calls (from ``Context.on_complete``): one deque append,
never blocking and never waking the thread per row (the thread wakes when a batch is full, on a
``flush()``/``close()``, or every ``tick_s``; a wake per row cost the request path a thread switch
each time, bench/results). When the queue is full the row is dropped and counted (``dropped``, and the
``ledger_row_dropped`` event in ``nadir_extproc.stats``); traffic is unaffected. A daemon thread
turns outcomes into ``LedgerRow``s and writes them in batches of up to ``batch_size``, at the
latest ``flush_interval_s`` after the first row of a batch arrived. ``flush()`` writes everything
submitted so far; ``close()`` flushes and stops the thread (called on SIGTERM).

Each batch goes to ``store.insert``, which adds it to the daily rollups in the same transaction.
With a retention (``retention_days`` / ``rollup_retention_days``) the thread also prunes the store
when it starts and every ``prune_interval_s`` (between batches, never on the request path).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from nadir_extproc.ledger.schema import LedgerRow, from_outcome
from nadir_extproc.stats import count

log = logging.getLogger("nadir_extproc")


class _Marker:
    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class LedgerWriter:
    """Batched, bounded, off-path writer over a store (``nadir_extproc.ledger.store``).

    Counters (ints, read any time): ``submitted``, ``dropped`` (queue full), ``written``,
    ``failed`` (rows lost to store errors, after one retry). ``start=False`` leaves the thread
    unstarted until ``start()`` (rows queue up meanwhile).
    """

    def __init__(
        self,
        store: Any,
        *,
        queue_size: int = 10000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        start: bool = True,
        to_row: Callable[[Any, datetime, str], LedgerRow] = from_outcome,
        retention_days: int | None = None,
        rollup_retention_days: int | None = None,
        prune_interval_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._to_row = to_row
        self.queue_size = queue_size
        self._q: deque[Any] = deque()
        self._wake = threading.Event()
        #: Longest a row waits before the thread looks at the queue (besides flush_interval_s).
        self.tick_s = min(0.25, flush_interval_s)
        self.submitted = 0
        self.dropped = 0
        self.written = 0
        self.failed = 0
        self._closed = False
        self.retention = (retention_days, rollup_retention_days)
        self.prune_interval_s = prune_interval_s
        self._next_prune = time.monotonic() if any(self.retention) else float("inf")
        self.pruned: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="nadir-ledger-writer", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start the writer thread (once)."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    # ------------------------------------------------------------------ request path
    def submit(self, item: Any) -> bool:
        """Queue one finished request (a ``processor.Outcome`` or a ready ``LedgerRow``) stamped
        with the current UTC time. Returns ``False`` (and counts) when the queue is full or the
        writer is closed. Never blocks, never raises."""
        if self._closed:
            self.dropped += 1
            count("ledger_row_dropped", "writer closed")
            return False
        q = self._q
        if len(q) >= self.queue_size:
            self.dropped += 1
            count("ledger_row_dropped", "queue full")
            return False
        q.append((item, time.time()))
        self.submitted += 1
        if len(q) >= self.batch_size:
            self._wake.set()
        return True

    # ------------------------------------------------------------------ control
    def flush(self, timeout_s: float | None = None) -> bool:
        """Write every row submitted before this call; ``True`` when done within ``timeout_s``
        (``None`` = wait as long as it takes). Blocks the caller only: call it off the event loop."""
        return self._mark(_Marker(), timeout_s)

    def close(self, timeout_s: float | None = 10.0) -> bool:
        """Flush, stop the thread and close the store; later ``submit`` calls drop. ``True`` when
        everything queued was written (or failed and counted) within ``timeout_s``."""
        if self._closed:
            return True
        ok = self._mark(_Marker(stop=True), timeout_s)
        self._closed = True
        if ok:
            self._thread.join(timeout_s)
            self.store.close()
        if self.dropped or self.failed:
            log.warning("ledger: %d rows written, %d dropped (queue full), %d failed", self.written, self.dropped, self.failed)
        return ok

    def _mark(self, m: _Marker, timeout_s: float | None) -> bool:
        if not self._thread.is_alive():
            self.start()
        self._q.append(m)
        self._wake.set()
        return m.done.wait(timeout_s)

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        buf: list[LedgerRow] = []
        first = 0.0
        q = self._q
        while True:
            if time.monotonic() >= self._next_prune:
                self._prune()
            self._wake.wait(self.tick_s)
            self._wake.clear()
            while q:
                item = q.popleft()
                if isinstance(item, _Marker):
                    self._write(buf)
                    buf = []
                    item.done.set()
                    if item.stop:
                        return
                    continue
                row = self._convert(*item)
                if row is not None:
                    if not buf:
                        first = time.monotonic()
                    buf.append(row)
                    if len(buf) >= self.batch_size:
                        self._write(buf)
                        buf = []
            if buf and time.monotonic() - first >= self.flush_interval_s:
                self._write(buf)
                buf = []

    def _prune(self) -> None:
        from nadir_extproc.ledger.rollup import cutoffs

        self._next_prune = time.monotonic() + self.prune_interval_s
        prune = getattr(self.store, "prune", None)
        if prune is None:
            return
        try:
            res = prune(*cutoffs(*self.retention))
        except Exception as e:  # noqa: BLE001 — retention must not stop the writer
            count("ledger_prune_error", f"{type(e).__name__}: {e}")
            log.error("ledger: retention failed: %s", type(e).__name__)
            return
        for k, v in res.items():
            self.pruned[k] = self.pruned.get(k, 0) + v
        if any(res.values()):
            log.info("ledger: retention removed %s", res)

    def _convert(self, item: Any, ts: float) -> LedgerRow | None:
        if isinstance(item, LedgerRow):
            return item
        try:
            return self._to_row(item, datetime.fromtimestamp(ts, timezone.utc), uuid.uuid4().hex)
        except Exception as e:  # noqa: BLE001 — a bad outcome must not stop the writer
            self.failed += 1
            count("ledger_row_invalid", f"{type(e).__name__}: {e}")
            return None

    def _write(self, rows: list[LedgerRow]) -> None:
        if not rows:
            return
        for attempt in (1, 2):
            try:
                self.store.insert(rows)
                self.written += len(rows)
                return
            except Exception as e:  # noqa: BLE001 — store down: count, retry once, then drop
                count("ledger_write_error", f"{type(e).__name__}: {e}")
                reconnect = getattr(self.store, "reconnect", None)
                if attempt == 1 and reconnect is not None:
                    try:
                        reconnect()
                    except Exception:  # noqa: BLE001
                        pass
        self.failed += len(rows)
        log.error("ledger: %d rows could not be written (counted as failed)", len(rows))
