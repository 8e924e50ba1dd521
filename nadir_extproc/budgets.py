"""Budgets and runaway detection: windowed spend totals in memory, checked at request time.

Rules come from ``Settings.budgets`` (``config.BudgetRule``): a scope (``key_id``, ``trace``, or a
tag such as ``team``/``feature``/``user``/``session``), an optional value to ``match``, a sliding
window (seconds), a limit in USD and an action. A runaway rule is the same thing with a short
window on ``trace``/``session``/``key_id`` (e.g. "one session above 2 USD within 5 minutes").

Totals are kept per (rule, scope value) in memory — no database round trip per request — and in
step with the ledger: every priced request is recorded here as soon as its cost is known (the
moment the response is priced, before the ledger row is queued), and at start-up the totals are
seeded from the ledger rows inside the longest window (``seed``). Sliding windows are kept in 60
buckets each, so a window's start is exact to 1/60 of its length (5 s of a 5-minute window).

``check`` answers for the request's scope values: ``block`` when any ``block`` rule's spend has
reached its limit (spend >= limit); otherwise ``alert`` when an ``alert`` rule's has (logged once
per crossing and counted as ``budget_alert``); the smallest remaining amount (limit - spend, USD;
negative once an alert rule is over) over all rules that apply. A request that crosses a limit is
let through (its cost is known only afterwards); the next one in that scope is blocked — a rule
fires within one request of crossing the line.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nadir_extproc.stats import count

log = logging.getLogger("nadir_extproc")

#: Response header: least remaining budget (USD) over the rules that apply to the request.
H_REMAINING = "x-nadir-budget-remaining"
#: Response header on a 429: the rule that blocked.
H_RULE = "x-nadir-budget-rule"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_BUCKETS = 60


def trace_id(headers: Mapping[str, str]) -> str | None:
    """The W3C ``traceparent`` trace id (32 lower-case hex) of a request, ``None`` if absent,
    malformed or all zeros."""
    m = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if not m or m.group(1) == "0" * 32:
        return None
    return m.group(1)


def scope_values(tags: Mapping[str, str], key_id: str | None, trace: str | None) -> dict[str, str]:
    """The values a rule scope can refer to: every tag, plus ``key_id`` and ``trace``."""
    out = dict(tags)
    if key_id:
        out["key_id"] = key_id
    if trace:
        out["trace"] = trace
    return out


@dataclass(frozen=True)
class Verdict:
    """The budget answer for one request.

    - ``action``: ``"ok"``, ``"alert"`` or ``"block"``.
    - ``rule``: the deciding rule's name (blocking rule; else the alerting one; else the rule with
      the least remaining), ``None`` when no rule applies.
    - ``remaining_usd``: least remaining (limit - spend, USD) over the rules that apply; ``None``
      when none applies.
    - ``retry_after_s``: for ``block``, seconds until enough of the window has expired to fall
      below the limit again (bucket precision).
    - ``message``: a sentence for the client (no tag values beyond the rule's scope name).
    """

    action: str = "ok"
    rule: str | None = None
    remaining_usd: Decimal | None = None
    retry_after_s: int | None = None
    message: str = ""


OK = Verdict()


class _Window:
    """Spend in a sliding window of ``window_s`` seconds kept in ``_BUCKETS`` time buckets."""

    __slots__ = ("width", "window_s", "buckets", "total")

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self.width = max(1.0, window_s / _BUCKETS)
        self.buckets: deque[list[Any]] = deque()  # [bucket index, Decimal]
        self.total = Decimal(0)

    def _prune(self, now: float) -> None:
        first = int((now - self.window_s) // self.width)  # oldest bucket still (partly) inside
        while self.buckets and self.buckets[0][0] < first:
            self.total -= self.buckets.popleft()[1]

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
                items = sorted([*self.buckets, [idx, usd]], key=lambda b: b[0])
                self.buckets = deque(items)
        self.total += usd
        self._prune(now)

    def spent(self, now: float) -> Decimal:
        self._prune(now)
        return self.total

    def seconds_until_below(self, limit: Decimal, now: float) -> int:
        """Seconds until the spend drops below ``limit`` as old buckets expire (0 if it is)."""
        total = self.spent(now)
        for idx, usd in self.buckets:
            if total < limit:
                break
            total -= usd
            expires = (idx + 1) * self.width + self.window_s
            if total < limit:
                return max(1, int(expires - now + 0.999))
        return 0 if self.total < limit else int(self.window_s)


class Budgets:
    """The configured rules and their windowed totals. ``clock`` returns UNIX seconds (tests pass
    their own). Not thread-safe: used from the event loop that runs the request phases."""

    def __init__(self, rules: Iterable[Any], clock: Callable[[], float] = time.time) -> None:
        self.rules = list(rules)
        self.clock = clock
        self._windows: dict[tuple[int, str], _Window] = {}
        self._alerted: set[tuple[int, str]] = set()
        self._records = 0

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def max_window_s(self) -> int:
        """The longest rule window (seconds; 0 without rules)."""
        return max((r.window for r in self.rules), default=0)

    def _applicable(self, scopes: Mapping[str, str]) -> Iterable[tuple[int, Any, str]]:
        for i, rule in enumerate(self.rules):
            v = scopes.get(rule.scope)
            if v is None or (rule.match is not None and v != rule.match):
                continue
            yield i, rule, v

    def check(self, scopes: Mapping[str, str]) -> Verdict:
        """The verdict for a request with these scope values (see ``scope_values``)."""
        if not self.rules:
            return OK
        now = self.clock()
        block: tuple[Any, Decimal, _Window] | None = None
        alert: tuple[Any, Decimal] | None = None
        least: tuple[Any, Decimal] | None = None
        for i, rule, value in self._applicable(scopes):
            w = self._windows.get((i, value))
            spent = w.spent(now) if w is not None else Decimal(0)
            remaining = rule.limit_usd - spent
            if least is None or remaining < least[1]:
                least = (rule, remaining)
            over = spent >= rule.limit_usd
            if not over:
                self._alerted.discard((i, value))
                continue
            if rule.action == "block":
                if block is None:
                    block = (rule, spent, w if w is not None else _Window(rule.window))
            elif alert is None:
                alert = (rule, remaining)
                if (i, value) not in self._alerted:
                    self._alerted.add((i, value))
                    log.warning(
                        "budget alert: rule %s (%s) spent %s USD of %s USD in %ss", rule.name, rule.scope, spent, rule.limit_usd, rule.window
                    )
                count("budget_alert", rule.name)
        if least is None:
            return OK
        if block is not None:
            rule, spent, w = block
            count("budget_block", rule.name)
            return Verdict(
                action="block",
                rule=rule.name,
                remaining_usd=least[1],
                retry_after_s=w.seconds_until_below(rule.limit_usd, now) or None,
                message=(
                    f"nadir budget '{rule.name}' exceeded: {_fmt(spent)} USD spent of {_fmt(rule.limit_usd)} USD "
                    f"allowed per {_window_text(rule.window)} for this {rule.scope}"
                ),
            )
        if alert is not None:
            return Verdict(action="alert", rule=alert[0].name, remaining_usd=least[1])
        return Verdict(action="ok", rule=least[0].name, remaining_usd=least[1])

    def record(self, scopes: Mapping[str, str], usd: Decimal | None, ts: float | None = None) -> None:
        """Add one request's cost (USD) to every rule that applies to its scope values. ``None``
        or 0 adds nothing. ``ts``: when it was spent (UNIX seconds; default now)."""
        if not self.rules or not usd:
            return
        now = self.clock()
        ts = now if ts is None else ts
        for i, rule, value in self._applicable(scopes):
            w = self._windows.get((i, value))
            if w is None:
                w = self._windows[(i, value)] = _Window(rule.window)
            w.add(ts, usd, now)
        self._records += 1
        if self._records % 1000 == 0:
            self._sweep(now)

    def seed(self, rows: Iterable[Any]) -> int:
        """Load spend from ledger rows (``LedgerRow``: ``ts``, ``cost_usd``, ``tags``, ``key_id``,
        ``trace_id``), e.g. ``store.rows(since=now - max_window_s)``. Returns rows used."""
        n = 0
        for r in rows:
            if r.cost_usd:
                self.record(scope_values(r.tags, r.key_id, r.trace_id), r.cost_usd, r.ts.timestamp())
                n += 1
        return n

    def _sweep(self, now: float) -> None:
        for k in [k for k, w in self._windows.items() if not w.spent(now) and not w.buckets]:
            del self._windows[k]


def _fmt(d: Decimal) -> str:
    from nadir_extproc.pricing.money import format_usd

    return format_usd(d)


def _window_text(s: int) -> str:
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s % n == 0:
            k = s // n
            return f"{k} {unit}{'s' if k != 1 else ''}" if k != 1 else unit
    return f"{s} seconds"


def block_body(dialect: str | None, message: str) -> bytes:
    """The 429 body in the provider's own error format, so the official SDKs raise their
    rate-limit error (``openai.RateLimitError`` / ``anthropic.RateLimitError``) with ``message``.

    Shapes: OpenAI (``openai_*`` dialects, and the default)
    ``{"error": {"message", "type": "rate_limit_exceeded", "param": null, "code": "budget_exceeded"}}``;
    Anthropic ``{"type": "error", "error": {"type": "rate_limit_error", "message"}}``; Gemini
    (``gemini``) ``{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED"}}`` (each as
    the provider documents its 429 errors; Google: the ``google.rpc.Status`` JSON of AIP-193)."""
    import json

    if dialect is not None and dialect.startswith("anthropic"):
        doc: dict[str, Any] = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    elif dialect == "gemini":
        doc = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    else:
        doc = {"error": {"message": message, "type": "rate_limit_exceeded", "param": None, "code": "budget_exceeded"}}
    return json.dumps(doc).encode("utf-8")


def block_reply(dialect: str | None, v: Verdict) -> Any:
    """The ext_proc ``ProcessingResponse`` for a blocked request: an ``ImmediateResponse`` 429
    (Envoy answers the client with it; the provider is not called) with ``block_body`` as body,
    ``content-type: application/json``, ``x-should-retry: false`` (the official SDKs then raise at
    once instead of retrying), ``retry-after`` (seconds until the window allows spend again, when
    known), ``x-nadir-budget-rule`` and ``x-nadir-budget-remaining``."""
    from nadir_extproc import protocol as p
    from nadir_extproc.pb import external_processor_pb2 as ep, http_status_pb2 as hs
    from nadir_extproc.pricing.money import format_usd

    headers = {"content-type": "application/json", "x-should-retry": "false", H_RULE: v.rule or ""}
    if v.retry_after_s:
        headers["retry-after"] = str(v.retry_after_s)
    if v.remaining_usd is not None:
        headers[H_REMAINING] = format_usd(v.remaining_usd)
    r = p.ProcessingResponse()
    r.immediate_response.CopyFrom(
        ep.ImmediateResponse(
            status=hs.HttpStatus(code=hs.TooManyRequests),
            headers=p.header_mutation(headers),
            body=block_body(dialect, v.message),
            details="nadir_budget_exceeded",
        )
    )
    return r
