"""Aggregation in the database and the daily rollups, on SQLite and a real PostgreSQL.

The reference is ``report.build``: plain ``Decimal`` additions over the rows, in Python. For a few
hundred generated rows (money down to 10^-12 USD, negative savings, unpriced rows, ISO week 53 of
2026 and week 1 of 2027, partial days at the range edges) the database's sums must be identical
for every grouping, whether they come from the rollups, the raw rows or both.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from nadir_extproc.cli import app
from nadir_extproc.ledger import report as rp
from nadir_extproc.ledger import rollup as ru
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.ledger.store import LATEST, SQLiteStore, open_store

UTC = timezone.utc
START = datetime(2026, 12, 20, tzinfo=UTC)  # 2026-12-31 is in ISO week 2026-W53, 2027-01-04 starts 2027-W01


def gen_rows(n: int, seed: int = 7) -> list[LedgerRow]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        ts = START + timedelta(seconds=rnd.randrange(0, 50 * 86400), microseconds=rnd.randrange(0, 1_000_000))
        priced = rnd.random() > 0.15
        cost = D(rnd.randrange(1, 10**9)).scaleb(-rnd.randrange(6, 13)) if priced else None
        saved = (D(rnd.randrange(-10**6, 10**8)).scaleb(-12) if rnd.random() > 0.2 else None) if priced else None
        tags = {}
        for name, values in (("team", ["search", "ads", "core"]), ("feature", ["chat", "sum"]), ("env", ["prod", "dev"]),
                             ("user", ["u1", "u2", "u3", "u4"]), ("session", ["s1", "s2"]), ("project", ["apollo", "zeus"])):
            if rnd.random() > 0.2:
                tags[name] = rnd.choice(values)
        status = rnd.choice(["ok", "ok", "ok", "provider_error", "cut_stream"]) if priced else rnd.choice(["ok", "provider_error", "no_response"])
        rows.append(LedgerRow(
            ts=ts, request_id=f"g{i}", provider=rnd.choice(["openai", "anthropic", None]),
            served_model=rnd.choice(["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", None]),
            uncached_input_tokens=rnd.choice([None, rnd.randrange(0, 5000)]), cache_read_tokens=rnd.choice([None, 0, 700]),
            cache_write_tokens=rnd.choice([None, 0, 30]), cache_write_1h_tokens=rnd.choice([None, 5]),
            output_tokens=rnd.choice([None, rnd.randrange(0, 900)]), reasoning_tokens=rnd.choice([None, 64]),
            cost_usd=cost, baseline_usd=(cost + saved) if cost is not None and saved is not None else None, saved_usd=saved,
            unpriced_reason=None if priced else rnd.choice(["unknown_model", "no_usage", None]),
            status=status, key_id=rnd.choice(["k1", "k2", "k3", None]), tags=tags,
        ))
    return rows


ROWS = gen_rows(700)
GROUPINGS = [
    [], ["team"], ["feature"], ["env"], ["key_id"], ["model"], ["provider"], ["status"], ["day"], ["week"], ["month"],
    ["team", "day"], ["key_id", "month"], ["model", "week", "team"], ["day", "week"], ["user"], ["session"], ["tag:project"],
    ["tag:project", "week"], ["tag:user"], ["tag:team", "env"], ["team", "user"],
]
RANGES = [
    (None, None),
    (datetime(2026, 12, 28, tzinfo=UTC), datetime(2027, 1, 11, tzinfo=UTC)),  # whole days: rollups only
    (datetime(2026, 12, 27, 13, 5, 1, 250000, tzinfo=UTC), datetime(2027, 1, 20, 6, 30, tzinfo=UTC)),  # partial edge days
    (datetime(2027, 1, 3, 1, tzinfo=UTC), datetime(2027, 1, 3, 23, tzinfo=UTC)),  # inside one day, whole hours: hourly only
    (datetime(2027, 1, 6, 8, 31, tzinfo=UTC), datetime(2027, 1, 6, 18, 1, 43, tzinfo=UTC)),  # hours + partial hours (rows in each)
    (datetime(2027, 1, 6, 14, 10, tzinfo=UTC), datetime(2027, 1, 6, 14, 55, tzinfo=UTC)),  # under an hour: raw only
    (datetime(2027, 1, 15, 12, tzinfo=UTC), None),
    (datetime(2027, 1, 15, 12, 30, tzinfo=UTC), None),
]


def _as_dict(rep: rp.Report):
    t = lambda v: (v.requests, v.cost_usd, v.saved_usd, v.input_tokens, v.output_tokens, v.unpriced)  # noqa: E731
    return {k: t(v) for k, v in rep.groups}, t(rep.total), rep.unpriced, [r.request_id for r in rep.top]


@pytest.fixture
def filled(store):
    for i in range(0, len(ROWS), 97):  # several batches: rollup rows are added to, not replaced
        store.insert(ROWS[i:i + 97])
    return store


def test_database_sums_equal_decimal_sums_for_every_grouping_and_range(filled):
    for since, until in RANGES:
        expected_rows = [r for r in sorted(ROWS, key=lambda r: r.ts) if (since is None or r.ts >= since) and (until is None or r.ts < until)]
        assert expected_rows, (since, until)
        for by in GROUPINGS:
            want = rp.build(expected_rows, by, top_n=5)
            got = rp.from_store(filled, by, since, until, top_n=5)
            assert _as_dict(got) == _as_dict(want), (by, since, until)
            assert [k for k, _ in got.groups] == [k for k, _ in want.groups]  # same order (cost desc, then key)
            assert rp.to_csv(got) == rp.to_csv(want)  # same text, digit for digit


def test_plan_uses_rollups_whenever_the_grouping_allows():
    d = datetime(2027, 1, 2, 12, tzinfo=UTC)
    assert ru.plan(["team", "day"], None, None).rollup == ru.DAILY
    assert ru.plan(["key_id", "month", "model"], None, None).rollup == ru.DAILY
    assert ru.plan(["tag:project", "week"], None, None).rollup == ru.DAILY_TAG
    assert ru.plan(["user"], None, None).rollup is None
    assert ru.plan(["tag:user"], None, None).rollup is None
    p = ru.plan(["team"], d, datetime(2027, 1, 5, tzinfo=UTC))
    assert (p.rollup, p.day0, p.day1, p.raw_ranges) == (ru.DAILY, date(2027, 1, 3), date(2027, 1, 5), ())
    assert (p.hourly, p.hour_ranges) == (ru.HOURLY, ((d, datetime(2027, 1, 3, tzinfo=UTC)),))
    # "--since 30d" at 14:27:10: whole days from the daily rollup, 9 whole hours of the first day from
    # the hourly one, and only the 32 min 50 s before 15:00 from raw rows
    now = datetime(2027, 2, 1, 14, 27, 10, tzinfo=UTC)
    p = ru.plan(["key_id"], now - timedelta(days=30), None)
    assert (p.rollup, p.day0, p.day1) == (ru.DAILY, date(2027, 1, 3), None)
    assert p.hour_ranges == ((datetime(2027, 1, 2, 15, tzinfo=UTC), datetime(2027, 1, 3, tzinfo=UTC)),)
    assert p.raw_ranges == ((now - timedelta(days=30), datetime(2027, 1, 2, 15, tzinfo=UTC)),)
    # inside one day: whole hours from the hourly rollup, partial hours from raw rows
    p = ru.plan(["tag:project"], datetime(2027, 1, 5, 2, 17, tzinfo=UTC), datetime(2027, 1, 5, 19, 44, tzinfo=UTC))
    assert (p.rollup, p.hourly, p.tagged) == (None, ru.HOURLY_TAG, True)
    assert p.hour_ranges == ((datetime(2027, 1, 5, 3, tzinfo=UTC), datetime(2027, 1, 5, 19, tzinfo=UTC)),)
    assert p.raw_ranges == ((datetime(2027, 1, 5, 2, 17, tzinfo=UTC), datetime(2027, 1, 5, 3, tzinfo=UTC)),
                            (datetime(2027, 1, 5, 19, tzinfo=UTC), datetime(2027, 1, 5, 19, 44, tzinfo=UTC)))
    assert ru.plan(["team"], datetime(2027, 1, 5, 2, 17, tzinfo=UTC), datetime(2027, 1, 5, 3, 16, tzinfo=UTC)).raw_only


def test_iso_weeks_and_months_across_the_year_end():
    assert [ru.time_key(x, "week") for x in ("2026-12-28", "2027-01-03", "2027-01-04")] == ["2026-W53", "2026-W53", "2027-W01"]
    assert ru.time_key("2027-01-03", "month") == "2027-01"


def _rollup_tables(store):
    out = {}
    for t in (ru.DAILY, ru.DAILY_TAG, ru.HOURLY, ru.HOURLY_TAG):
        rows = store._query(f"SELECT * FROM {t}")
        out[t] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def test_rollups_kept_by_the_writer_equal_a_rebuild_from_raw_rows(filled):
    kept = _rollup_tables(filled)
    assert len(kept[ru.DAILY]) > 50 and len(kept[ru.DAILY_TAG]) > 50 and len(kept[ru.HOURLY]) > len(kept[ru.DAILY])
    assert filled.rebuild_rollups() == len(ROWS)
    assert _rollup_tables(filled) == kept


def test_money_in_the_rollups_is_exact(filled):
    # the whole ledger's cost from the rollup table equals the Decimal sum of the generated rows
    want = sum((r.cost_usd for r in ROWS if r.cost_usd is not None), D(0))
    col = filled.dl.money("cost_usd")
    for table in (ru.DAILY, ru.HOURLY):
        (got,) = filled._query(f"SELECT SUM({col}) FROM {table}")[0]
        assert (ru.from_pico(got) if filled.kind == "sqlite" else got) == want
        if filled.kind == "sqlite":
            assert isinstance(got, int)


def test_rows_and_rollups_are_one_transaction(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    s.conn.execute(f"CREATE TRIGGER boom BEFORE INSERT ON {ru.DAILY} WHEN NEW.team = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END")
    good, bad = ROWS[0], LedgerRow(ts=ROWS[1].ts, request_id="bad", tags={"team": "boom"}, cost_usd=D("0.1"))
    with pytest.raises(sqlite3.IntegrityError):
        s.insert([good, bad])
    assert list(s.rows()) == [] and _rollup_tables(s)[ru.DAILY] == []
    s.insert([good])  # the store writes again after a rolled-back batch (its temporary tables made anew)
    assert [r.request_id for r in s.rows()] == [good.request_id] and len(_rollup_tables(s)[ru.HOURLY]) == 1


def test_rebuild_command_restores_rollups(filled, tmp_path):
    args = ["--sqlite-dir", str(filled.dir)] if isinstance(filled, SQLiteStore) else ["--dsn", filled._dsn]
    kept = _rollup_tables(filled)
    filled.conn.execute(f"DELETE FROM {ru.DAILY} WHERE team = 'ads'")
    filled.conn.execute(f"UPDATE {ru.DAILY_TAG} SET requests = 999")
    filled.conn.execute(f"DELETE FROM {ru.HOURLY} WHERE team = 'search'")
    r = CliRunner().invoke(app, ["ledger", "rebuild-rollups", *args])
    assert r.exit_code == 0, r.output
    assert f"from {len(ROWS)} raw rows" in r.output
    assert _rollup_tables(filled) == kept


def test_sqlite_money_twins_are_integer_pico_usd(tmp_path):
    s = open_store(sqlite_dir=tmp_path)
    s.insert([LedgerRow(ts=START, request_id="a", cost_usd=D("1.5E-8"), saved_usd=D("-5E-9"), baseline_usd=D("0.000000010"))])
    assert s._query("SELECT cost_pusd, saved_pusd, baseline_pusd, typeof(cost_pusd) FROM nadir_requests") == [(15000, -5000, 10000, "integer")]
    assert ru.to_pico(D("0.0000000000001")) == (0, False)  # finer than 1e-12: flagged inexact (TEXT keeps it)


def test_schema_is_version_4(store):
    assert store.schema_version() == LATEST == 4  # 3: shadow routing columns (issue 21); 4: hourly rollups
    assert store.migrate() == 4


def _hourly(store, hour: datetime) -> dict:
    """The hourly rollup rows of ``hour`` as {(team, key_id, model, status, reason): {measure: value}}."""
    cols = [c for c, _ in ru.measure_columns(store.kind)]
    got = {}
    for rec in store._query(f"SELECT team, key_id, model, status, unpriced_reason, {', '.join(cols)} FROM {ru.HOURLY} "
                            f"WHERE hour = {store.dl.ph}", [store._hour(hour)]):
        vals = {m.name: (ru.from_pico(v) if store.kind == "sqlite" else v) if m.kind == "money" else v
                for m, v in zip(ru.MEASURES, rec[5:])}
        got[tuple(rec[:5])] = vals
    return got


def test_writer_batch_sums_by_hand(store):
    """The writer computes each batch's hourly sums from the rows it writes (rollup.batch_sums);
    values worked out by hand, every measure, then the same tables as a rebuild from raw rows."""
    h = datetime(2026, 12, 31, 23, tzinfo=UTC)  # the batch spans two hours, two days, two ISO weeks' days
    # > 28 significant digits on PostgreSQL (Decimal's default context would round the sum); SQLite: < 2^63 pico-USD
    big, big_cost, big_shadow = ((D("1234567.000000000001"), D("1234567.000001000001"), D("1234567.000000400001"))
                                 if store.kind == "sqlite" else (D("123456789012345678.000000000001"),
                                                                 D("123456789012345678.000001000001"), D("123456789012345678.000000400001")))
    rows = [
        LedgerRow(ts=h + timedelta(minutes=1), request_id="a", provider="openai", served_model="m1", uncached_input_tokens=100,
                  cache_read_tokens=20, cache_write_tokens=3, cache_write_1h_tokens=4, output_tokens=50, reasoning_tokens=7,
                  cost_usd=D("0.000001"), baseline_usd=D("0.000003"), saved_usd=D("0.000002"), key_id="k1",
                  shadow_model="small", shadow_cost_usd=D("0.0000004"), opportunity_usd=D("0.0000006"),
                  tags={"team": "t1", "user": "u", "project": "p1"}),
        LedgerRow(ts=h + timedelta(minutes=59, seconds=59, microseconds=999999), request_id="b", provider="openai",
                  served_model="m1", output_tokens=5, cost_usd=big, saved_usd=D("-0.000000000001"), key_id="k1",
                  shadow_model="small", shadow_cost_usd=big, opportunity_usd=D("0"),
                  tags={"team": "t1", "project": "p1", "empty": ""}),
        LedgerRow(ts=h + timedelta(minutes=30), request_id="c", provider="openai", served_model="m1", status="provider_error",
                  unpriced_reason="provider_error", key_id="k1", tags={"team": "t1", "project": "p2"}),
        LedgerRow(ts=h + timedelta(hours=1), request_id="d", provider="openai", served_model="m1", cost_usd=D("0.5"),
                  opportunity_usd=D("-0.1"), key_id="k1", tags={"team": "t1"}),
    ]
    store.insert(rows[:2])
    store.insert(rows[2:])  # a second batch adds to the rows the first created
    got = _hourly(store, h)
    assert set(got) == {("t1", "k1", "m1", "ok", ""), ("t1", "k1", "m1", "provider_error", "provider_error")}
    ok = got[("t1", "k1", "m1", "ok", "")]
    assert ok == {
        "requests": 2, "unpriced": 0, "cost_usd": big_cost, "baseline_usd": D("0.000003"),
        "saved_usd": D("0.000001999999"), "input_tokens": 127, "output_tokens": 55, "cache_read_tokens": 20,
        "cache_write_tokens": 7, "reasoning_tokens": 7, "shadow_requests": 2, "downgradable_requests": 1,
        "downgradable_cost_usd": D("0.000001"), "shadow_cost_usd": big_shadow, "opportunity_usd": D("0.0000006"),
    }
    err = got[("t1", "k1", "m1", "provider_error", "provider_error")]
    assert (err["requests"], err["unpriced"], err["cost_usd"], err["input_tokens"]) == (1, 1, 0, 0)
    nxt = _hourly(store, h + timedelta(hours=1))[("t1", "k1", "m1", "ok", "")]
    assert (nxt["requests"], nxt["cost_usd"], nxt["downgradable_requests"], nxt["opportunity_usd"]) == (1, D("0.5"), 0, D("-0.1"))
    # tags other than the built-in five, non-empty values only, per hour and per day
    tag = {(t, v): (n, c) for t, v, n, c in store._query(
        f"SELECT tag, value, requests, {store.dl.money('cost_usd')} FROM {ru.HOURLY_TAG} WHERE hour = {store.dl.ph}", [store._hour(h)])}
    money = ru.from_pico if store.kind == "sqlite" else (lambda v: v)
    assert {k: (n, money(c)) for k, (n, c) in tag.items()} == {("project", "p1"): (2, big_cost), ("project", "p2"): (1, 0)}
    days = {str(d)[:10]: n for d, n in store._query(f"SELECT day, SUM(requests) FROM {ru.DAILY} GROUP BY day")}
    assert days == {"2026-12-31": 3, "2027-01-01": 1}
    kept = _rollup_tables(store)
    assert store.rebuild_rollups() == 4
    assert _rollup_tables(store) == kept


def test_writer_batch_sums_round_like_the_integer_column_on_sqlite(tmp_path):
    """SQLite sums the pico-USD twins: an amount finer than 1e-12 USD is rounded in the rollups
    exactly as in the raw row's integer column (so a rebuild gives the same tables)."""
    s = open_store(sqlite_dir=tmp_path)
    s.insert([LedgerRow(ts=START, request_id="a", cost_usd=D("0.0000000000016"), opportunity_usd=D("0.0000000000004")),
              LedgerRow(ts=START, request_id="b", cost_usd=D("0.0000000000025"))])
    (cost, n_down), = s._query(f"SELECT cost_pusd, downgradable_requests FROM {ru.HOURLY}")
    assert (cost, n_down) == (2 + 2, 0)  # 1.6 -> 2, 2.5 -> 2 (half-even); opportunity 0.4 -> 0: not downgradable
    kept = _rollup_tables(s)
    s.rebuild_rollups()
    assert _rollup_tables(s) == kept
