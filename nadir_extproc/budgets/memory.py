"""This process's windowed totals and reservations, in memory (exact ``Decimal`` USD).

The only store without ``budget_redis.url``; with Redis, the local mirror of this process's own
spend (seeded from the ledger at start-up) that decides while Redis is unreachable. Not
thread-safe: used from the event loop that runs the request phases, so every call is atomic.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from nadir_extproc.budgets.rules import RuleState, bucket_width


class Window:
    """Spend in a sliding window of ``window_s`` seconds kept in time buckets of ``bucket_width``,
    plus the reservations of requests in flight (id -> (USD, deadline))."""

    __slots__ = ("width", "window_s", "buckets", "total", "held", "reserved")

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self.width = bucket_width(window_s)
        self.buckets: deque[list[Any]] = deque()  # [bucket index, Decimal]
        self.total = Decimal(0)
        self.held: dict[str, tuple[Decimal, float]] = {}
        self.reserved = Decimal(0)

    def _prune(self, now: float) -> None:
        first = int((now - self.window_s) // self.width)  # oldest bucket still (partly) inside
        while self.buckets and self.buckets[0][0] < first:
            self.total -= self.buckets.popleft()[1]
        if self.held:
            for rid in [rid for rid, (_, deadline) in self.held.items() if deadline <= now]:
                self.reserved -= self.held.pop(rid)[0]

    def add(self, ts: float, usd: Decimal, now: float) -> None:
        idx = int(ts // self.width)
        if ts < now - self.window_s:
            return
        if self.buckets and self.buckets[-1][0] == idx:
            self.buckets[-1][1] += usd
        elif not self.buckets or self.buckets[-1][0] < idx:
            self.buckets.append([idx, usd])
        else:  # out of order (seeding): insert in place
            for b in self.buckets:
                if b[0] == idx:
                    b[1] += usd
                    break
            else:
                self.buckets = deque(sorted([*self.buckets, [idx, usd]], key=lambda b: b[0]))
        self.total += usd
        self._prune(now)

    def hold(self, rid: str, usd: Decimal, deadline: float) -> None:
        self.held[rid] = (usd, deadline)
        self.reserved += usd

    def release(self, rid: str) -> None:
        got = self.held.pop(rid, None)
        if got is not None:
            self.reserved -= got[0]

    def state(self, now: float) -> tuple[Decimal, Decimal]:
        """(spent, reserved) in USD now."""
        self._prune(now)
        return self.total, self.reserved

    def bucket_list(self) -> list[tuple[int, Decimal]]:
        return [(i, v) for i, v in self.buckets]

    def empty(self) -> bool:
        return not self.buckets and not self.held


class MemoryStore:
    """Windows per (rule index, scope value). ``clock`` returns UNIX seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.windows: dict[tuple[int, str], Window] = {}
        self._writes = 0

    def _window(self, i: int, rule: Any, value: str) -> Window:
        w = self.windows.get((i, value))
        if w is None:
            w = self.windows[(i, value)] = Window(rule.window)
        return w

    def states(self, apps: list[tuple[int, Any, str]]) -> list[RuleState]:
        """The current state of each applicable rule."""
        now = self.clock()
        out = []
        for i, rule, value in apps:
            w = self.windows.get((i, value))
            spent, reserved = w.state(now) if w is not None else (Decimal(0), Decimal(0))
            out.append(RuleState(i, rule, value, spent, reserved))
        return out

    def reserve(self, apps: list[tuple[int, Any, str]], rid: str, usd: Decimal, ttl_s: float) -> None:
        """Hold ``usd`` for request ``rid`` against every applicable rule until settled or ``ttl_s``."""
        if not usd:
            return
        deadline = self.clock() + ttl_s
        for i, rule, value in apps:
            self._window(i, rule, value).hold(rid, usd, deadline)

    def settle(self, apps: list[tuple[int, Any, str]], rid: str | None, usd: Decimal | None, ts: float | None = None) -> None:
        """Release ``rid``'s reservation (if any) and add ``usd`` spent at ``ts`` (default now)."""
        now = self.clock()
        for i, rule, value in apps:
            w = self.windows.get((i, value))
            if rid is not None and w is not None:
                w.release(rid)
            if usd:
                self._window(i, rule, value).add(now if ts is None else ts, usd, now)
        self._writes += 1
        if self._writes % 1000 == 0:
            self.sweep(now)

    def buckets(self, i: int, value: str) -> list[tuple[int, Decimal]]:
        w = self.windows.get((i, value))
        return w.bucket_list() if w is not None else []

    def sweep(self, now: float) -> None:
        """Drop windows with nothing left in them."""
        for k, w in list(self.windows.items()):
            w.state(now)  # prunes expired buckets and reservations
            if w.empty():
                del self.windows[k]
