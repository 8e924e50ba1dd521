"""Spend reports over the ledger: totals grouped by time, tag, key, model or provider; the most
expensive requests; unpriced requests by reason.

``from_store`` aggregates in the database (``Store.aggregate``): from the daily rollups whenever
the grouping allows (team, feature, env, key_id, provider, model, status, allowed tags, with
day/week/month), from raw rows otherwise (user, session) and for partial days at the range's
edges. Sums are exact: PostgreSQL adds ``NUMERIC``, SQLite adds integer pico-USD; both equal the
``Decimal`` sums of ``build``, the reference that adds rows up in Python (tests compare them).
Time groups are UTC days, ISO weeks (``2026-W10``) and months (``2026-03``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
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
    import difflib

    close = difflib.get_close_matches(name, GROUPS, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else \
        f" (a tag? --by tag:{name})" if name.isidentifier() and not name.startswith("tag") else ""
    raise ValueError(f"unknown group {name!r}; use one of {', '.join(GROUPS)} or tag:<name>{hint}")


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


#: The rollup measures a spend report shows (``Totals``); the database sums only these.
SPEND_MEASURES = ("requests", "unpriced", "cost_usd", "saved_usd", "input_tokens", "output_tokens")


def group_plan(by: list[str]) -> tuple[list[str], Any]:
    """For a database-summed report grouped by ``by``: the measure names in
    ``rollup.MEASURES`` order (the order of each group's sums) and the key positions
    (``rollup.key_positions``). Raises ``ValueError`` for an unknown group."""
    from nadir_extproc.ledger import rollup as ru

    for b in by:
        group_key(b)
    return [m.name for m in ru.MEASURES], ru.key_positions(by)[0]


def from_store(store: Any, by: list[str], since: datetime | None = None, until: datetime | None = None, top_n: int = 10) -> Report:
    """The report of ``[since, until)`` grouped by ``by``, aggregated by ``store`` (see module
    doc); equal to ``build(store.rows(since, until), by, top_n)``. Raises ``ValueError`` for an
    unknown group; ``sqlite3.OperationalError`` ("integer overflow") when a SQLite sum passes
    2^63 pico-USD (9.2 million USD in one group and day): ``report`` then falls back to ``build``."""
    from nadir_extproc.ledger import rollup as ru

    names, pos = group_plan(by)

    def totals(sums: list) -> Totals:
        d = dict(zip(names, sums))
        return Totals(requests=d["requests"], cost_usd=d["cost_usd"], saved_usd=d["saved_usd"],
                      input_tokens=d["input_tokens"], output_tokens=d["output_tokens"], unpriced=d["unpriced"])

    # One pass gives the groups, the total and unpriced-by-reason (the reason is one more key
    # column), except for tag rollups, which have no reason column: a second, cheap query there.
    one_pass = not ru.plan(by, since, until).tagged
    nk = len(ru.key_positions(by)[1])
    acc: dict[tuple[str | None, ...], list] = {}
    total: list | None = None
    unpriced: dict[str, int] = {}
    i_unpriced = names.index("unpriced")

    def add_reason(reason: str | None, sums: list) -> None:
        if sums[i_unpriced]:
            unpriced[reason or "unknown"] = unpriced.get(reason or "unknown", 0) + sums[i_unpriced]

    for key, sums in store.aggregate(by, since, until, extra_dims=("unpriced_reason",) if one_pass else (), measures=SPEND_MEASURES):
        ru.add_sums(acc, tuple(ru.time_key(key[p], b) if b in ru.TIME_GROUPS else key[p] for b, p in zip(by, pos)), sums)
        if one_pass:
            total = list(sums) if total is None else [a + b for a, b in zip(total, sums)]
            add_reason(key[nk], sums)
    if not one_pass:
        for (reason,), sums in store.aggregate([], since, until, extra_dims=("unpriced_reason",), measures=SPEND_MEASURES):
            total = list(sums) if total is None else [a + b for a, b in zip(total, sums)]
            add_reason(reason, sums)
    rep = Report(by=list(by))
    rep.groups = sorted(((k, totals(v)) for k, v in acc.items()), key=lambda kv: (-kv[1].cost_usd, tuple(x or "" for x in kv[0])))
    rep.total = totals(total) if total is not None else Totals()
    rep.unpriced = dict(sorted(unpriced.items(), key=lambda kv: (-kv[1], kv[0])))
    rep.top = store.top(top_n, since, until, rows_in_range=rep.total.requests)
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


#: Shorter column names of the spend table, used on a terminal too narrow for the table with its
#: full names even borderless (80 columns and the demo's dated model names); the title then
#: says what they mean. Pipes and files always get the full names (scripts read them).
SHORT_HEADERS = {"requests": "reqs", "in tok": "in", "out tok": "out"}
SHORT_NOTE = " (in/out: tokens)"


def _table(console: Any, title: str, header: list[tuple[str, bool]], rows: list[list[str]], bold_last: bool = False,
           short: dict[str, str] | None = None, short_note: str = "") -> Any:
    """A rich table that fits ``console.width`` without cutting a value: numbers (``True`` in
    ``header``) never wrap; text columns wrap (fold) when the table is too wide, and then every row
    is ruled off so a wrapped value cannot be read as two rows. When even that cannot fit (numbers
    alone too wide), each row becomes a two-line card: ``• name: value · …`` then the numbers.
    Not a terminal (``tables.is_plain``), or a terminal wide enough for every value whole without
    the borders: a borderless table at its natural width (``nadir_extproc.tables``). ``short``
    (header -> shorter header): on a terminal too narrow for the table even without borders, the
    columns take those names first (and the title ``short_note``), before anything wraps."""
    from rich.table import Table
    from rich.text import Text

    from nadir_extproc.tables import is_plain, new_table

    def measure(hdr: list[tuple[str, bool]]) -> list[int]:
        return [max([len(h)] + [len(r[i]) for r in rows]) for i, (h, _) in enumerate(hdr)]

    widths = measure(header)
    if short and not is_plain(console) and sum(widths) + 2 * len(widths) > console.width:
        header = [(short.get(h, h), num) for h, num in header]
        title, widths = title + short_note, measure(header)
    bordered = sum(widths) + 3 * len(widths) + 1
    borderless = sum(widths) + 2 * len(widths)
    # A pipe or a file: the whole table at its natural width, one line per row. A terminal too
    # narrow for the borders but wide enough for every value whole: the same borderless table.
    if is_plain(console) or bordered > console.width >= borderless:
        t = new_table(console, title) if is_plain(console) else Table(title=title, box=None, title_justify="left")
        for h, num in header:
            t.add_column(h, justify="right" if num else "left", no_wrap=True)
        for r in rows:
            t.add_row(*r, style="bold" if bold_last and r is rows[-1] and not is_plain(console) else None)
        return t
    need = sum(w if num else min(w, 12) for (_, num), w in zip(header, widths)) + 3 * len(widths) + 1
    if need > console.width:
        out = Text()  # the title alone in italics: Text(title, style=…) would style every card after it
        out.append(title + "\n", style="italic")
        for i, r in enumerate(rows):
            last = bold_last and i == len(rows) - 1
            style = "bold" if last else ""
            texts = [f"{h}: {v}" for (h, num), v in zip(header, r) if not num and v != ""]
            nums = [f"{h.replace(' ', '_')}={v}" for (h, num), v in zip(header, r) if num]  # one word: never split
            out.append("• " + ("total" if last else " · ".join(texts)) + "\n", style=style)
            out.append("  " + " · ".join(nums) + "\n", style=style)
        return out
    too_wide = sum(widths) + 3 * len(widths) + 1 > console.width
    t = Table(title=title, show_lines=too_wide)
    for (h, num), w in zip(header, widths):
        if num:
            t.add_column(h, justify="right", no_wrap=True, min_width=w)
        else:
            t.add_column(h, overflow="fold")
    for i, r in enumerate(rows):
        t.add_row(*r, style="bold" if bold_last and i == len(rows) - 1 else None)
    return t


def print_tables(rep: Report, console: Any = None, views: tuple[str, ...] = ("spend", "top", "unpriced")) -> None:
    """The report as rich tables on ``console`` (default: stdout). Readable at 80 columns: text
    wraps (never an ellipsis), numbers stay whole; without ``--by`` one total row."""
    from nadir_extproc.tables import output_console

    console = console or output_console()
    if "spend" in views:
        header = [(b, False) for b in rep.by] + [(c, True) for c in ("requests", "cost USD", "saved USD", "in tok", "out tok", "unpriced")]

        def nums(d: dict[str, Any]) -> list[str]:
            return [str(d["requests"]), d["cost_usd"], d["saved_usd"], str(d["input_tokens"]), str(d["output_tokens"]), str(d["unpriced_requests"])]

        rows = [[str(rec[b]) if rec[b] is not None else "-" for b in rep.by] + nums(rec) for rec in spend_records(rep)] if rep.by else []
        rows.append((["total"] + [""] * (len(rep.by) - 1) if rep.by else []) + nums(_totals_dict(rep.total)))
        console.print(_table(console, "Spend" + (f" by {', '.join(rep.by)}" if rep.by else " (total)"), header, rows, bold_last=True,
                             short=SHORT_HEADERS, short_note=SHORT_NOTE))
    if "top" in views and rep.top:
        header = [("time (UTC)", False), ("model", False), ("cost USD", True), ("tok in/out", True), ("key id", False),
                  ("tags", False), ("request id", False)]
        rows = [[r.ts.strftime("%Y-%m-%d %H:%M:%S"), r.served_model or "-",
                 format_usd(r.cost_usd) if r.cost_usd is not None else "-", f"{r.input_tokens}/{r.output_tokens or 0}",
                 r.key_id or "-", ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())) or "-", r.request_id] for r in rep.top]
        console.print(_table(console, f"Top {len(rep.top)} requests by cost", header, rows))
    if "unpriced" in views and rep.unpriced:
        rows = [[k, str(v)] for k, v in rep.unpriced.items()]
        console.print(_table(console, "Unpriced requests by reason", [("reason", False), ("requests", True)], rows))
