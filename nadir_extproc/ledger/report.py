"""Spend reports over the ledger: totals grouped by time, tag, key, model or provider; the most
expensive requests; unpriced requests by reason.

Sums are exact ``Decimal`` USD, added up in Python over the rows of the range, so SQLite (money as
TEXT) and PostgreSQL (NUMERIC) give identical results.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.pricing.money import format_usd

#: Group-by keys: name -> function of a row. ``tag:<name>`` groups by any tag as well.
GROUPS: dict[str, Callable[[LedgerRow], str | None]] = {
    "day": lambda r: r.ts.strftime("%Y-%m-%d"),
    "week": lambda r: "{}-W{:02d}".format(*r.ts.isocalendar()[:2]),
    "month": lambda r: r.ts.strftime("%Y-%m"),
    "feature": lambda r: r.tags.get("feature"),
    "team": lambda r: r.tags.get("team"),
    "user": lambda r: r.tags.get("user"),
    "env": lambda r: r.tags.get("env"),
    "session": lambda r: r.tags.get("session"),
    "key_id": lambda r: r.key_id,
    "model": lambda r: r.served_model,
    "provider": lambda r: r.provider,
    "status": lambda r: r.status,
}


def group_key(name: str) -> Callable[[LedgerRow], str | None]:
    """The key function of group ``name`` (see ``GROUPS``; ``tag:<name>`` for any tag).
    Raises ``ValueError`` for an unknown name."""
    if name in GROUPS:
        return GROUPS[name]
    if name.startswith("tag:") and len(name) > 4:
        tag = name[4:]
        return lambda r: r.tags.get(tag)
    raise ValueError(f"unknown group {name!r}; use one of {', '.join(GROUPS)} or tag:<name>")


@dataclass
class Totals:
    """Totals of one group. USD ``Decimal``; tokens ints; ``unpriced`` = requests without a cost
    (their spend is unknown, not zero)."""

    requests: int = 0
    cost_usd: Decimal = Decimal(0)
    saved_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    unpriced: int = 0

    def add(self, r: LedgerRow) -> None:
        self.requests += 1
        if r.cost_usd is not None:
            self.cost_usd += r.cost_usd
        else:
            self.unpriced += 1
        if r.saved_usd is not None:
            self.saved_usd += r.saved_usd
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens or 0


@dataclass
class Report:
    """``groups``: (group values, totals) sorted by cost descending then key; ``total``: all rows;
    ``top``: the ``top_n`` most expensive requests; ``unpriced``: reason -> request count."""

    by: list[str]
    groups: list[tuple[tuple[str | None, ...], Totals]] = field(default_factory=list)
    total: Totals = field(default_factory=Totals)
    top: list[LedgerRow] = field(default_factory=list)
    unpriced: dict[str, int] = field(default_factory=dict)


def build(rows: Iterable[LedgerRow], by: list[str], top_n: int = 10) -> Report:
    """Aggregate ``rows`` (e.g. ``store.rows(since, until)``) by the ``by`` groups (empty: one
    group). Raises ``ValueError`` for an unknown group."""
    keys = [group_key(b) for b in by]
    acc: dict[tuple[str | None, ...], Totals] = {}
    rep = Report(by=list(by))
    priced: list[LedgerRow] = []
    for r in rows:
        k = tuple(f(r) for f in keys)
        acc.setdefault(k, Totals()).add(r)
        rep.total.add(r)
        if r.cost_usd is None:
            reason = r.unpriced_reason or "unknown"
            rep.unpriced[reason] = rep.unpriced.get(reason, 0) + 1
        elif top_n > 0:
            priced.append(r)
            if len(priced) > 4 * top_n + 64:  # keep memory bounded on big ranges
                priced.sort(key=lambda x: x.cost_usd, reverse=True)  # type: ignore[arg-type,return-value]
                del priced[top_n:]
    rep.groups = sorted(acc.items(), key=lambda kv: (-kv[1].cost_usd, tuple(x or "" for x in kv[0])))
    priced.sort(key=lambda x: x.cost_usd, reverse=True)  # type: ignore[arg-type,return-value]
    rep.top = priced[:top_n] if top_n > 0 else []
    rep.unpriced = dict(sorted(rep.unpriced.items(), key=lambda kv: (-kv[1], kv[0])))
    return rep


# ---------------------------------------------------------------------------- output
def _totals_dict(t: Totals) -> dict[str, Any]:
    return {
        "requests": t.requests,
        "cost_usd": format_usd(t.cost_usd),
        "saved_usd": format_usd(t.saved_usd),
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "unpriced_requests": t.unpriced,
    }


def _top_dict(r: LedgerRow) -> dict[str, Any]:
    return {
        "ts": r.ts.isoformat(),
        "request_id": r.request_id,
        "model": r.served_model,
        "provider": r.provider,
        "cost_usd": format_usd(r.cost_usd) if r.cost_usd is not None else None,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens or 0,
        "key_id": r.key_id,
        "tags": r.tags,
    }


def spend_records(rep: Report) -> list[dict[str, Any]]:
    """One dict per group: the group columns (named as in ``by``) then the totals (money as plain
    decimal strings)."""
    return [{**dict(zip(rep.by, k)), **_totals_dict(t)} for k, t in rep.groups]


def to_json(rep: Report) -> str:
    """The whole report as JSON: ``by``, ``groups``, ``total``, ``top``, ``unpriced``."""
    return json.dumps(
        {
            "by": rep.by,
            "groups": spend_records(rep),
            "total": _totals_dict(rep.total),
            "top": [_top_dict(r) for r in rep.top],
            "unpriced": rep.unpriced,
        },
        indent=2,
        ensure_ascii=False,
    )


def to_csv(rep: Report, view: str = "spend") -> str:
    """One view as CSV: ``spend`` (groups), ``top`` or ``unpriced``."""
    buf = io.StringIO()
    if view == "spend":
        cols = [*rep.by, "requests", "cost_usd", "saved_usd", "input_tokens", "output_tokens", "unpriced_requests"]
        recs = spend_records(rep)
    elif view == "top":
        cols = ["ts", "request_id", "model", "provider", "cost_usd", "input_tokens", "output_tokens", "key_id", "tags"]
        recs = [{**d, "tags": json.dumps(d["tags"], sort_keys=True)} for d in map(_top_dict, rep.top)]
    elif view == "unpriced":
        cols = ["reason", "requests"]
        recs = [{"reason": k, "requests": v} for k, v in rep.unpriced.items()]
    else:
        raise ValueError(f"unknown view {view!r}")
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for rec in recs:
        w.writerow(rec)
    return buf.getvalue()


def print_tables(rep: Report, console: Any = None, views: tuple[str, ...] = ("spend", "top", "unpriced")) -> None:
    """The report as rich tables on ``console`` (default: stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if "spend" in views:
        t = Table(title="Spend" + (f" by {', '.join(rep.by)}" if rep.by else ""))
        for b in rep.by:
            t.add_column(b)
        for c in ("requests", "cost USD", "saved USD", "input tok", "output tok", "unpriced"):
            t.add_column(c, justify="right")
        for rec in spend_records(rep):
            t.add_row(*[str(rec[b]) if rec[b] is not None else "-" for b in rep.by],
                      str(rec["requests"]), rec["cost_usd"], rec["saved_usd"], str(rec["input_tokens"]),
                      str(rec["output_tokens"]), str(rec["unpriced_requests"]))
        tot = _totals_dict(rep.total)
        t.add_row(*(["total"] + [""] * (len(rep.by) - 1) if rep.by else []), str(tot["requests"]), tot["cost_usd"],
                  tot["saved_usd"], str(tot["input_tokens"]), str(tot["output_tokens"]), str(tot["unpriced_requests"]), style="bold")
        console.print(t)
    if "top" in views and rep.top:
        t = Table(title=f"Top {len(rep.top)} requests by cost")
        for c in ("time (UTC)", "request id", "model", "cost USD", "tokens in/out", "key id", "tags"):
            t.add_column(c)
        for r in rep.top:
            t.add_row(r.ts.strftime("%Y-%m-%d %H:%M:%S"), r.request_id, r.served_model or "-",
                      format_usd(r.cost_usd) if r.cost_usd is not None else "-",
                      f"{r.input_tokens}/{r.output_tokens or 0}", r.key_id or "-",
                      ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())))
        console.print(t)
    if "unpriced" in views and rep.unpriced:
        t = Table(title="Unpriced requests by reason")
        t.add_column("reason")
        t.add_column("requests", justify="right")
        for k, v in rep.unpriced.items():
            t.add_row(k, str(v))
        console.print(t)
