"""Shadow routing in the ledger (issue 21): the shadow columns round-trip, the daily rollups carry
the shadow money, ``report --opportunity`` equals hand arithmetic on both stores (from the rollups
and row by row), and ledgers of schema versions 1 and 2 are migrated in place.

Rates are the providers' published list prices (USD per 1M tokens: input / output):
gpt-4o 2.50 / 10.00, gpt-4o-mini 0.15 / 0.60 (OpenAI pricing page); claude-sonnet-4-5 3 / 15,
claude-haiku-4-5 1 / 5 (Anthropic pricing page). Costs below are tokens x rate, by hand:

| # | day        | team   | asked             | usage in/out | cost                          | shadow (tier, model)       | what-if                        | opportunity |
|---|------------|--------|-------------------|--------------|-------------------------------|----------------------------|--------------------------------|-------------|
| 1 | 2026-03-02 | search | gpt-4o            | 1000 / 500   | 0.0025 + 0.005 = 0.0075       | weak, gpt-4o-mini          | 0.00015 + 0.0003 = 0.00045     | 0.00705     |
| 2 | 2026-03-02 | search | gpt-4o            | 2000 / 1000  | 0.005 + 0.01 = 0.015          | strong, gpt-4o             | 0.015                          | 0           |
| 3 | 2026-03-03 | ads    | claude-sonnet-4-5 | 1000 / 200   | 0.003 + 0.003 = 0.006         | weak, claude-haiku-4-5     | 0.001 + 0.001 = 0.002          | 0.004       |
| 4 | 2026-03-03 | ads    | auto -> gpt-4o-mini | 1000 / 500 | 0.00045                       | - (auto: real saving)      | -                              | -           |
| 5 | 2026-03-03 | search | gpt-4o            | provider error, unpriced      | -                             | weak, gpt-4o-mini          | -                              | -           |
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from nadir_extproc.ledger import opportunity as op
from nadir_extproc.ledger import rollup as ru
from nadir_extproc.ledger import store as store_mod
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.ledger.store import LATEST, SQLiteStore, open_store

UTC = timezone.utc


def r(n, day, team, asked, served, provider, usage, cost, shadow=None, what_if=None, opp=None, status="ok") -> LedgerRow:
    unc, out = usage
    return LedgerRow(
        ts=datetime(2026, 3, day, 10, n, tzinfo=UTC), request_id=f"req-{n}", provider=provider,
        dialect="openai_chat" if provider == "openai" else "anthropic_messages",
        requested_model=asked, served_model=served, uncached_input_tokens=unc if cost is not None else None,
        output_tokens=out if cost is not None else None, cost_usd=cost, status=status,
        unpriced_reason="provider_error" if cost is None else None, http_status=500 if cost is None else 200,
        tier="weak" if asked == "auto" else None, saved_usd=D("0.00705") if asked == "auto" else (D(0) if cost is not None else None),
        shadow_tier=shadow[0] if shadow else None, shadow_model=shadow[1] if shadow else None,
        shadow_score=(1.0 if shadow[0] == "strong" else 0.0) if shadow else None,
        shadow_cost_usd=what_if, opportunity_usd=opp, key_id=f"k{n % 2}", tags={"team": team},
    )


ROWS = [
    r(1, 2, "search", "gpt-4o", "gpt-4o", "openai", (1000, 500), D("0.0075"), ("weak", "gpt-4o-mini"), D("0.00045"), D("0.00705")),
    r(2, 2, "search", "gpt-4o", "gpt-4o", "openai", (2000, 1000), D("0.015"), ("strong", "gpt-4o"), D("0.015"), D("0")),
    r(3, 3, "ads", "claude-sonnet-4-5", "claude-sonnet-4-5", "anthropic", (1000, 200), D("0.006"), ("weak", "claude-haiku-4-5"),
      D("0.002"), D("0.004")),
    r(4, 3, "ads", "auto", "gpt-4o-mini", "openai", (1000, 500), D("0.00045")),
    r(5, 3, "search", "gpt-4o", "gpt-4o", "openai", (0, 0), None, ("weak", "gpt-4o-mini"), status="provider_error"),
]

# (requests, cost, shadow_requests, downgradable_requests, downgradable_cost, share, shadow cost, opportunity)
TOTAL = (5, D("0.02895"), 4, 2, D("0.0135"), D("0.466321"), D("0.01745"), D("0.01105"))  # share 0.0135 / 0.02895 = 0.4663212...
BY_TEAM = {
    ("search",): (3, D("0.0225"), 3, 1, D("0.0075"), D("0.333333"), D("0.01545"), D("0.00705")),  # 0.0075 / 0.0225
    ("ads",): (2, D("0.00645"), 1, 1, D("0.006"), D("0.930233"), D("0.002"), D("0.004")),  # 0.006 / 0.00645 = 0.9302325...
}
BY_DAY = {
    ("2026-03-02",): (2, D("0.0225"), 2, 1, D("0.0075"), D("0.333333"), D("0.01545"), D("0.00705")),
    ("2026-03-03",): (3, D("0.00645"), 2, 1, D("0.006"), D("0.930233"), D("0.002"), D("0.004")),
}
BY_MODEL = {
    ("gpt-4o",): (3, D("0.0225"), 3, 1, D("0.0075"), D("0.333333"), D("0.01545"), D("0.00705")),
    ("claude-sonnet-4-5",): (1, D("0.006"), 1, 1, D("0.006"), D("1.000000"), D("0.002"), D("0.004")),
    ("gpt-4o-mini",): (1, D("0.00045"), 0, 0, D(0), D("0"), D(0), D(0)),
}


def figures(o: op.Opportunity) -> tuple:
    return (o.requests, o.cost_usd, o.shadow_requests, o.downgradable_requests, o.downgradable_cost_usd, o.downgradable_share,
            o.shadow_cost_usd, o.opportunity_usd)


@pytest.fixture
def filled(store):
    store.insert(ROWS[:2])
    store.insert(ROWS[2:])
    return store


def test_shadow_columns_round_trip_exactly(filled):
    assert list(filled.rows()) == ROWS


@pytest.mark.parametrize("by,expected", [(["team"], BY_TEAM), (["day"], BY_DAY), (["model"], BY_MODEL)])
def test_opportunity_report_equals_hand_arithmetic_from_rollups_and_rows(filled, by, expected):
    for rep in (op.from_store(filled, by), op.build(filled.rows(), by)):
        assert {k: figures(v) for k, v in rep.groups} == expected
        assert figures(rep.total) == TOTAL
    # From the rollups (whole days) and from raw rows at partial edges: the same figures.
    part = op.from_store(filled, by, since=datetime(2026, 3, 2, 10, 1, 30, tzinfo=UTC))
    assert figures(part.total)[:2] == (4, D("0.02145"))  # row 1 (0.0075) left out
    assert part.total.opportunity_usd == D("0.004")


def test_rollups_carry_the_shadow_money(filled):
    cols = ", ".join(f"SUM({filled.dl.money(m)})" for m in ("shadow_cost_usd", "opportunity_usd", "downgradable_cost_usd"))
    got = filled._query(f"SELECT day, team, SUM(shadow_requests), {cols} FROM {ru.DAILY} GROUP BY 1, 2 ORDER BY 1, 2")
    conv = (lambda v: ru.from_pico(v)) if isinstance(filled, SQLiteStore) else (lambda v: D(v))
    out = [(str(d), t, int(n), *map(conv, money)) for d, t, n, *money in got]
    assert out == [
        ("2026-03-02", "search", 2, D("0.01545"), D("0.00705"), D("0.0075")),
        ("2026-03-03", "ads", 1, D("0.002"), D("0.004"), D("0.006")),
        ("2026-03-03", "search", 1, D(0), D(0), D(0)),
    ]


def test_cli_opportunity_json_csv_and_table_state_the_router_quality(filled):
    args = ["--sqlite-dir", str(filled.dir)] if isinstance(filled, SQLiteStore) else ["--dsn", filled._dsn]
    res = CliRunner().invoke(app, ["report", "--opportunity", *args, "--by", "team", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["groups"][0] == {
        "team": "search", "requests": 3, "cost_usd": "0.0225", "unpriced_requests": 1, "shadow_requests": 3,
        "downgradable_requests": 1, "downgradable_cost_usd": "0.0075", "downgradable_share": "0.333333",
        "shadow_cost_usd": "0.01545", "opportunity_usd": "0.00705",
    }
    t = doc["total"]
    assert (t["cost_usd"], t["shadow_requests"], t["downgradable_cost_usd"], t["downgradable_share"], t["opportunity_usd"]) == (
        "0.02895", 4, "0.0135", "0.466321", "0.01105")
    q = doc["router_quality"]
    # MODEL_CARD.md (router v2.5): thresholds 0.211378 / 0.583837; >= mid keeps 80.2 % of the gap with 77.6 % of calls, >= strong 51.0 % with 50.0 %
    assert q["thresholds"] == {"mid": 0.211378, "strong": 0.583837}
    assert q["at_mid"] == {"pgr_pct": 80.2, "calls_pct": 77.6} and q["at_strong"] == {"pgr_pct": 51.0, "calls_pct": 50.0}
    assert q["apgr"]["value"] == 0.514 and q["apgr"]["ci95"] == [0.454, 0.575] and q["random_apgr"] == 0.5
    assert "estimate" in doc["note"]

    res = CliRunner().invoke(app, ["report", "--opportunity", *args, "--by", "team", "--format", "csv"])
    lines = res.stdout.splitlines()
    assert lines[:4] == [
        "team,requests,cost_usd,shadow_requests,downgradable_requests,downgradable_cost_usd,downgradable_share,shadow_cost_usd,opportunity_usd,unpriced_requests",
        "search,3,0.0225,3,1,0.0075,0.333333,0.01545,0.00705,1",
        "ads,2,0.00645,1,1,0.006,0.930233,0.002,0.004,0",
        "total,5,0.02895,4,2,0.0135,0.466321,0.01745,0.01105,1",
    ]
    # nothing but records on stdout (a CSV reader chokes on comment lines); the notes go to stderr
    assert len(lines) == 4 and len(list(csv.reader(io.StringIO(res.stdout)))) == 4
    err = res.stderr.splitlines()
    assert err[0].startswith("Router quality at its thresholds") and "80.2 %" in err[0] and "shadow_cost_usd" in err[1]

    res = CliRunner().invoke(app, ["report", "--opportunity", *args, "--by", "team"], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "What routing would save by team" in res.stdout and "46.6 %" in res.stdout and "0.01105" in res.stdout
    assert "Router quality at its thresholds" in res.stdout and "Estimate:" in res.stdout


def _as_v2(monkeypatch, open_it):
    """Open (and so migrate) a version-1 ledger with this code held to version 2 and schema v2's
    rollup measures: exactly what the previous release left on disk."""
    with monkeypatch.context() as m:
        m.setattr(store_mod, "LATEST", 2)
        m.setattr(ru, "MEASURES", ru.MEASURES[: ru.V2_MEASURES])
        s = open_it()
        assert s.schema_version() == 2
        s.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_version_1_and_2_ledgers_migrate_in_place_and_take_shadow_rows(kind, tmp_path, request, monkeypatch):
    from tests.ledger.test_ledger_ops import ROWS as OLD, _write_v1

    if kind == "sqlite":
        where = tmp_path / "ledger"
        args, open_it = ["--sqlite-dir", str(where)], lambda: open_store(sqlite_dir=where)
    else:
        where = request.getfixturevalue("pg_dsn")
        args, open_it = ["--dsn", where], lambda: open_store(postgres_dsn=where)
    _write_v1(kind, where)
    _as_v2(monkeypatch, open_it)
    if kind == "sqlite":
        cols = {c[1] for c in sqlite3.connect(where / "ledger.sqlite3").execute(f"PRAGMA table_info({ru.DAILY})")}
        assert "opportunity_pusd" not in cols and "cost_pusd" in cols  # a true v2 rollup table
    res = CliRunner().invoke(app, ["report", "--opportunity", *args, "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "upgraded from v2 to v4" in res.stderr
    t = json.loads(res.stdout)["total"]
    # the old rows: cost 0.00045 + 0.0075 + 0.00115 + 0.000000015 (tests/ledger/test_store_report.py), none scored in shadow
    assert (t["requests"], t["cost_usd"], t["shadow_requests"], t["opportunity_usd"], t["downgradable_share"]) == (
        6, "0.009100015", 0, "0", "0.000000")
    s = open_it()
    try:
        assert s.schema_version() == LATEST == 4
        assert list(s.rows()) == OLD  # old rows read back unchanged, shadow fields None
        s.insert(ROWS)
        rep = op.from_store(s, [])
        assert rep.total.opportunity_usd == D("0.01105") and rep.total.shadow_requests == 4
        assert rep.total.cost_usd == D("0.009100015") + D("0.02895")
        assert figures(rep.total) == figures(op.build(s.rows(), []).total)
    finally:
        s.close()
    # straight from v1 (no v2 in between): the same shape
    if kind == "sqlite":
        where2 = tmp_path / "ledger2"
        _write_v1(kind, where2)
        s = open_store(sqlite_dir=where2)
        try:
            s.insert(ROWS)
            assert figures(op.from_store(s, ["team"]).total)[-1] == D("0.01105")
        finally:
            s.close()
