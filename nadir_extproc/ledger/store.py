"""Ledger stores: SQLite (embedded default, WAL, ``synchronous=NORMAL``: a committed batch
survives a crash of the process, the last ones may roll back on power loss; docs/ledger.md) and
PostgreSQL (fleets of sidecars), same schema.

Both apply the versioned migrations on ``migrate()`` (idempotent; the applied versions are
recorded in ``nadir_schema_version``; PostgreSQL serialises concurrent sidecars with an advisory
lock). A store is used by one thread at a time.

Versions: 1 = the raw table ``nadir_requests`` (``schema.MIGRATIONS``); 2 = exact integer money
twins on SQLite (``cost_pusd`` … in pico-USD), an index for the most expensive requests, the daily
rollups (``nadir_extproc.ledger.rollup``, built from the rows already there) and, on PostgreSQL,
``nadir_requests`` partitioned by month (``nadir_requests_y2026m03`` …; a version-1 table becomes
the partition ``nadir_requests_legacy`` covering everything before the month after its newest row,
attached without copying); 3 = shadow routing (issue 21): ``shadow_tier``, ``shadow_model``,
``shadow_score``, ``shadow_cost_usd``, ``opportunity_usd`` on the raw table (SQLite: their
``_pusd`` twins) and the shadow measures on both rollups (``rollup.MEASURES``), added in place
(old rows: NULL, i.e. not scored); 4 = hourly rollups (``rollup.HOURLY``), the raw table's unread
``(key_id, ts)`` / ``(tag_team, ts)`` indexes dropped and, on SQLite, the cost index replaced by
``(hour, cost DESC, ts)`` (``HOUR_COST``; see docs/ledger.md "Writer throughput"). Every migration
that runs ends by rebuilding the rollups from the raw rows. A ledger written by version 1, 2 or 3
is migrated in place on open.

``insert`` writes the raw rows and adds them to the rollups in one transaction. ``prune`` applies
retention: raw rows older than a cut-off (PostgreSQL: whole monthly partitions, dropped once
every row in them is past it), rollup days older than another.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from nadir_extproc.ledger import rollup as ru
from nadir_extproc.ledger.schema import (
    COLUMNS, MONEY, MONEY_V2, ROW_FIELDS, TABLE, TAG_COLUMNS, TYPES, V3_COLUMNS, VERSION_TABLE, LedgerRow, from_db, statements,
)
from nadir_extproc.pricing.money import format_usd
from nadir_extproc.stats import count

SQLITE_FILE = "ledger.sqlite3"
#: Key of the PostgreSQL advisory lock taken while migrating or adding a partition.
_PG_LOCK = 0x6E61646972  # "nadir"
#: Schema version this code writes (1: raw table; 2: money twins, rollups, partitions; 3: shadow
#: routing columns in the raw table and the rollups; 4: hourly rollups).
LATEST = 4
#: SQLite's integer money columns (pico-USD), beside the exact TEXT ones.
PICO_COLUMNS = [ru.pico_name(m) for m in MONEY]
LEGACY = f"{TABLE}_legacy"


class Store(Protocol):
    """What the writer and the report need from a store."""

    kind: str

    def migrate(self) -> int:
        """Apply missing migrations; returns the schema version now in force."""

    def schema_version(self) -> int:
        """Highest applied migration (0 for an empty database)."""

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        """Write ``rows`` and their rollups in one transaction (all or none)."""

    def rows(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRow]:
        """Rows with ``since <= ts < until`` (either bound optional), oldest first."""

    def close(self) -> None:
        """Release the connection."""


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


_FIELDS = operator.attrgetter(*ROW_FIELDS)
_TS = ROW_FIELDS.index("ts")
_MONEY_AT = [ROW_FIELDS.index(m) for m in MONEY]
_MONEY_OF = operator.attrgetter(*MONEY)
#: SQLite: where a row's pico-USD twins sit in the values it writes (after ``COLUMNS``).
_PICO_AT = [len(COLUMNS) + i for i in range(len(MONEY))]


def _pg_hour(h: int) -> datetime:
    """The start of UTC hour number ``h`` (hours since the epoch) as PostgreSQL's hourly rollups key it."""
    return datetime.fromtimestamp(h * 3600, _UTC)


_TAGS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode  # = json.dumps(…, ensure_ascii=False, sort_keys=True)
_UTC = timezone.utc


def _row_values(r: LedgerRow, text: bool) -> list[Any]:
    """``schema.to_db`` for the write path, faster (one attrgetter): same values, same order."""
    v = list(_FIELDS(r))
    ts = v[_TS]
    if ts.tzinfo is not _UTC:
        ts = ts.astimezone(_UTC)
    # isoformat is about twice as fast as strftime; same text: 2026-03-02T10:00:00.000000Z
    v[_TS] = ts.isoformat(timespec="microseconds")[:26] + "Z" if text else ts
    if text:
        for i in _MONEY_AT:
            if v[i] is not None:
                v[i] = format_usd(v[i])
    t = r.tags
    v += [t.get("user"), t.get("feature"), t.get("team"), t.get("env"), t.get("session"), _TAGS_JSON(t)]
    return v


assert TAG_COLUMNS == ("user", "feature", "team", "env", "session")  # the order _row_values writes them


def _month(d: date) -> date:
    return date(d.year, d.month, 1)


def _next_month(m: date) -> date:
    return date(m.year + m.month // 12, m.month % 12 + 1, 1)


class _SQLStore:
    """What both stores share: rollup maintenance, aggregation, top-N, retention."""

    kind: str
    dl: ru.Dialect
    conn: Any

    # --- schema versions
    def _upgrade(self, record: Callable[[int], Any]) -> None:
        """Inside the caller's migration transaction (version table present): apply every schema
        version after the one recorded (``_v1`` … ``_v{LATEST}``), ``record(v)`` each, then rebuild
        the rollups from the raw rows when an older ledger was upgraded."""
        have = self.conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]
        for v in range(have + 1, LATEST + 1):
            getattr(self, f"_v{v}")()
            record(v)
        if 0 < have < LATEST:
            self._rebuild(None, None)  # rollups (with every measure of this version) from the raw rows

    def _v1(self) -> None:
        for stmt in statements(self.kind, 1):
            self.conn.execute(stmt)

    # --- per store
    def _tx(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _ts(self, t: datetime) -> Any:
        raise NotImplementedError

    def _day(self, d: date) -> Any:
        raise NotImplementedError

    def _hour(self, t: datetime) -> Any:
        raise NotImplementedError

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return list(self.conn.execute(sql, list(args)).fetchall())

    def _insert_raw(self, rows: Sequence[LedgerRow]) -> None:
        raise NotImplementedError

    # --- shared
    def insert(self, rows: Sequence[LedgerRow]) -> None:
        """Write ``rows`` and add them to the hourly and daily rollups, in one transaction (all or
        none). The batch's hourly sums are computed from the rows in hand (``rollup.batch_sums``:
        exact, the same semantics as a rebuild from raw rows) and added to the rollups by the
        database (``rollup.upsert_sql``), so each row is written once and never read back."""
        if not rows:
            return
        with self._tx():
            self._insert_raw(rows)

    def _range_where(self, since: datetime | None, until: datetime | None, col: str = "ts") -> tuple[str, list[Any]]:
        """``col`` in ``[since, until)`` (either end optional) as SQL and its arguments; ``col="hour"``:
        an hourly rollup's hour column (bounds are whole hours there)."""
        conv = self._hour if col == "hour" else self._ts
        return self._half_open(col, conv(since) if since is not None else None, conv(until) if until is not None else None)

    def _day_where(self, day0: date | None, day1: date | None) -> tuple[str, list[Any]]:
        """``day >= day0 AND day < day1`` (either end optional) on a rollup table."""
        return self._half_open("day", self._day(day0) if day0 is not None else None, self._day(day1) if day1 is not None else None)

    def _half_open(self, col: str, lo: Any, hi: Any) -> tuple[str, list[Any]]:
        """``[lo, hi)`` on ``col`` (``None`` = unbounded); ``1=1`` when both are ``None``."""
        bounds = [(op, v) for op, v in ((">=", lo), ("<", hi)) if v is not None]
        return (" AND ".join(f"{col} {op} {self.dl.ph}" for op, _ in bounds) or "1=1"), [v for _, v in bounds]

    def rebuild_rollups(self, since: date | None = None, until: date | None = None) -> int:
        """Recompute both rollups for the UTC days ``[since, until)`` (default: every day that still
        has raw rows, so days whose raw rows retention removed keep their rollups) from the raw
        rows, in one transaction. Returns the number of raw rows read."""
        with self._tx():
            return self._rebuild(since, until)

    def _rebuild(self, since: date | None, until: date | None) -> int:
        everything = since is None and until is None
        if since is None:
            first = self._query(f"SELECT MIN(ts) FROM {TABLE}")[0][0]
            if first is None:
                return 0
            from nadir_extproc.ledger.schema import parse_ts

            since = ru.day_of(parse_ts(first))
        dwhere, dargs = self._day_where(since, until)
        for t in (ru.DAILY, ru.DAILY_TAG):
            self.conn.execute(f"DELETE FROM {t} WHERE {dwhere}", dargs)
        t0, t1 = ru.midnight(since), ru.midnight(until) if until else None
        hourly = self.schema_version() >= 4
        hwhere, hargs = self._range_where(t0, t1, col="hour")
        if hourly:
            for t in (ru.HOURLY, ru.HOURLY_TAG):
                self.conn.execute(f"DELETE FROM {t} WHERE {hwhere}", hargs)
        rwhere, rargs = self._range_where(t0, t1)
        n = self._query(f"SELECT COUNT(*) FROM {TABLE} WHERE {rwhere}", rargs)[0][0]
        src = TABLE
        if self.kind == "sqlite":  # a plain scan for everything, else the time index (never the hour-cost one)
            src = f"{TABLE} NOT INDEXED" if everything else f"{TABLE} INDEXED BY {TABLE}_ts"
        for sql in ru.rebuild_sql(self.kind, rwhere, hwhere if hourly else None, src):
            self.conn.execute(sql, hargs if hourly and sql.startswith(f"INSERT INTO {ru.DAILY}") else rargs)
        return int(n)

    def aggregate(self, by: Sequence[str], since: datetime | None = None, until: datetime | None = None,
                  extra_dims: Sequence[str] = (), measures: Sequence[str] | None = None) -> list[tuple[tuple, list]]:
        """Sums of ``rollup.MEASURES`` grouped by report groups ``by`` over ``[since, until)``,
        computed in the database: from the rollups for whole UTC days when the grouping allows,
        from raw rows otherwise and for partial edge days. Returns ``[(key, sums)]``: ``key`` has
        the values of ``by`` in order, every time group sharing one UTC day (``date``; see
        ``rollup.key_positions``), then ``extra_dims``; missing values are ``None``; sums in
        ``rollup.MEASURES`` order, money ``Decimal`` USD, counts ints; with ``measures`` (names) only
        those are summed, the others are 0.
        Raises ``ValueError`` for an unknown group."""
        p = ru.plan(by, since, until)
        tpos = ru.time_position(by)
        out: dict[tuple, list] = {}
        tag = next((b[4:] for b in by if b.startswith("tag:")), None)
        # (table, where, args): whole days, whole hours, then raw rows
        parts: list[tuple[str | None, str, list[Any]]] = []
        if p.rollup:
            parts.append((p.rollup, *self._day_where(p.day0, p.day1)))
        for h0, h1 in p.hour_ranges:
            parts.append((p.hourly, *self._range_where(h0, h1, col="hour")))
        for s, u in p.raw_ranges:
            parts.append((None, *self._range_where(s, u)))
        for table, where, wargs in parts:
            if table in ru.MAIN_OF:
                got = self._group_sums(by, table, f"tag = {self.dl.ph} AND {where}", [tag, *wargs], extra_dims, tpos, measures)
                # rows without the tag: the untagged table's totals minus the tagged sums
                tby = [by[tpos]] if tpos is not None else []
                tagged: dict[tuple, list] = {}
                for key, sums in got.items():
                    ru.add_sums(tagged, (key[tpos],) if tpos is not None else (), sums)
                for tkey, tsums in self._group_sums(tby, ru.MAIN_OF[table], where, wargs, (), 0 if tby else None, measures).items():
                    rest = [a - b for a, b in zip(tsums, tagged.get(tkey, [0] * len(tsums)))]
                    if rest[0]:  # requests
                        key = tuple(tkey[0] if (tpos is not None and i == tpos) else None for i in range(len(ru.key_positions(by)[1])))
                        ru.add_sums(got, key, rest)
            else:
                got = self._group_sums(by, table, where, wargs, extra_dims, tpos, measures)
            for key, sums in got.items():
                ru.add_sums(out, key, sums)
        return list(out.items())

    def _group_sums(self, by: Sequence[str], table: str | None, where: str, wargs: list[Any], extra_dims: Sequence[str],
                    tpos: int | None, measures: Sequence[str] | None = None) -> dict[tuple, list]:
        sql, gargs, nkeys = ru.aggregate_sql(self.dl, by, table, extra_dims, measures)
        if self.kind == "sqlite" and table and where == "1=1":
            # every rollup row: a plain scan, not the unique key's index plus a table lookup per
            # row (SQLite picks the index for its order; ~25 % less CPU over 70 K daily rows)
            sql = sql.replace(f" FROM {table} WHERE ", f" FROM {table} NOT INDEXED WHERE ")
        got: dict[tuple, list] = {}
        for rec in self._query(sql.format(where=where), [*gargs, *wargs]):
            key = tuple(self._norm_key(v, i == tpos) for i, v in enumerate(rec[:nkeys]))
            ru.add_sums(got, key, self._sums(rec[nkeys:], table))
        return got

    @staticmethod
    def _norm_key(v: Any, is_day: bool) -> Any:
        if v is None or v == "":
            return None
        if is_day:
            if isinstance(v, datetime):
                return v.date()
            return v if isinstance(v, date) else date.fromisoformat(v)
        return v

    def _sums(self, vals: Sequence[Any], table: str | None) -> list:
        out = []
        for m, v in zip(ru.MEASURES, vals):
            if m.kind == "money":
                out.append(ru.from_pico(v) if self.kind == "sqlite" else Decimal(v or 0))
            else:
                out.append(int(v or 0))
        return out

    def top(self, n: int, since: datetime | None = None, until: datetime | None = None,
            rows_in_range: int | None = None) -> list[LedgerRow]:
        """The ``n`` most expensive priced requests in ``[since, until)`` (ties: oldest first).
        ``rows_in_range`` (requests in the range, known from the rollups) lets SQLite walk the
        cost index when the range holds a good share of the ledger instead of sorting the range."""
        if n <= 0:
            return []
        if self.kind == "sqlite" and self._hour_cost_index():
            return self._top_by_hour(n, since, until)
        w, a = self._range_where(since, until)
        col = self.dl.money("cost_usd")
        hint = ""
        if self.kind == "sqlite" and (since is not None or until is not None) and rows_in_range:
            everything = self._query(f"SELECT SUM(requests) FROM {ru.DAILY}")[0][0] or 0
            # Walking the cost index reads ~ n * everything / rows_in_range rows; the time index
            # reads rows_in_range rows then sorts them.
            if n * everything < rows_in_range * rows_in_range // 4:
                hint = f" INDEXED BY {TABLE}_cost"
        sql = (f"SELECT {', '.join(COLUMNS)} FROM {TABLE}{hint} WHERE {col} IS NOT NULL AND {w} "
               f"ORDER BY {col} DESC, ts LIMIT {int(n)}")
        return [from_db(v) for v in self._query(sql, a)]

    def hourly_spend(self, dim: str, since: datetime) -> list[tuple[datetime, str, Decimal]]:
        """``(hour start, value, cost USD)`` per UTC hour ``>= since`` (a whole hour) and value of
        rollup dimension ``dim`` (``team``, ``key_id``, …; rows without one left out), from the
        hourly rollup (budgets seed from it). Raises ``KeyError`` for another ``dim``."""
        if dim not in ru.DIMS:
            raise KeyError(dim)
        col = dim  # the rollup's column is named after the dimension
        w, a = self._range_where(since, None, col="hour")
        out = []
        for hour, value, usd in self._query(
                f"SELECT hour, {col}, SUM({self.dl.money('cost_usd')}) FROM {ru.HOURLY} WHERE {w} AND {col} <> '' GROUP BY 1, 2", a):
            t = hour if isinstance(hour, datetime) else datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)
            out.append((t.astimezone(timezone.utc), value, ru.from_pico(usd) if self.kind == "sqlite" else Decimal(usd or 0)))
        return out

    def meta(self, key: str) -> str | None:
        """A value of ``nadir_ledger_meta`` (e.g. ``raw_pruned_before``), or ``None``."""
        r = self._query(f"SELECT value FROM {ru.META} WHERE key = {self.dl.ph}", [key])
        return r[0][0] if r else None

    def _set_meta(self, key: str, value: str) -> None:
        ph = self.dl.ph
        self.conn.execute(f"INSERT INTO {ru.META} (key, value) VALUES ({ph}, {ph}) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                          [key, value])

    def _prune_rollups(self, rollup_before: date | None) -> int:
        n = 0
        if rollup_before is not None:
            for t in (ru.DAILY, ru.DAILY_TAG, ru.HOURLY, ru.HOURLY_TAG):
                col, v = (ru.TIME_COL[t], self._day(rollup_before) if t in (ru.DAILY, ru.DAILY_TAG)
                          else self._hour(ru.midnight(rollup_before)))
                cur = self.conn.execute(f"DELETE FROM {t} WHERE {col} < {self.dl.ph}", [v])
                n += max(cur.rowcount, 0)
        return n


#: Schema v4 dropped the raw table's (key_id, ts) and (tag_team, ts) indexes: every report reads
#: raw rows by time only (whole days and hours come from the rollups; a grouping by key or team
#: never scans raw rows by key), and the two cost the writer about a fifth of its time per row.
#: SQLite, schema v4: the index ``top`` reads (replaces v2's ``nadir_requests_cost``).
HOUR_COST = f"{TABLE}_hour_cost"
_SQLITE_UPSERT = ru.upsert_sql("sqlite")
_SQLITE_INSERT = (f"INSERT INTO {TABLE} ({', '.join([*COLUMNS, *PICO_COLUMNS])}) "
                  f"VALUES ({', '.join('?' * (len(COLUMNS) + len(PICO_COLUMNS)))})")
_MCOLS = [c for c, _ in ru.measure_columns("sqlite")]
_SQLITE_BATCH_H = (f"INSERT INTO {ru.BATCH_H} (hour, {', '.join(ru.DIMS)}, {', '.join(_MCOLS)}) "
                   f"VALUES ({', '.join('?' * (1 + len(ru.DIMS) + len(_MCOLS)))})")
_SQLITE_BATCH_HT = (f"INSERT INTO {ru.BATCH_HT} (hour, tag, value, {', '.join(_MCOLS)}) "
                    f"VALUES ({', '.join('?' * (3 + len(_MCOLS)))})")
_PG_COPY = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
_PG_MCOLS = ", ".join(c for c, _ in ru.measure_columns("postgres"))
_PG_COPY_H = f"COPY {ru.BATCH_H} (hour, {', '.join(ru.DIMS)}, {_PG_MCOLS}) FROM STDIN"
_PG_COPY_HT = f"COPY {ru.BATCH_HT} (hour, tag, value, {_PG_MCOLS}) FROM STDIN"
_PG_UPSERT = ru.upsert_sql("postgres")
assert MONEY == ("cost_usd", "baseline_usd", "saved_usd", "shadow_cost_usd", "opportunity_usd")  # rollup.batch_sums' order


class SQLiteStore(_SQLStore):
    """The ledger in ``<directory>/ledger.sqlite3`` (WAL journal, 5 s busy timeout so several
    processes can share the file). Money is stored as plain decimal TEXT plus its exact integer
    pico-USD twin (summed by reports), times as UTC ISO TEXT. ``create=False``: raise
    ``FileNotFoundError`` instead of creating a missing ledger (and its folder)."""

    kind = "sqlite"
    dl = ru.SQLITE

    def __init__(self, directory: str | Path, create: bool = True) -> None:
        self.dir = Path(directory).expanduser()
        self.path = self.dir / SQLITE_FILE
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no ledger at {self.path}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._batch_tables = False  # the writer's temporary tables (created at the first insert)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _hour_cost_index(self) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", [HOUR_COST]))

    def _top_by_hour(self, n: int, since: datetime | None, until: datetime | None) -> list[LedgerRow]:
        """``top`` on SQLite from schema v4: the index ``(UTC hour, cost DESC, ts)`` gives each
        hour's ``n`` most expensive requests, in order, by reading ``n`` index entries; the range's
        top ``n`` is among those (same order: cost desc, then oldest). Rows land in the current
        hour's part of that index, so the writer's inserts touch few pages (a plain cost index
        took a random page per row: about half of a row's insert cost)."""
        w, a = self._range_where(since, until)
        # two queries: SQLite answers a lone min() or max() from the index end, both together by a scan
        lo = self._query(f"SELECT min(ts) FROM {TABLE} WHERE {w}", a)[0][0]
        hi = self._query(f"SELECT max(ts) FROM {TABLE} WHERE {w}", a)[0][0]
        if lo is None:
            return []
        from nadir_extproc.ledger.schema import parse_ts

        h, last = ru.floor_hour(parse_ts(lo)), ru.floor_hour(parse_ts(hi))
        base = (f"SELECT rowid, cost_pusd, ts FROM {TABLE} INDEXED BY {HOUR_COST} WHERE substr(ts, 1, 13) = ? "
                f"AND cost_pusd IS NOT NULL")
        order = f" ORDER BY cost_pusd DESC, ts LIMIT {int(n)}"
        whole, part = base + order, base + f" AND {w}" + order
        best: list[tuple[int, str, int]] = []  # (-cost, ts, rowid)
        one = timedelta(hours=1)
        c = self.conn
        while h <= last:
            edge = (since is not None and h < since) or (until is not None and h + one > until)
            cur = c.execute(part, [self._hour(h), *a]) if edge else c.execute(whole, [self._hour(h)])
            best.extend((-cost, ts, rid) for rid, cost, ts in cur.fetchall())
            if len(best) > 4 * n:
                best = heapq.nsmallest(n, best)
            h += one
        best = heapq.nsmallest(n, best)
        if not best:
            return []
        got = {v[0]: v[1:] for v in c.execute(
            f"SELECT rowid, {', '.join(COLUMNS)} FROM {TABLE} WHERE rowid IN ({', '.join('?' * len(best))})", [b[2] for b in best])}
        return [from_db(got[b[2]]) for b in best]

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _ts(self, t: datetime) -> str:
        return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _day(self, d: date) -> str:
        return d.isoformat()

    def _hour(self, t: datetime) -> str:
        return _utc(t).strftime("%Y-%m-%dT%H")

    def schema_version(self) -> int:
        has = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (VERSION_TABLE,)).fetchone()
        if not has:
            return 0
        return self.conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]

    def migrate(self) -> int:
        c = self.conn
        with self._tx():  # BEGIN IMMEDIATE: one migrating process at a time
            c.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            self._upgrade(lambda v: c.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?, ?)",
                                              (v, datetime.now(timezone.utc).isoformat())))
        return LATEST

    def _v4(self) -> None:
        c = self.conn
        for stmt in ru.ddl_hourly(self.kind):
            c.execute(stmt)
        for old in ("cost", "key_ts", "team_ts"):  # no query reads them now (see HOUR_COST's note)
            c.execute(f"DROP INDEX IF EXISTS {TABLE}_{old}")
        c.execute(f"CREATE INDEX {HOUR_COST} ON {TABLE} (substr(ts, 1, 13), {ru.pico_name('cost_usd')} DESC, ts)")

    def _v2(self) -> None:
        c = self.conn
        for col in (ru.pico_name(m) for m in MONEY_V2):
            c.execute(f"ALTER TABLE {TABLE} ADD COLUMN {col} INTEGER")
        c.create_function("nadir_pusd", 1, lambda s: None if s is None else ru.to_pico(Decimal(s))[0], deterministic=True)
        c.execute(f"UPDATE {TABLE} SET " + ", ".join(f"{ru.pico_name(m)} = nadir_pusd({m})" for m in MONEY_V2)
                  + " WHERE " + " OR ".join(f"{m} IS NOT NULL" for m in MONEY_V2))
        c.execute(f"CREATE INDEX {TABLE}_cost ON {TABLE} ({ru.pico_name('cost_usd')})")
        for stmt in ru.ddl(self.kind):
            c.execute(stmt)
        c.execute(f"CREATE TABLE {ru.META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()}

    def _v3(self) -> None:
        """Shadow routing columns (raw: text + integer pico twins; rollups: the new measures),
        each added only when missing (a v1 ledger's v2 step already built rollups with them)."""
        c = self.conn
        have = self._columns(TABLE)
        types = TYPES[self.kind]
        for col, t in V3_COLUMNS:
            if col not in have:
                c.execute(f"ALTER TABLE {TABLE} ADD COLUMN {col} {types[t]}")
            if t == "money" and ru.pico_name(col) not in have:
                c.execute(f"ALTER TABLE {TABLE} ADD COLUMN {ru.pico_name(col)} INTEGER")
        for table in (ru.DAILY, ru.DAILY_TAG):
            have = self._columns(table)
            for col, t in ru.measure_columns(self.kind):
                if col not in have:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {col} {t} NOT NULL DEFAULT 0")

    def _insert_raw(self, rows: Sequence[LedgerRow]) -> None:
        params = []
        inexact = 0
        pico = ru.to_pico
        for r in rows:
            v = _row_values(r, True)
            m = []
            for x in _MONEY_OF(r):
                if x is not None:
                    x, ok = pico(x)
                    inexact += not ok
                m.append(x)
            v += m
            params.append(v)
        if inexact:
            count("ledger_money_inexact", "amount finer than 1e-12 USD rounded in the integer column")
        c = self.conn
        if not self._batch_tables:
            for stmt in ru.batch_tables_sql(self.kind):
                c.execute(stmt)
            self._batch_tables = True
        c.executemany(_SQLITE_INSERT, params)
        main, tagged = ru.batch_sums(params, [v[_TS][:13] for v in params], [r.tags for r in rows], _PICO_AT)
        c.executemany(_SQLITE_BATCH_H, main)
        if tagged:
            c.executemany(_SQLITE_BATCH_HT, tagged)
        for stmt in _SQLITE_UPSERT:
            c.execute(stmt)

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        try:
            super().insert(rows)
        except BaseException:
            self._batch_tables = False  # a rolled-back CREATE TEMP TABLE: create it again
            raise

    def rows(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRow]:
        w, args = self._range_where(since, until)
        cur = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {w} ORDER BY ts", args)
        while batch := cur.fetchmany(1000):
            for values in batch:
                yield from_db(values)

    def prune(self, raw_before: datetime | None, rollup_before: date | None = None) -> dict[str, int]:
        """Delete raw rows with ``ts < raw_before`` and rollup days ``< rollup_before``.
        Returns ``{"raw_rows": n, "rollup_rows": n}``."""
        with self._tx():
            raw = 0
            if raw_before is not None:
                raw = max(self.conn.execute(f"DELETE FROM {TABLE} WHERE ts < ?", [self._ts(raw_before)]).rowcount, 0)
                prev = self.meta("raw_pruned_before")
                if prev is None or prev < self._ts(raw_before):
                    self._set_meta("raw_pruned_before", self._ts(raw_before))
            return {"raw_rows": raw, "rollup_rows": self._prune_rollups(rollup_before)}

    def close(self) -> None:
        self.conn.close()


class PostgresStore(_SQLStore):
    """The ledger in PostgreSQL (``dsn`` as libpq takes it: ``postgresql://user@host:port/db``).
    Money is ``NUMERIC``, times ``TIMESTAMPTZ``; the raw table is partitioned by month (a partition
    is created when the first row of its month arrives). Needs ``psycopg`` (the ``postgres``
    extra); raises ``RuntimeError`` without it, ``psycopg.OperationalError`` when the server is
    unreachable."""

    kind = "postgres"
    dl = ru.POSTGRES

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg  # only needed for PostgreSQL
        except ImportError as e:
            raise RuntimeError("ledger.postgres_dsn needs psycopg: pip install 'nadir-extproc[postgres]'") from e

        self._psycopg = psycopg
        self._dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        self._months: set[date] = set()
        self._legacy_until: date | None = None
        self._batch_of: Any = None

    def __repr__(self) -> str:  # never show the DSN (it may hold a password)
        info = self.conn.info
        return f"PostgresStore(host={info.host!r}, port={info.port}, dbname={info.dbname!r})"

    def _tx(self) -> contextlib.AbstractContextManager[Any]:
        return self.conn.transaction()

    def _ts(self, t: datetime) -> datetime:
        return _utc(t)

    def _day(self, d: date) -> date:
        return d

    def _hour(self, t: datetime) -> datetime:
        return _utc(t)

    def schema_version(self) -> int:
        cur = self.conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,))
        if cur.fetchone()[0] is None:
            return 0
        return self.conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]

    def migrate(self) -> int:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            self._upgrade(lambda v: self.conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (v,)))
        self._load_partitions()
        return LATEST

    def _v4(self) -> None:
        for stmt in ru.ddl_hourly(self.kind):
            self.conn.execute(stmt)
        for old in ("key_ts_p", "team_ts_p"):  # no query reads them now (see HOUR_COST's note)
            self.conn.execute(f"DROP INDEX IF EXISTS {TABLE}_{old}")

    def _v2(self) -> None:
        c = self.conn
        c.execute(f"CREATE TABLE {ru.META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        newest = c.execute(f"SELECT max(ts) FROM {TABLE}").fetchone()[0]
        c.execute(f"ALTER TABLE {TABLE} RENAME TO {LEGACY}")
        for old in ("ts", "key_ts", "team_ts"):
            c.execute(f"ALTER INDEX IF EXISTS {TABLE}_{old} RENAME TO {LEGACY}_{old}")
        c.execute(statements(self.kind, 1)[0] + " PARTITION BY RANGE (ts)")
        if newest is None:
            c.execute(f"DROP TABLE {LEGACY}")
        else:  # keep the version-1 rows where they are: one partition up to the month after the newest
            until = _next_month(_month(ru.day_of(newest)))
            c.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {LEGACY} FOR VALUES FROM (MINVALUE) TO ('{until.isoformat()} 00:00:00+00')")
            self._set_meta("legacy_until", until.isoformat())
        # Partitioned indexes; an equivalent index already on the legacy partition is attached, not rebuilt.
        c.execute(f"CREATE INDEX {TABLE}_ts_p ON {TABLE} (ts)")
        c.execute(f"CREATE INDEX {TABLE}_key_ts_p ON {TABLE} (key_id, ts)")
        c.execute(f"CREATE INDEX {TABLE}_team_ts_p ON {TABLE} (tag_team, ts)")
        c.execute(f"CREATE INDEX {TABLE}_cost_p ON {TABLE} (cost_usd)")
        for stmt in ru.ddl(self.kind):
            c.execute(stmt)

    def _v3(self) -> None:
        """Shadow routing columns on the (partitioned) raw table and the new measures on both
        rollups, each only when missing (``ADD COLUMN IF NOT EXISTS``; partitions inherit)."""
        c = self.conn
        types = TYPES[self.kind]
        for col, t in V3_COLUMNS:
            c.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {col} {types[t]}")
        for table in (ru.DAILY, ru.DAILY_TAG):
            for col, t in ru.measure_columns(self.kind):
                c.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {t} NOT NULL DEFAULT 0")

    def _load_partitions(self) -> None:
        v = self.meta("legacy_until")
        self._legacy_until = date.fromisoformat(v) if v else None
        self._months = set()
        for (name,) in self._query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass", [TABLE]
        ):
            m = self._part_month(name)
            if m:
                self._months.add(m)

    @staticmethod
    def _part_month(name: str) -> date | None:
        tail = name[len(TABLE) + 1:]
        if len(tail) == 8 and tail[0] == "y" and tail[5] == "m" and tail[1:5].isdigit() and tail[6:].isdigit():
            return date(int(tail[1:5]), int(tail[6:]), 1)
        return None

    def partition_name(self, month: date) -> str:
        return f"{TABLE}_y{month.year:04d}m{month.month:02d}"

    def _ensure_partitions(self, months: set[date]) -> None:
        need = sorted(m for m in months if m not in self._months and not (self._legacy_until and m < self._legacy_until))
        if not need:
            return
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
        for m in need:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.partition_name(m)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ('{m.isoformat()} 00:00:00+00') TO ('{_next_month(m).isoformat()} 00:00:00+00')"
            )
        self._months.update(need)

    def _insert_raw(self, rows: Sequence[LedgerRow]) -> None:
        self._ensure_partitions({_month(ru.day_of(r.ts)) for r in rows})
        c = self.conn
        if self._batch_of is not c:
            for stmt in ru.batch_tables_sql(self.kind):
                c.execute(stmt)
            self._batch_of = c
        vals = []
        with c.cursor() as cur:  # COPY straight into the (partitioned) raw table: once per row
            with cur.copy(_PG_COPY) as cp:
                for r in rows:
                    v = _row_values(r, False)
                    vals.append(v)
                    cp.write_row(v)
            main, tagged = ru.batch_sums(vals, [int(v[_TS].timestamp()) // 3600 for v in vals], [r.tags for r in rows],
                                         _MONEY_AT, _pg_hour)
            with cur.copy(_PG_COPY_H) as cp:
                for t in main:
                    cp.write_row(t)
            if tagged:
                with cur.copy(_PG_COPY_HT) as cp:
                    for t in tagged:
                        cp.write_row(t)
        for stmt in _PG_UPSERT:
            c.execute(stmt)

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        try:
            super().insert(rows)
        except BaseException:
            self._batch_of = None  # a rolled-back CREATE TEMP TABLE: create it again
            self._months = set()  # a rolled-back partition may be in the cache: re-read next time
            with contextlib.suppress(Exception):
                self._load_partitions()
            raise

    def rows(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRow]:
        w, args = self._range_where(since, until)
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {w} ORDER BY ts"
        with self.conn.transaction():
            with self.conn.cursor(name="nadir_ledger_rows") as cur:  # server-side: streams rows
                cur.execute(sql, args)
                while batch := cur.fetchmany(1000):
                    for values in batch:
                        yield from_db(values)

    def partitions(self) -> list[tuple[str, date | None, date]]:
        """The raw table's partitions: (name, first month or ``None`` for the legacy one, end)."""
        self._load_partitions()
        out: list[tuple[str, date | None, date]] = [(self.partition_name(m), m, _next_month(m)) for m in sorted(self._months)]
        if self._legacy_until:
            out.insert(0, (LEGACY, None, self._legacy_until))
        return out

    def prune(self, raw_before: datetime | None, rollup_before: date | None = None) -> dict[str, int]:
        """Drop every monthly partition whose rows are all older than ``raw_before`` (cheap: no
        row-by-row delete; so raw rows are kept at least as long as asked, at most a month more)
        and delete rollup days ``< rollup_before``. Returns ``{"partitions": n, "rollup_rows": n}``."""
        dropped = 0
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
            if raw_before is not None:
                for name, _first, end in self.partitions():
                    if ru.midnight(end) <= _utc(raw_before):
                        self.conn.execute(f"DROP TABLE {name}")
                        dropped += 1
                        if name == LEGACY:
                            self.conn.execute(f"DELETE FROM {ru.META} WHERE key = 'legacy_until'")
                        self._set_meta("raw_pruned_before", ru.midnight(end).isoformat())
            n = self._prune_rollups(rollup_before)
        self._load_partitions()
        return {"partitions": dropped, "rollup_rows": n}

    def reconnect(self) -> None:
        """Open a fresh connection after a failure (same DSN)."""
        try:
            self.conn.close()
        finally:
            self.conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)

    def close(self) -> None:
        self.conn.close()


def open_store(*, sqlite_dir: str | Path | None = None, postgres_dsn: str | None = None, migrate: bool = True,
               create: bool = True) -> SQLiteStore | PostgresStore:
    """PostgreSQL when ``postgres_dsn`` is given, else SQLite in ``sqlite_dir``; migrated unless
    ``migrate=False``. ``create=False``: a missing SQLite ledger raises ``FileNotFoundError``
    (nothing is created). Raises ``ValueError`` with neither, ``OSError``/``sqlite3.Error``/
    ``psycopg.Error`` when the store cannot be opened."""
    if postgres_dsn:
        store: SQLiteStore | PostgresStore = PostgresStore(postgres_dsn)
    elif sqlite_dir:
        store = SQLiteStore(sqlite_dir, create=create)
    else:
        raise ValueError("ledger: set sqlite_dir or postgres_dsn")
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
