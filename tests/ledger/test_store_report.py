"""Stores (SQLite and a real PostgreSQL) and the report: exact round trips, versioned migrations,
and report totals equal to hand sums over a known set of six requests, for every grouping.

The six requests (costs in USD as stored; tokens in = uncached + cache read + cache write):

| # | time (UTC)             | team   | feature   | user | env     | key | model            | cost        | saved        | in   | out |
|---|------------------------|--------|-----------|------|---------|-----|------------------|-------------|--------------|------|-----|
| 1 | 2026-03-02 10:00       | search | chat      | u1   | prod    | k1  | gpt-4o-mini      | 0.00045     | 0.00705      | 1000 | 500 |
| 2 | 2026-03-02 23:59:59.5  | search | summarize | u2   | prod    | k2  | gpt-4o           | 0.0075      | 0            | 1000 | 500 |
| 3 | 2026-03-08 12:00 (Sun) | ads    | chat      | u1   | staging | k1  | claude-haiku-4-5 | 0.00115     | 0.00095      | 1500 | 100 |
| 4 | 2026-03-09 00:00 (Mon) | ads    | chat      | u3   | prod    | k3  | gpt-4o-mini      | unpriced: provider_error  | | 0    | 0   |
| 5 | 2026-04-01 08:00       | -      | -         | -    | -       | -   | unknown-model    | unpriced: unknown_model   | | 50   | 10  |
| 6 | 2026-04-15 08:00       | search | chat      | -    | -       | k2  | gpt-4o-mini      | 0.000000015 | -0.000000005 | 10   | 5   |

ISO weeks: 2026-03-02 and 03-08 are week 10, 03-09 week 11, 04-01 week 14, 04-15 week 16.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from nadir_extproc.ledger import report as rp
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.ledger.store import LATEST, SQLiteStore, open_store


def t(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def row(n, ts, tags, key, model, provider, cost, saved, usage=(0, 0, 0, 0), status="ok", unpriced=None) -> LedgerRow:
    unc, cr, cw, out = usage
    return LedgerRow(
        ts=ts, request_id=f"req-{n}", dialect="openai_chat" if provider == "openai" else "anthropic_messages",
        provider=provider, requested_model="auto", served_model=model, tier="weak", score=0.25, route_reason="short",
        router="rules", uncached_input_tokens=unc, cache_read_tokens=cr, cache_write_tokens=cw, cache_write_1h_tokens=0,
        output_tokens=out, reasoning_tokens=0, cost_usd=cost, baseline_usd=None, saved_usd=saved,
        unpriced_reason=unpriced, status=status, http_status=500 if status == "provider_error" else 200,
        stream=False, latency_ms=1.5, key_id=key, tags=tags,
    )


ROWS = [
    row(1, t(2026, 3, 2, 10), {"team": "search", "feature": "chat", "user": "u1", "env": "prod"}, "k1", "gpt-4o-mini", "openai", D("0.00045"), D("0.00705"), (1000, 0, 0, 500)),
    row(2, datetime(2026, 3, 2, 23, 59, 59, 500000, tzinfo=timezone.utc), {"team": "search", "feature": "summarize", "user": "u2", "env": "prod"}, "k2", "gpt-4o", "openai", D("0.0075"), D("0"), (1000, 0, 0, 500)),
    row(3, t(2026, 3, 8, 12), {"team": "ads", "feature": "chat", "user": "u1", "env": "staging"}, "k1", "claude-haiku-4-5", "anthropic", D("0.00115"), D("0.00095"), (300, 1000, 200, 100)),
    row(4, t(2026, 3, 9), {"team": "ads", "feature": "chat", "user": "u3", "env": "prod"}, "k3", "gpt-4o-mini", "openai", None, None, status="provider_error", unpriced="provider_error"),
    row(5, t(2026, 4, 1, 8), {}, None, "unknown-model", "openai", None, None, (50, 0, 0, 10), unpriced="unknown_model"),
    row(6, t(2026, 4, 15, 8), {"team": "search", "feature": "chat", "x-ab": "b"}, "k2", "gpt-4o-mini", "openai", D("1.5E-8"), D("-5E-9"), (10, 0, 0, 5)),
]

# group value -> (requests, cost, saved, input tokens, output tokens, unpriced requests)
EXPECTED = {
    "team": {
        "search": (3, D("0.007950015"), D("0.007049995"), 2010, 1005, 0),
        "ads": (2, D("0.00115"), D("0.00095"), 1500, 100, 1),
        None: (1, D(0), D(0), 50, 10, 1),
    },
    "feature": {
        "chat": (4, D("0.001600015"), D("0.007999995"), 2510, 605, 1),
        "summarize": (1, D("0.0075"), D(0), 1000, 500, 0),
        None: (1, D(0), D(0), 50, 10, 1),
    },
    "user": {
        "u1": (2, D("0.0016"), D("0.008"), 2500, 600, 0),
        "u2": (1, D("0.0075"), D(0), 1000, 500, 0),
        "u3": (1, D(0), D(0), 0, 0, 1),
        None: (2, D("0.000000015"), D("-0.000000005"), 60, 15, 1),
    },
    "env": {
        "prod": (3, D("0.00795"), D("0.00705"), 2000, 1000, 1),
        "staging": (1, D("0.00115"), D("0.00095"), 1500, 100, 0),
        None: (2, D("0.000000015"), D("-0.000000005"), 60, 15, 1),
    },
    "key_id": {
        "k1": (2, D("0.0016"), D("0.008"), 2500, 600, 0),
        "k2": (2, D("0.007500015"), D("-0.000000005"), 1010, 505, 0),
        "k3": (1, D(0), D(0), 0, 0, 1),
        None: (1, D(0), D(0), 50, 10, 1),
    },
    "model": {
        "gpt-4o-mini": (3, D("0.000450015"), D("0.007049995"), 1010, 505, 1),
        "gpt-4o": (1, D("0.0075"), D(0), 1000, 500, 0),
        "claude-haiku-4-5": (1, D("0.00115"), D("0.00095"), 1500, 100, 0),
        "unknown-model": (1, D(0), D(0), 50, 10, 1),
    },
    "provider": {
        "openai": (5, D("0.007950015"), D("0.007049995"), 2060, 1015, 2),
        "anthropic": (1, D("0.00115"), D("0.00095"), 1500, 100, 0),
    },
    "day": {
        "2026-03-02": (2, D("0.00795"), D("0.00705"), 2000, 1000, 0),
        "2026-03-08": (1, D("0.00115"), D("0.00095"), 1500, 100, 0),
        "2026-03-09": (1, D(0), D(0), 0, 0, 1),
        "2026-04-01": (1, D(0), D(0), 50, 10, 1),
        "2026-04-15": (1, D("0.000000015"), D("-0.000000005"), 10, 5, 0),
    },
    "week": {
        "2026-W10": (3, D("0.0091"), D("0.008"), 3500, 1100, 0),
        "2026-W11": (1, D(0), D(0), 0, 0, 1),
        "2026-W14": (1, D(0), D(0), 50, 10, 1),
        "2026-W16": (1, D("0.000000015"), D("-0.000000005"), 10, 5, 0),
    },
    "month": {
        "2026-03": (4, D("0.0091"), D("0.008"), 3500, 1100, 1),
        "2026-04": (2, D("0.000000015"), D("-0.000000005"), 60, 15, 1),
    },
    "tag:x-ab": {
        "b": (1, D("0.000000015"), D("-0.000000005"), 10, 5, 0),
        None: (5, D("0.0091"), D("0.008"), 3550, 1110, 2),
    },
}


def _totals(rep: rp.Report) -> dict:
    return {k[0]: (v.requests, v.cost_usd, v.saved_usd, v.input_tokens, v.output_tokens, v.unpriced) for k, v in rep.groups}


@pytest.fixture
def filled(store):
    store.insert(ROWS[:3])
    store.insert(ROWS[3:])
    return store


def test_rows_round_trip_exactly(filled):
    back = list(filled.rows())
    assert back == ROWS  # Decimal, datetime (to the microsecond), tags, None all survive


@pytest.mark.parametrize("by", sorted(EXPECTED))
def test_report_totals_equal_hand_sums(filled, by):
    rep = rp.build(filled.rows(), [by])
    assert _totals(rep) == EXPECTED[by]
    # overall: cost 0.00045 + 0.0075 + 0.00115 + 0.000000015; saved 0.00705 + 0 + 0.00095 - 0.000000005
    tot = rep.total
    assert (tot.requests, tot.cost_usd, tot.saved_usd, tot.input_tokens, tot.output_tokens, tot.unpriced) == (
        6, D("0.009100015"), D("0.007999995"), 3560, 1115, 2,
    )


def test_report_two_groupings_time_range_top_and_unpriced(filled):
    rep = rp.build(filled.rows(since=t(2026, 3, 8), until=t(2026, 4, 1, 8)), ["team", "month"], top_n=1)
    # rows 3 and 4 only (row 5 is at the exclusive upper bound)
    assert _totals_2(rep) == {("ads", "2026-03"): (2, D("0.00115"))}
    assert [r.request_id for r in rep.top] == ["req-3"]
    assert rep.unpriced == {"provider_error": 1}
    full = rp.build(filled.rows(), [], top_n=2)
    assert [r.request_id for r in full.top] == ["req-2", "req-3"]
    assert full.unpriced == {"provider_error": 1, "unknown_model": 1}


def _totals_2(rep):
    return {k: (v.requests, v.cost_usd) for k, v in rep.groups}


def test_migrations_are_versioned_and_idempotent(store):
    assert store.schema_version() == LATEST == 4
    assert store.migrate() == 4  # second run applies nothing
    assert store.schema_version() == 4
    store.insert(ROWS[:1])
    assert store.migrate() == 4
    assert len(list(store.rows())) == 1


def test_sqlite_keeps_money_as_plain_decimal_text_and_uses_wal(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    s.insert([ROWS[5]])
    s.close()
    c = sqlite3.connect(tmp_path / "ledger.sqlite3")
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("SELECT cost_usd, saved_usd, typeof(cost_usd) FROM nadir_requests").fetchone() == ("0.000000015", "-0.000000005", "text")
    assert c.execute("SELECT ts FROM nadir_requests").fetchone()[0] == "2026-04-15T08:00:00.000000Z"


def test_postgres_money_columns_are_numeric(pg_dsn):
    import psycopg

    s = open_store(postgres_dsn=pg_dsn)
    s.insert([ROWS[5]])
    s.close()
    with psycopg.connect(pg_dsn) as c:
        types = dict(c.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'nadir_requests' "
            "AND column_name IN ('cost_usd', 'baseline_usd', 'saved_usd', 'ts')"
        ).fetchall())
        assert types == {"cost_usd": "numeric", "baseline_usd": "numeric", "saved_usd": "numeric", "ts": "timestamp with time zone"}
        assert c.execute("SELECT cost_usd::text, saved_usd::text FROM nadir_requests").fetchone() == ("0.000000015", "-0.000000005")
        assert c.execute("SELECT version FROM nadir_schema_version ORDER BY 1").fetchall() == [(1,), (2,), (3,), (4,)]


def test_postgres_repr_hides_the_dsn_password(pg_dsn):
    dsn = pg_dsn.replace("nadir@", "nadir:hunter2secret@")  # trust auth ignores the password
    s = open_store(postgres_dsn=dsn)
    try:
        assert "hunter2secret" not in repr(s)
    finally:
        s.close()


# ---------------------------------------------------------------------------- CLI
def _cli_args(store, tmp_path) -> list[str]:
    if isinstance(store, SQLiteStore):
        return ["--sqlite-dir", str(store.dir)]
    return ["--dsn", store._dsn]


def test_cli_json_and_csv_give_the_hand_sums(filled, tmp_path):
    args = _cli_args(filled, tmp_path)
    r = CliRunner().invoke(app, ["report", *args, "--by", "team", "--format", "json", "--top", "1"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["total"]["cost_usd"] == "0.009100015"
    assert doc["total"]["saved_usd"] == "0.007999995"
    assert [(g["team"], g["requests"], g["cost_usd"]) for g in doc["groups"]] == [
        ("search", 3, "0.007950015"), ("ads", 2, "0.00115"), (None, 1, "0"),
    ]
    assert [x["request_id"] for x in doc["top"]] == ["req-2"]
    assert doc["unpriced"] == {"provider_error": 1, "unknown_model": 1}

    r = CliRunner().invoke(app, ["report", *args, "--by", "month", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "month,requests,cost_usd,saved_usd,input_tokens,output_tokens,unpriced_requests",
        "2026-03,4,0.0091,0.008,3500,1100,1",
        "2026-04,2,0.000000015,-0.000000005,60,15,1",
    ]
    r = CliRunner().invoke(app, ["report", *args, "--format", "csv", "--view", "unpriced", "--since", "2026-04-01"])
    assert r.output.splitlines() == ["reason,requests", "unknown_model,1"]


def test_cli_table_and_bad_group(filled, tmp_path):
    args = _cli_args(filled, tmp_path)
    r = CliRunner().invoke(app, ["report", *args, "--by", "model"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "claude-haiku-4-5" in r.output and "0.009100015" in r.output and "provider_error" in r.output
    r = CliRunner().invoke(app, ["report", *args, "--by", "planet"])
    assert r.exit_code != 0


def test_cli_negative_top_is_a_bad_argument(filled, tmp_path):
    # Found by a newcomer: --top -1 was accepted (exit 0, no top list) instead of refused.
    args = _cli_args(filled, tmp_path)
    r = CliRunner().invoke(app, ["report", *args, "--top", "-1"])
    assert r.exit_code == 2, r.output
    assert CliRunner().invoke(app, ["report", *args, "--top", "0", "--format", "json"]).exit_code == 0
