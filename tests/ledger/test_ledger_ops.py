"""Operating the ledger: a version-1 ledger (as the previous release wrote it) is migrated in place
and reads the same; PostgreSQL partitions by month; retention removes raw rows and keeps the
rollups; `report` on a fresh machine, at 80 columns, without --by, and with --since 7d."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from nadir_extproc.ledger import report as rp
from nadir_extproc.ledger import rollup as ru
from nadir_extproc.ledger.cli import parse_when
from nadir_extproc.ledger.schema import COLUMNS, V3_COLUMNS, VERSION_TABLE, LedgerRow, statements, to_db
from nadir_extproc.ledger.store import LATEST, PostgresStore, SQLiteStore, open_store
from nadir_extproc.ledger.writer import LedgerWriter
from tests.ledger.test_store_report import EXPECTED, ROWS

UTC = timezone.utc


_V3 = {c for c, _ in V3_COLUMNS}
#: The raw table's columns at version 1 (later versions added the shadow routing ones).
V1_COLUMNS = [c for c in COLUMNS if c not in _V3]


def _v1_values(r: LedgerRow, **kw) -> tuple:
    return tuple(v for c, v in zip(COLUMNS, to_db(r, **kw)) if c not in _V3)


def _write_v1(kind: str, where) -> None:
    """A ledger exactly as schema version 1 (the previous release) leaves it, holding ROWS."""
    if kind == "sqlite":
        where.mkdir(parents=True, exist_ok=True)
        c = sqlite3.connect(where / "ledger.sqlite3", isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for s in statements("sqlite", 1):
            c.execute(s)
        c.execute(f"INSERT INTO {VERSION_TABLE} VALUES (1, '2026-11-01T00:00:00+00:00')")
        c.executemany(f"INSERT INTO nadir_requests ({', '.join(V1_COLUMNS)}) VALUES ({', '.join('?' * len(V1_COLUMNS))})",
                      [_v1_values(r, text_money=True, text_time=True) for r in ROWS])
        c.close()
    else:
        import psycopg

        with psycopg.connect(where, autocommit=True) as c:
            c.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            for s in statements("postgres", 1):
                c.execute(s)
            c.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (1)")
            with c.cursor() as cur:
                cur.executemany(f"INSERT INTO nadir_requests ({', '.join(V1_COLUMNS)}) VALUES ({', '.join(['%s'] * len(V1_COLUMNS))})",
                                [_v1_values(r, text_money=False, text_time=False) for r in ROWS])


@pytest.fixture(params=["sqlite", "postgres"])
def v1_ledger(request, tmp_path):
    if request.param == "sqlite":
        _write_v1("sqlite", tmp_path / "ledger")
        return ["--sqlite-dir", str(tmp_path / "ledger")], lambda: open_store(sqlite_dir=tmp_path / "ledger")
    dsn = request.getfixturevalue("pg_dsn")
    _write_v1("postgres", dsn)
    return ["--dsn", dsn], lambda: open_store(postgres_dsn=dsn)


def test_a_version_1_ledger_is_migrated_in_place_and_reads_the_same(v1_ledger):
    args, reopen = v1_ledger
    r = CliRunner().invoke(app, ["report", *args, "--by", "team", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert f"upgraded from v1 to v{LATEST}" in r.stderr
    doc = json.loads(r.stdout)
    assert {g["team"]: (g["requests"], D(g["cost_usd"]), D(g["saved_usd"])) for g in doc["groups"]} == {
        k: v[:3] for k, v in EXPECTED["team"].items()
    }
    assert doc["total"]["cost_usd"] == "0.009100015"
    s = reopen()  # the service opening it later: already the latest version; writes keep working next to the old rows
    try:
        assert s.schema_version() == LATEST
        assert list(s.rows()) == ROWS
        new = LedgerRow(ts=datetime(2026, 6, 1, 9, tzinfo=UTC), request_id="new", cost_usd=D("0.25"), key_id="k9", tags={"team": "ads"})
        s.insert([new])
        rep = rp.from_store(s, ["team"])
        assert {k[0]: v.cost_usd for k, v in rep.groups}["ads"] == D("0.25115")
        if isinstance(s, PostgresStore):
            names = [p[0] for p in s.partitions()]
            assert names == ["nadir_requests_legacy", "nadir_requests_y2026m06"]  # v1 rows stay in place (to 2026-05-01)
            assert s._query("SELECT count(*) FROM nadir_requests_legacy")[0][0] == 6
    finally:
        s.close()
    r = CliRunner().invoke(app, ["report", *args, "--by", "team", "--format", "json"])
    assert "upgraded" not in r.stderr


def test_postgres_partitions_by_month_and_retention_drops_whole_months(pg_dsn):
    s = open_store(postgres_dsn=pg_dsn)
    try:
        s.insert(ROWS)  # March and April 2026
        kind = s._query("SELECT relkind FROM pg_class WHERE relname = 'nadir_requests'")[0][0]
        assert kind == "p"  # partitioned table
        idx = s._query("SELECT count(*) FROM pg_indexes WHERE tablename = 'nadir_requests_y2026m03'")[0][0]
        assert idx == 2  # every partition has the time and cost indexes (v4 dropped the unread key and team ones)
        assert [(n, f) for n, f, _ in s.partitions()] == [("nadir_requests_y2026m03", date(2026, 3, 1)), ("nadir_requests_y2026m04", date(2026, 4, 1))]
        # cut-off inside April: March is wholly older and is dropped as a table; April stays whole
        assert s.prune(datetime(2026, 4, 10, tzinfo=UTC), None) == {"partitions": 1, "rollup_rows": 0}
        assert [n for n, _, _ in s.partitions()] == ["nadir_requests_y2026m04"]
        assert [r.request_id for r in s.rows()] == ["req-5", "req-6"]
        # rollups outlive the raw rows: the month report still has March
        rep = rp.from_store(s, ["month"], top_n=0)
        assert {k[0]: (v.requests, v.cost_usd) for k, v in rep.groups} == {"2026-03": (4, D("0.0091")), "2026-04": (2, D("0.000000015"))}
        assert s.meta("raw_pruned_before").startswith("2026-04-01")
        # a late row for a dropped month gets its partition back
        s.insert([LedgerRow(ts=datetime(2026, 3, 5, tzinfo=UTC), request_id="late")])
        assert "nadir_requests_y2026m03" in [n for n, _, _ in s.partitions()]
    finally:
        s.close()


def test_sqlite_retention_keeps_rollups_and_the_report_says_what_is_gone(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    s.insert(ROWS)
    assert s.prune(datetime(2026, 3, 9, tzinfo=UTC), date(2026, 3, 2)) == {"raw_rows": 3, "rollup_rows": 0}
    assert [r.request_id for r in s.rows()] == ["req-4", "req-5", "req-6"]
    rep = rp.from_store(s, ["team"])
    assert {k[0]: v.cost_usd for k, v in rep.groups} == {k: v[1] for k, v in EXPECTED["team"].items()}  # rollups: unchanged
    s.close()
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path), "--by", "user", "--view", "spend"])
    assert r.exit_code == 0
    assert "raw rows before 2026-03-09 were removed by retention" in r.stderr
    r = CliRunner().invoke(app, ["ledger", "prune", "--sqlite-dir", str(tmp_path), "--raw-days", "1", "--rollup-days", "1"])
    assert r.exit_code == 0, r.output
    assert "raw rows 3" in r.output  # everything left is months old


def test_writer_applies_retention_off_the_request_path(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    old = LedgerRow(ts=datetime.now(UTC) - timedelta(days=40), request_id="old", cost_usd=D("1"), tags={"team": "a"})
    s.insert([old])
    w = LedgerWriter(s, retention_days=30, rollup_retention_days=400, flush_interval_s=0.05)
    w.submit(LedgerRow(ts=datetime.now(UTC), request_id="new", cost_usd=D("2"), tags={"team": "a"}))
    assert w.flush(30)
    assert w.pruned.get("raw_rows") == 1
    assert [r.request_id for r in s.rows()] == ["new"]
    assert rp.from_store(s, ["team"]).total.cost_usd == D(3)  # the rollup still holds the old day
    w.close()


# ---------------------------------------------------------------------------- report CLI (issue 19)
def test_report_on_a_fresh_machine_says_so_in_one_line_and_leaves_nothing(tmp_path):
    state = tmp_path / "state"
    r = CliRunner().invoke(app, ["report"], env={"NADIR_STATE_DIR": str(state), "NADIR_CONFIG": "", "NADIR_LEDGER_DSN": ""})
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "no ledger yet at" in r.stderr and "Traceback" not in r.output
    assert not state.exists()  # no empty ledger/ folder left behind
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path / "nope")])
    assert r.exit_code == 1 and not (tmp_path / "nope").exists()


@pytest.fixture
def sq(tmp_path):
    s = open_store(sqlite_dir=tmp_path / "l")
    s.insert(ROWS)
    s.close()
    return ["--sqlite-dir", str(tmp_path / "l")]


def test_report_without_by_prints_one_total_row(sq):
    r = CliRunner().invoke(app, ["report", *sq, "--view", "spend"], env={"COLUMNS": "80", "TTY_COMPATIBLE": "1", "TERM": "dumb"})  # a terminal 80 columns wide
    assert r.exit_code == 0, r.output
    assert r.output.count("0.009100015") == 1 and r.output.count("3560") == 1


LONG = ["claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20240620", "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"]


def test_report_at_80_columns_wraps_names_and_never_cuts_them(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    s.insert([LedgerRow(ts=datetime(2026, 3, 2, i, tzinfo=UTC), request_id=f"r{i}", served_model=m, cost_usd=D("0.123456789012"),
                        saved_usd=D("-0.000000000001"), uncached_input_tokens=123456789, output_tokens=98765432, key_id="0123456789abcdef",
                        tags={"team": "a-rather-long-team-name"})
              for i, m in enumerate(LONG)])
    s.close()
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path), "--by", "model", "--by", "team"], env={"COLUMNS": "80", "TTY_COMPATIBLE": "1", "TERM": "dumb"})  # a terminal 80 columns wide
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(x) for x in lines) <= 80
    assert "…" not in r.output and "..." not in r.output
    spend = r.output.split("Top ")[0]
    for m in LONG:  # every name whole, on one line, once in the spend view
        assert sum(m in ln for ln in spend.splitlines()) == 1, m
    assert spend.count("0.493827156048") == 1 and "493827156" in spend  # the total: whole, once
    assert "0.493827156048" not in r.output.split("Top ")[1]


def test_since_and_until_take_dates_and_durations():
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    assert parse_when("7d", "--since", now) == datetime(2026, 3, 3, 12, 30, tzinfo=UTC)
    assert parse_when("12h", "--since", now) == datetime(2026, 3, 10, 0, 30, tzinfo=UTC)
    assert parse_when("2w", "--since", now) == datetime(2026, 2, 24, 12, 30, tzinfo=UTC)
    assert parse_when("90m", "--since", now) == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert parse_when("2026-03-01", "--since", now) == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_when("2026-03-01T10:00+02:00", "--since", now) == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert parse_when("yesterday", "--since", now) == datetime(2026, 3, 9, tzinfo=UTC)


def test_report_since_a_duration_and_bad_input_is_one_line(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    now = datetime.now(UTC)
    s.insert([LedgerRow(ts=now - timedelta(days=d, minutes=1), request_id=f"d{d}", cost_usd=D(d)) for d in (1, 3, 10)])
    s.close()
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path), "--since", "7d", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["total"] == {"requests": 2, "cost_usd": "4", "saved_usd": "0", "input_tokens": 0, "output_tokens": 0, "unpriced_requests": 0}
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path), "--since", "last tuesday"])
    assert r.exit_code == 2 and "7d" in r.output and "Traceback" not in r.output


def test_report_by_model_fits_an_80_column_terminal_as_one_line_per_model(tmp_path):
    # The demo's widths: a 26-character dated model name, 9-character money, 4-digit token counts.
    # With the full column names the borderless table is 26+8+9+9+6+7+8 + 7x2 = 87 columns (it
    # used to fall back to cards); with reqs / in / out it is 26+4+9+9+4+4+8 + 14 = 78.
    s = open_store(sqlite_dir=tmp_path)
    s.insert([LedgerRow(ts=datetime(2026, 3, 2, 1, tzinfo=UTC), request_id="a", served_model="claude-sonnet-4-5-20250929",
                        cost_usd=D("0.0072135"), saved_usd=D("0.0117885"), uncached_input_tokens=1997, output_tokens=1289),
              LedgerRow(ts=datetime(2026, 3, 2, 2, tzinfo=UTC), request_id="b", served_model="gpt-4o-mini-2024-07-18",
                        cost_usd=D("0.0000784"), saved_usd=D("0.0004116"), uncached_input_tokens=28, output_tokens=42)])
    s.close()
    env = {"COLUMNS": "80", "TTY_COMPATIBLE": "1", "TERM": "dumb"}  # a terminal 80 columns wide
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path), "--by", "model", "--view", "spend"], env=env)
    assert r.exit_code == 0, r.output
    lines = [x.rstrip() for x in r.output.splitlines()]
    assert "•" not in r.output and max(len(x) for x in lines) <= 80
    assert lines[0] == "Spend by model (in/out: tokens)"
    assert lines[1].split() == ["model", "reqs", "cost", "USD", "saved", "USD", "in", "out", "unpriced"]
    assert lines[2].split() == ["claude-sonnet-4-5-20250929", "1", "0.0072135", "0.0117885", "1997", "1289", "0"]
    assert lines[3].split() == ["gpt-4o-mini-2024-07-18", "1", "0.0000784", "0.0004116", "28", "42", "0"]
    # totals by hand: 0.0072135 + 0.0000784; 0.0117885 + 0.0004116; 1997 + 28; 1289 + 42
    assert lines[4].split() == ["total", "2", "0.0072919", "0.0122001", "2025", "1331", "0"] and len(lines) == 5
    # Wide enough for the full names: they stay.
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path), "--by", "model", "--view", "spend"], env={**env, "COLUMNS": "87", "TERM": "xterm"})  # (dumb is 80 wide)
    assert re.sub(r"\x1b\[[0-9;]*m", "", r.output).splitlines()[1].split() == ["model", "requests", "cost", "USD", "saved", "USD", "in", "tok", "out", "tok", "unpriced"]
