"""The budget decision for one request, shared by the memory and the Redis store.

A rule applies to a request when the request has a value for the rule's scope (and it equals
``match`` when set). For each applicable rule a store reports ``spent`` (priced spend inside the
window) and ``reserved`` (the estimates of admitted requests of the same scope value that have not
finished yet, excluding this one). With this request's estimate ``e`` (USD):

- a ``block`` rule refuses the request when ``spent + reserved >= limit`` (the limit is reached) or
  ``spent + reserved + e > limit`` (this request could pass it);
- an ``alert`` rule alerts when ``spent >= limit`` (logged once per crossing, counted);
- the remaining amount is ``limit - spent - reserved - e`` (after this request's reservation),
  the least over the applicable rules; on a refusal, without ``e`` (nothing was reserved).

Money: ``Decimal`` USD in Python; in Redis exact integers of pico-USD (1e-12 USD, ``to_pico``),
fine enough for every per-token rate of the catalogue (e.g. 0.0375 USD/MTok = 37 500 pUSD/token).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from nadir_extproc.pricing.money import format_usd
from nadir_extproc.stats import count

log = logging.getLogger("nadir_extproc")

#: Sliding windows are kept in this many time buckets (a window's start is exact to 1/60 of it).
BUCKETS = 60
_PICO = Decimal(10) ** 12


def to_pico(usd: Decimal, up: bool = False) -> int:
    """``usd`` as an integer number of pico-USD. Exact for every catalogue price; an amount with
    finer digits (an operator price file) is rounded half-even, or up with ``up`` (reservations
    round up so they never under-reserve)."""
    v = usd * _PICO
    if v == v.to_integral_value():
        return int(v)
    return int(v.to_integral_value(ROUND_CEILING if up else None))


def from_pico(n: int) -> Decimal:
    """``n`` pico-USD as an exact ``Decimal`` USD."""
    return Decimal(n).scaleb(-12)


def bucket_width(window_s: int) -> float:
    """Width of one time bucket of a ``window_s`` window, in seconds (at least 1 s)."""
    return max(1.0, window_s / BUCKETS)


@dataclass(frozen=True)
class Verdict:
    """The budget answer for one request.

    - ``action``: ``"ok"``, ``"alert"`` or ``"block"``.
    - ``rule``: the deciding rule's name (blocking rule; else the alerting one; else the rule with
      the least remaining), ``None`` when no rule applies.
    - ``remaining_usd``: least remaining over the rules that apply (USD; after this request's
      reservation when admitted); ``None`` when none applies.
    - ``retry_after_s``: for ``block``, seconds until enough of the window has expired for this
      request to fit (bucket precision); ``None`` when waiting cannot help (the request's estimate
      alone is above the limit).
    - ``message``: a sentence for the client (no tag values beyond the rule's scope name).
    """

    action: str = "ok"
    rule: str | None = None
    remaining_usd: Decimal | None = None
    retry_after_s: int | None = None
    message: str = ""


OK = Verdict()


@dataclass
class RuleState:
    """One applicable rule as a store sees it: ``spent`` and ``reserved`` (others' reservations)
    in USD before this request; ``buckets``: ``(bucket index, USD)`` of the window (for
    ``retry-after``; only needed on a block)."""

    index: int
    rule: Any
    value: str
    spent: Decimal
    reserved: Decimal


def applicable(rules: list[Any], scopes: Mapping[str, str]) -> list[tuple[int, Any, str]]:
    """``(index, rule, scope value)`` of every rule that applies to these scope values."""
    out = []
    for i, rule in enumerate(rules):
        v = scopes.get(rule.scope)
        if v is None or (rule.match is not None and v != rule.match):
            continue
        out.append((i, rule, v))
    return out


def over(st: RuleState, estimate: Decimal) -> bool:
    """Whether ``st``'s rule refuses a request of this estimate (see the module docstring)."""
    used = st.spent + st.reserved
    return used >= st.rule.limit_usd or used + estimate > st.rule.limit_usd


def first_block(states: Iterable[RuleState], estimate: Decimal, mode: Mapping[int, str] | None = None) -> RuleState | None:
    """The first ``block`` rule that refuses. ``mode`` (rule index -> ``local``/``admit``/``refuse``)
    is the per-rule behaviour while the shared store is down: ``admit`` never refuses,
    ``refuse`` always does, ``local`` decides on the local totals."""
    for st in states:
        if st.rule.action != "block":
            continue
        m = mode.get(st.index, "local") if mode else "local"
        if m == "refuse" or (m == "local" and over(st, estimate)):
            return st
    return None


def retry_after(buckets: Iterable[tuple[int, Decimal]], width: float, window_s: int, now: float, st: RuleState, estimate: Decimal) -> int | None:
    """Seconds until old spend leaves the window far enough for ``estimate`` to fit under the
    limit (``spent < limit`` for a zero estimate); 1 when only reservations in flight are in the
    way; ``None`` when the estimate alone passes the limit."""
    limit = st.rule.limit_usd
    if estimate > limit:
        return None

    def fits(total: Decimal) -> bool:
        return total < limit if not estimate else total + estimate <= limit

    total = st.spent
    if fits(total):
        return 1
    for idx, usd in sorted(buckets):
        total -= usd
        if fits(total):
            return max(1, math.ceil((idx + 1) * width + window_s - now))
    return int(window_s)


def window_text(s: int) -> str:
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s % n == 0:
            k = s // n
            return f"{k} {unit}{'s' if k != 1 else ''}" if k != 1 else unit
    return f"{s} seconds"


def block_message(st: RuleState, estimate: Decimal, refused_while_down: bool = False) -> str:
    """The client's sentence for a refusal by ``st``'s rule."""
    r = st.rule
    head = f"nadir budget '{r.name}' exceeded: {format_usd(st.spent)} USD spent"
    if refused_while_down:
        return (f"nadir budget '{r.name}' cannot be checked (shared budget store unavailable) and this rule refuses "
                f"requests until it is back")
    if st.reserved:
        head += f" and {format_usd(st.reserved)} USD reserved by requests in flight"
    msg = f"{head} of {format_usd(r.limit_usd)} USD allowed per {window_text(r.window)} for this {r.scope}"
    if st.spent + st.reserved < r.limit_usd:
        msg += f"; this request may cost up to {format_usd(estimate)} USD"
    return msg


class Alerts:
    """Alert rules: logged once per crossing of a (rule, scope value), counted every time."""

    def __init__(self) -> None:
        self._alerted: set[tuple[int, str]] = set()

    def note(self, st: RuleState) -> bool:
        """Whether ``st``'s alert rule is over (spent >= limit); logs the first time."""
        key = (st.index, st.value)
        if st.spent < st.rule.limit_usd:
            self._alerted.discard(key)
            return False
        if key not in self._alerted:
            self._alerted.add(key)
            r = st.rule
            log.warning("budget alert: rule %s (%s) spent %s USD of %s USD in %ss", r.name, r.scope, st.spent, r.limit_usd, r.window)
        count("budget_alert", st.rule.name)
        return True


def decide(
    states: list[RuleState],
    estimate: Decimal,
    blocker: RuleState | None,
    alerts: Alerts,
    retry: int | None = None,
    refused_while_down: bool = False,
) -> Verdict:
    """The ``Verdict`` for these rule states, ``blocker`` being the refusing rule (or ``None``:
    admitted with ``estimate`` reserved)."""
    if not states:
        return OK
    extra = Decimal(0) if blocker is not None else estimate
    least = min(states, key=lambda st: st.rule.limit_usd - st.spent - st.reserved)
    remaining = least.rule.limit_usd - least.spent - least.reserved - extra
    if blocker is not None:
        count("budget_block", blocker.rule.name)
        return Verdict(
            action="block", rule=blocker.rule.name, remaining_usd=remaining, retry_after_s=retry,
            message=block_message(blocker, estimate, refused_while_down),
        )
    alerting = None
    for st in states:
        if st.rule.action == "alert" and alerts.note(st) and alerting is None:
            alerting = st
    if alerting is not None:
        return Verdict(action="alert", rule=alerting.rule.name, remaining_usd=remaining)
    return Verdict(action="ok", rule=least.rule.name, remaining_usd=remaining)
