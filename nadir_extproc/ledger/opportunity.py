"""The opportunity report (``nadir-extproc report --opportunity``): what routing would save on
traffic that names its model, from shadow routing's ledger columns (issue 21).

Per group (``--by`` as in the spend report; none: one total):

- ``requests`` and ``cost_usd``: every request and all spend (priced requests);
- ``shadow_requests``: requests scored in shadow (explicit model, sampled, provider with tiers);
- ``downgradable_requests`` / ``downgradable_cost_usd``: requests whose shadow choice would have
  cost less at the same usage (``opportunity_usd > 0``: the router would have sent them to a
  cheaper model), and what they actually cost;
- ``downgradable_share`` = ``downgradable_cost_usd / cost_usd`` (their share of all spend; ``None``
  without spend), a decimal rounded half-even to 6 places;
- ``shadow_cost_usd``: the what-if cost of the shadow requests; ``opportunity_usd``: the estimated
  saving, the sum of (actual - what-if) over the downgradable requests.

The what-if cost is **an estimate**: the same tokens priced at the shadow model's rates, while a
different model would have answered with a different number of output tokens. ``model: auto``
requests are not in these figures (their real saving is ``saved_usd`` in the spend report).

Every figure comes with the router's measured quality at its thresholds, read from the model card
(``routing/model/MODEL_CARD.md``), so the saving is never shown without its quality cost.
Sums are computed in the database from the daily rollups (``Store.aggregate``) like the spend
report; ``build`` is the row-by-row reference (tests compare them).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from nadir_extproc.ledger.report import group_key, group_plan
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.pricing.money import format_usd

MODEL_CARD = Path(__file__).resolve().parent.parent / "routing" / "model" / "MODEL_CARD.md"
ESTIMATE_NOTE = ("shadow_cost_usd and opportunity_usd are estimates: this response's tokens priced at the model the router "
                 "would have chosen; that model would have answered with a different number of output tokens")
_SHARE = Decimal("0.000001")


@dataclass
class Opportunity:
    """One group's figures (USD ``Decimal``, counts ints)."""

    requests: int = 0
    unpriced: int = 0
    cost_usd: Decimal = Decimal(0)
    shadow_requests: int = 0
    downgradable_requests: int = 0
    downgradable_cost_usd: Decimal = Decimal(0)
    shadow_cost_usd: Decimal = Decimal(0)
    opportunity_usd: Decimal = Decimal(0)

    @property
    def downgradable_share(self) -> Decimal | None:
        """``downgradable_cost_usd / cost_usd`` rounded half-even to 6 places; ``None`` without spend."""
        if not self.cost_usd:
            return None
        return (self.downgradable_cost_usd / self.cost_usd).quantize(_SHARE, ROUND_HALF_EVEN)

    def add(self, r: LedgerRow) -> None:
        self.requests += 1
        if r.cost_usd is None:
            self.unpriced += 1
        else:
            self.cost_usd += r.cost_usd
        if r.shadow_model is not None:
            self.shadow_requests += 1
        opp = r.opportunity_usd
        if opp is not None and opp > 0:
            self.downgradable_requests += 1
            self.downgradable_cost_usd += r.cost_usd or 0
            self.opportunity_usd += opp
        if r.shadow_cost_usd is not None:
            self.shadow_cost_usd += r.shadow_cost_usd


@dataclass
class OpportunityReport:
    """``groups`` sorted by opportunity then spend, descending; ``total`` over every row."""

    by: list[str]
    groups: list[tuple[tuple[str | None, ...], Opportunity]] = field(default_factory=list)
    total: Opportunity = field(default_factory=Opportunity)


def _sort(acc: dict[tuple, Opportunity]) -> list[tuple[tuple, Opportunity]]:
    return sorted(acc.items(), key=lambda kv: (-kv[1].opportunity_usd, -kv[1].cost_usd, tuple(x or "" for x in kv[0])))


def build(rows: Iterable[LedgerRow], by: list[str]) -> OpportunityReport:
    """The report added up row by row in Python (the reference; also used when the ledger's
    schema cannot be upgraded). Raises ``ValueError`` for an unknown group."""
    keys = [group_key(b) for b in by]
    acc: dict[tuple, Opportunity] = {}
    rep = OpportunityReport(by=list(by))
    for r in rows:
        acc.setdefault(tuple(f(r) for f in keys), Opportunity()).add(r)
        rep.total.add(r)
    rep.groups = _sort(acc)
    return rep


def from_store(store: Any, by: list[str], since: datetime | None = None, until: datetime | None = None) -> OpportunityReport:
    """The report of ``[since, until)`` grouped by ``by``, summed in the database (rollups for
    whole UTC days, raw rows for edges and for user/session groups); equal to
    ``build(store.rows(since, until), by)``. Raises ``ValueError`` for an unknown group."""
    from nadir_extproc.ledger import rollup as ru

    names, pos = group_plan(by)

    def opp(sums: list) -> Opportunity:
        d = dict(zip(names, sums))
        return Opportunity(**{k: d[k] for k in ("requests", "unpriced", "cost_usd", "shadow_requests", "downgradable_requests",
                                                "downgradable_cost_usd", "shadow_cost_usd", "opportunity_usd")})

    acc: dict[tuple, list] = {}
    total: list | None = None
    for key, sums in store.aggregate(by, since, until):
        k = tuple(ru.time_key(key[p], b) if b in ru.TIME_GROUPS else key[p] for b, p in zip(by, pos))
        have = acc.get(k)
        acc[k] = list(sums) if have is None else [a + b for a, b in zip(have, sums)]
        total = list(sums) if total is None else [a + b for a, b in zip(total, sums)]
    rep = OpportunityReport(by=list(by))
    rep.groups = _sort({k: opp(v) for k, v in acc.items()})
    rep.total = opp(total) if total is not None else Opportunity()
    return rep


# ---------------------------------------------------------------------------- quality
@lru_cache(maxsize=4)
def router_quality(card: Path = MODEL_CARD) -> dict[str, Any]:
    """The router's measured quality at its thresholds, from the model card: ``thresholds``
    (tier -> lowest score), per threshold the share of the strong-vs-weak quality gap kept
    (``pgr_pct``) and the share of calls sent at or above it (``calls_pct``), the cross-validated
    ranking quality (``apgr`` with its 95 % interval, ``random_apgr``), the evaluation set and a
    one-line ``statement``. When the card cannot be read or parsed, ``statement`` says so."""
    out: dict[str, Any] = {"source": "nadir_extproc/routing/model/MODEL_CARD.md"}
    try:
        text = " ".join(card.read_text(encoding="utf-8").split())
    except OSError as e:
        out["statement"] = f"router quality unavailable: cannot read the model card ({type(e).__name__})"
        return out
    m = re.search(r"`< ([\d.]+)` weak, `< ([\d.]+)` mid, else strong; on the (.+?) scores, everything ≥ mid on the strong model "
                  r"recovers ([\d.]+) % of the (.+?) quality gap with ([\d.]+) % of calls, ≥ strong ([\d.]+) % with ([\d.]+) %", text)
    a = re.search(r"\| (arena-bench-v1 chat[^|]*)\| ([\d.]+) \[([\d.]+)–([\d.]+)\] \|(?:[^|]*\|){3} ([\d.]+) \|", text)
    if not m:
        out["statement"] = "router quality unavailable: the model card's threshold figures were not found"
        return out
    out["thresholds"] = {"mid": float(m.group(1)), "strong": float(m.group(2))}
    out["evaluated_on"] = m.group(3)
    out["quality_gap"] = m.group(5)
    out["at_mid"] = {"pgr_pct": float(m.group(4)), "calls_pct": float(m.group(6))}
    out["at_strong"] = {"pgr_pct": float(m.group(7)), "calls_pct": float(m.group(8))}
    s = (f"Router quality at its thresholds ({m.group(3)}): at mid ≥ {m.group(1)} the strong model gets {m.group(6)} % of calls "
         f"and {m.group(4)} % of the {m.group(5)} quality gap is kept; at strong ≥ {m.group(2)}, {m.group(8)} % of calls keep "
         f"{m.group(7)} %. Following the router gives up the rest of that gap on the requests it downgrades.")
    if a:
        out["apgr"] = {"value": float(a.group(2)), "ci95": [float(a.group(3)), float(a.group(4))], "data": a.group(1).strip()}
        out["random_apgr"] = float(a.group(5))
        s += f" Cross-validated ranking quality: APGR {a.group(2)} [{a.group(3)}–{a.group(4)}] vs {a.group(5)} for random routing."
    out["statement"] = s
    return out


# ---------------------------------------------------------------------------- output
def _dict(o: Opportunity) -> dict[str, Any]:
    share = o.downgradable_share
    return {
        "requests": o.requests,
        "cost_usd": format_usd(o.cost_usd),
        "unpriced_requests": o.unpriced,
        "shadow_requests": o.shadow_requests,
        "downgradable_requests": o.downgradable_requests,
        "downgradable_cost_usd": format_usd(o.downgradable_cost_usd),
        "downgradable_share": str(share) if share is not None else None,
        "shadow_cost_usd": format_usd(o.shadow_cost_usd),
        "opportunity_usd": format_usd(o.opportunity_usd),
    }


def records(rep: OpportunityReport) -> list[dict[str, Any]]:
    """One dict per group: the group columns (named as in ``by``) then the figures."""
    return [{**dict(zip(rep.by, k)), **_dict(o)} for k, o in rep.groups]


def to_json(rep: OpportunityReport) -> str:
    """``by``, ``groups``, ``total``, ``router_quality`` (``router_quality``) and ``note``."""
    return json.dumps({"by": rep.by, "groups": records(rep), "total": _dict(rep.total), "router_quality": router_quality(),
                       "note": ESTIMATE_NOTE}, indent=2, ensure_ascii=False)


CSV_COLUMNS = ["requests", "cost_usd", "shadow_requests", "downgradable_requests", "downgradable_cost_usd", "downgradable_share",
               "shadow_cost_usd", "opportunity_usd", "unpriced_requests"]


def to_csv(rep: OpportunityReport) -> str:
    """The groups and a ``total`` row as CSV, nothing else (a CSV reader takes every line as a
    record); ``report`` prints ``notes`` — the router's quality and the estimate note — on stderr
    beside it, and ``--format json`` carries them in the document."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*rep.by, *CSV_COLUMNS], lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for rec in records(rep):
        w.writerow(rec)
    w.writerow({**{b: "total" if i == 0 else "" for i, b in enumerate(rep.by)}, **_dict(rep.total)})
    return buf.getvalue()


def notes() -> str:
    """What must travel with the figures, as two lines: the router's measured quality and the
    estimate note (the table prints them under itself; with CSV they go to stderr)."""
    return f"{router_quality()['statement']}\nEstimate: {ESTIMATE_NOTE}.\n"


def print_table(rep: OpportunityReport, console: Any = None) -> None:
    """The report as a rich table, then the router's quality and the estimate note."""
    from nadir_extproc.ledger.report import _table
    from nadir_extproc.tables import output_console

    console = console or output_console()

    def nums(d: dict[str, Any]) -> list[str]:
        share = d["downgradable_share"]
        pct = f"{Decimal(share) * 100:.1f} %" if share is not None else "-"
        return [str(d["requests"]), d["cost_usd"], str(d["shadow_requests"]), str(d["downgradable_requests"]),
                d["downgradable_cost_usd"], pct, d["opportunity_usd"]]

    header = [(b, False) for b in rep.by] + [(c, True) for c in (
        "requests", "spend USD", "shadow req", "downgr. req", "downgr. spend USD", "share", "est. saving USD")]
    rows = [[str(rec[b]) if rec[b] is not None else "-" for b in rep.by] + nums(rec) for rec in records(rep)] if rep.by else []
    rows.append((["total"] + [""] * (len(rep.by) - 1) if rep.by else []) + nums(_dict(rep.total)))
    title = "What routing would save" + (f" by {', '.join(rep.by)}" if rep.by else "") + " (explicit-model traffic, shadow routing)"
    console.print(_table(console, title, header, rows, bold_last=True))
    console.print(router_quality()["statement"], soft_wrap=False)
    console.print("Estimate: " + ESTIMATE_NOTE + ".")
