"""Daily and hourly rollups of the ledger, and exact aggregation in the database.

Four rollup tables, maintained by the store in the same transaction as the raw rows
(``Store.insert``: ``batch_sums`` then the statements of ``upsert_sql``) and rebuildable from the raw rows
(``Store.rebuild_rollups``, ``nadir-extproc ledger rebuild-rollups``; ``rebuild_sql``):

- ``nadir_rollup_daily``: one row per (UTC day, ``DIMS``): team, feature, env, key id, provider,
  served model, status, unpriced reason;
- ``nadir_rollup_daily_tag``: one row per (UTC day, tag name, tag value) for every tag that is not
  one of the dimension tags (``schema.TAG_COLUMNS``). Such tags only reach the ledger when their
  name is on the allow-list (``tags.allow``) or mapped in ``tags.headers``, so these are exactly the
  allowed tag names. ``user`` and ``session`` are not rolled up (one row per user per day would be
  as big as the raw table); groupings by them read the raw rows.

- ``nadir_rollup_hourly`` / ``nadir_rollup_hourly_tag`` (schema v4): the same per UTC hour. A
  report range is answered from the daily tables for its whole days, the hourly ones for the whole
  hours of its partial edge days and raw rows only for its partial edge hours (``plan``).

A missing dimension is stored as ``''`` (so the unique key works; tag values are never empty) and
read back as ``None``.

Every measure is additive (``MEASURES``): request counts, token counts and money. Money is exact:
PostgreSQL ``NUMERIC``; SQLite an INTEGER count of pico-USD (``PICO`` = 10^-12 USD, column
``<name>`` with ``_usd`` replaced by ``_pusd``), summed as integers and turned back into
``Decimal`` (see ``to_pico``). **Adding a money column** (as schema v3 did for shadow routing) = add it to
``LedgerRow`` and ``schema.MONEY``, add one ``Measure`` here, and a store migration that adds the
column to the raw table (SQLite: the ``_pusd`` twin) and to the rollup tables, then rebuilds.

Time grouping: UTC days in the database; ISO weeks (``2026-W10``) and months (``2026-03``) are
folded from days here (``time_key``), so both stores group identically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import operator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext
from typing import Any

from nadir_extproc.ledger.schema import COLUMNS, TAG_COLUMNS, LedgerRow

DAILY = "nadir_rollup_daily"
DAILY_TAG = "nadir_rollup_daily_tag"
#: Schema v4: the same totals per UTC hour; they answer the whole hours of a range's partial edge
#: days, so a report reads raw rows for at most the partial hour at either end.
HOURLY = "nadir_rollup_hourly"
HOURLY_TAG = "nadir_rollup_hourly_tag"
#: Each rollup table's time column, and the table without tags over the same time unit.
TIME_COL = {DAILY: "day", DAILY_TAG: "day", HOURLY: "hour", HOURLY_TAG: "hour"}
MAIN_OF = {DAILY_TAG: DAILY, HOURLY_TAG: HOURLY}
META = "nadir_ledger_meta"

#: Rollup dimensions: name -> raw-table column (the report's group names, except ``model``).
DIMS: dict[str, str] = {
    "team": "tag_team",
    "feature": "tag_feature",
    "env": "tag_env",
    "key_id": "key_id",
    "provider": "provider",
    "model": "served_model",
    "status": "status",
    "unpriced_reason": "unpriced_reason",
}
TIME_GROUPS = ("day", "week", "month")
#: Report groups the main rollup can answer (besides time).
ROLLUP_GROUPS = ("team", "feature", "env", "key_id", "provider", "model", "status")

PICO = Decimal("1e-12")  # SQLite money unit: 1 pico-USD


@dataclass(frozen=True)
class Measure:
    """One additive rollup column. ``kind``: ``count``, ``tokens`` or ``money`` (USD ``Decimal``).
    ``of``: the row's contribution (``None`` = 0); ``raw``: the same as SQL over the raw table,
    where ``{m}`` formats a money column name for the store (``cost_usd`` or ``cost_pusd``)."""

    name: str
    kind: str
    of: Callable[[LedgerRow], Any]
    raw: str


def _tok(*cols: str) -> str:
    return " + ".join(f"COALESCE({c}, 0)" for c in cols)


MEASURES: tuple[Measure, ...] = (
    Measure("requests", "count", lambda r: 1, "COUNT(*)"),
    Measure("unpriced", "count", lambda r: 1 if r.cost_usd is None else 0, "SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)"),
    Measure("cost_usd", "money", lambda r: r.cost_usd, "SUM(COALESCE({cost_usd}, 0))"),
    Measure("baseline_usd", "money", lambda r: r.baseline_usd, "SUM(COALESCE({baseline_usd}, 0))"),
    Measure("saved_usd", "money", lambda r: r.saved_usd, "SUM(COALESCE({saved_usd}, 0))"),
    Measure("input_tokens", "tokens", lambda r: r.input_tokens,
            "SUM(" + _tok("uncached_input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens") + ")"),
    Measure("output_tokens", "tokens", lambda r: r.output_tokens, "SUM(COALESCE(output_tokens, 0))"),
    Measure("cache_read_tokens", "tokens", lambda r: r.cache_read_tokens, "SUM(COALESCE(cache_read_tokens, 0))"),
    Measure("cache_write_tokens", "tokens", lambda r: (r.cache_write_tokens or 0) + (r.cache_write_1h_tokens or 0),
            "SUM(" + _tok("cache_write_tokens", "cache_write_1h_tokens") + ")"),
    Measure("reasoning_tokens", "tokens", lambda r: r.reasoning_tokens, "SUM(COALESCE(reasoning_tokens, 0))"),
    # Shadow routing (schema v3): requests scored in shadow, those the router would have sent to a
    # cheaper model (opportunity > 0: "downgradable"), their actual spend, the what-if cost and the
    # opportunity (actual - what-if when positive).
    Measure("shadow_requests", "count", lambda r: 1 if r.shadow_model is not None else 0,
            "SUM(CASE WHEN shadow_model IS NOT NULL THEN 1 ELSE 0 END)"),
    Measure("downgradable_requests", "count", lambda r: 1 if (r.opportunity_usd or 0) > 0 else 0,
            "SUM(CASE WHEN COALESCE({opportunity_usd}, 0) > 0 THEN 1 ELSE 0 END)"),
    Measure("downgradable_cost_usd", "money", lambda r: r.cost_usd if (r.opportunity_usd or 0) > 0 else None,
            "SUM(CASE WHEN COALESCE({opportunity_usd}, 0) > 0 THEN COALESCE({cost_usd}, 0) ELSE 0 END)"),
    Measure("shadow_cost_usd", "money", lambda r: r.shadow_cost_usd, "SUM(COALESCE({shadow_cost_usd}, 0))"),
    Measure("opportunity_usd", "money", lambda r: r.opportunity_usd, "SUM(COALESCE({opportunity_usd}, 0))"),
)
#: The measures of schema v2's rollup tables (v3 adds the rest as columns, then rebuilds).
V2_MEASURES = 10
MONEY_MEASURES = tuple(m.name for m in MEASURES if m.kind == "money")


def pico_name(money_col: str) -> str:
    """SQLite's integer twin of a money column: ``cost_usd`` -> ``cost_pusd``."""
    return money_col[: -len("_usd")] + "_pusd" if money_col.endswith("_usd") else money_col + "_pusd"


def to_pico(v: Decimal | None) -> tuple[int | None, bool]:
    """``(v in pico-USD as an int, exact?)``; ``(None, True)`` for ``None``. Every catalogue rate
    is a whole number of pico-USD per token, so ledger costs are exact; an amount finer than
    10^-12 USD (an operator price file's odd discount) is rounded half-even and reported inexact
    (the TEXT column keeps the exact value)."""
    if v is None:
        return None, True
    q = v.scaleb(12)
    n = int(q.to_integral_value())
    return n, n == q


def from_pico(n: int | None) -> Decimal:
    """pico-USD int -> USD ``Decimal`` (exact)."""
    return Decimal(n or 0).scaleb(-12)


def time_key(day: str | date | None, unit: str) -> str | None:
    """A UTC day's label in ``unit``: ``day`` 2026-03-02, ``week`` 2026-W10 (ISO), ``month`` 2026-03."""
    if day is None:
        return None
    d = day if isinstance(day, date) else date.fromisoformat(day)
    if unit == "day":
        return d.isoformat()
    if unit == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    return f"{d.year:04d}-{d.month:02d}"


def day_of(ts: datetime) -> date:
    """The UTC day of ``ts``."""
    return ts.astimezone(timezone.utc).date()


def add_sums(acc: dict[Any, list], key: Any, sums: Sequence) -> None:
    """Add ``sums`` (``MEASURES`` order) element-wise into ``acc[key]`` (a copy of ``sums`` when new)."""
    have = acc.get(key)
    if have is None:
        acc[key] = list(sums)
    else:
        for i, v in enumerate(sums):
            have[i] += v


# ---------------------------------------------------------------------------- SQL per store
@dataclass(frozen=True)
class Dialect:
    """What differs between the stores' SQL. ``ph``: parameter placeholder; ``day``: the UTC-day
    expression over ``ts``; ``money``: money column name -> stored column (and type);
    ``tag``: SQL of a tag's value in the raw row, given a placeholder for its name; ``tag_rows``:
    the FROM clause that yields (key, value) pairs of ``tags``."""

    kind: str
    ph: str
    day: str
    day_type: str
    money_type: str
    money: Callable[[str], str]
    tag: str
    tag_rows: str
    int_type: str
    #: the UTC hour of ``ts`` (its start), its type, and the UTC day of an ``hour`` column
    hour: str = ""
    hour_type: str = ""
    day_of_hour: str = ""

    def measure_sql(self, m: Measure) -> str:
        return m.raw.format(**{n: self.money(n) for n in MONEY_MEASURES})


SQLITE = Dialect(
    kind="sqlite", ph="?", day="substr(ts, 1, 10)", day_type="TEXT", money_type="INTEGER", money=pico_name,
    tag="json_extract(tags, '$.\"' || ? || '\"')", tag_rows="json_each({src}.tags) AS j", int_type="INTEGER",
    hour="substr(ts, 1, 13)", hour_type="TEXT", day_of_hour="substr(hour, 1, 10)",
)
POSTGRES = Dialect(
    kind="postgres", ph="%s", day="((ts AT TIME ZONE 'UTC')::date)", day_type="DATE", money_type="NUMERIC", money=lambda n: n,
    tag="(tags::jsonb ->> %s)", tag_rows="jsonb_each_text({src}.tags::jsonb) AS j(key, value)", int_type="BIGINT",
    hour="(date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')", hour_type="TIMESTAMPTZ",
    day_of_hour="((hour AT TIME ZONE 'UTC')::date)",
)


def dialect(kind: str) -> Dialect:
    return SQLITE if kind == "sqlite" else POSTGRES


def _measure_cols(dl: Dialect) -> list[tuple[str, str]]:
    out = []
    for m in MEASURES:
        if m.kind == "money":
            out.append((dl.money(m.name), dl.money_type))
        else:
            out.append((m.name, dl.int_type))
    return out


def measure_columns(kind: str) -> list[tuple[str, str]]:
    """(column, SQL type) of every measure in the rollup tables of store ``kind``."""
    return _measure_cols(dialect(kind))


def _ddl_pair(kind: str, main: str, tag: str, col: str, col_type: str) -> list[str]:
    """CREATE statements of one rollup pair (``main`` by dimensions, ``tag`` by tag value), keyed
    by the time column ``col`` of SQL type ``col_type``, and their indexes."""
    meas = ",\n  ".join(f"{c} {t} NOT NULL DEFAULT 0" for c, t in _measure_cols(dialect(kind)))
    dims = ",\n  ".join(f"{d} TEXT NOT NULL" for d in DIMS)
    return [
        f"CREATE TABLE {main} (\n  {col} {col_type} NOT NULL,\n  {dims},\n  {meas}\n)",
        f"CREATE UNIQUE INDEX {main}_key ON {main} ({col}, {', '.join(DIMS)})",
        f"CREATE TABLE {tag} (\n  {col} {col_type} NOT NULL,\n  tag TEXT NOT NULL,\n  value TEXT NOT NULL,\n  {meas}\n)",
        f"CREATE UNIQUE INDEX {tag}_key ON {tag} ({col}, tag, value)",
        f"CREATE INDEX {tag}_tag ON {tag} (tag, {col})",
    ]


def ddl(kind: str) -> list[str]:
    """CREATE statements of the daily rollup tables and their indexes."""
    return _ddl_pair(kind, DAILY, DAILY_TAG, "day", dialect(kind).day_type)


def ddl_hourly(kind: str) -> list[str]:
    """CREATE statements of the hourly rollup tables (schema v4) and their indexes."""
    return _ddl_pair(kind, HOURLY, HOURLY_TAG, "hour", dialect(kind).hour_type)


def _keys(table: str) -> list[str]:
    t = TIME_COL[table]
    return [t, *DIMS] if table in (DAILY, HOURLY) else [t, "tag", "value"]


#: Per-connection temporary tables holding one batch's hourly sums (``batch_sums``, ``upsert_sql``).
BATCH_H = "nadir_batch_hourly"
BATCH_HT = "nadir_batch_hourly_tag"


def batch_tables_sql(kind: str) -> list[str]:
    """CREATE TEMP TABLE statements of ``BATCH_H`` / ``BATCH_HT`` (same columns as the hourly
    rollups, no constraints), run once per connection after the hourly rollups exist."""
    if kind == "postgres":
        return [f"CREATE TEMP TABLE IF NOT EXISTS {t} (LIKE {src}) ON COMMIT DELETE ROWS" for t, src in ((BATCH_H, HOURLY), (BATCH_HT, HOURLY_TAG))]
    return [f"CREATE TEMP TABLE IF NOT EXISTS {t} AS SELECT * FROM {src} WHERE 0" for t, src in ((BATCH_H, HOURLY), (BATCH_HT, HOURLY_TAG))]


def upsert_sql(kind: str) -> list[str]:
    """The writer's rollup maintenance from one batch's hourly sums (already in ``BATCH_H`` and
    ``BATCH_HT``, see ``batch_sums``): they are added to the hourly rollups and, summed by day, to
    the daily ones (INSERT … SELECT … ON CONFLICT DO UPDATE; exact: NUMERIC / integer pico-USD).
    The rollup rows a batch touches are its distinct keys, whatever its size. Then the batch
    tables are emptied (PostgreSQL also empties them at commit)."""
    dl = dialect(kind)
    meas_cols = [c for c, _ in _measure_cols(dl)]
    mcols = ", ".join(meas_cols)
    sums = ", ".join(f"SUM({c})" for c in meas_cols)
    sets = ", ".join(f"{c} = {{t}}.{c} + excluded.{c}" for c in meas_cols)
    groups = ", ".join(str(i) for i in range(1, 2 + len(DIMS)))
    dims = ", ".join(DIMS)
    pg = kind == "postgres"
    # PostgreSQL: rollup rows locked in key order, so concurrent writers (sidecars) cannot deadlock.
    # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT (a parsing ambiguity).
    order = f" ORDER BY {groups}" if pg else ""
    order3 = " ORDER BY 1, 2, 3" if pg else ""
    return [
        f"INSERT INTO {HOURLY} (hour, {dims}, {mcols}) SELECT hour, {dims}, {mcols} FROM {BATCH_H} WHERE true{order} "
        f"ON CONFLICT (hour, {dims}) DO UPDATE SET {sets.format(t=HOURLY)}",
        f"INSERT INTO {DAILY} (day, {dims}, {mcols}) SELECT {dl.day_of_hour}, {dims}, {sums} FROM {BATCH_H} GROUP BY {groups}{order} "
        f"ON CONFLICT (day, {dims}) DO UPDATE SET {sets.format(t=DAILY)}",
        f"INSERT INTO {HOURLY_TAG} (hour, tag, value, {mcols}) SELECT hour, tag, value, {mcols} FROM {BATCH_HT} WHERE true{order3} "
        f"ON CONFLICT (hour, tag, value) DO UPDATE SET {sets.format(t=HOURLY_TAG)}",
        f"INSERT INTO {DAILY_TAG} (day, tag, value, {mcols}) SELECT {dl.day_of_hour}, tag, value, {sums} FROM {BATCH_HT} "
        f"GROUP BY 1, 2, 3{order3} ON CONFLICT (day, tag, value) DO UPDATE SET {sets.format(t=DAILY_TAG)}",
        f"DELETE FROM {BATCH_H}",
        f"DELETE FROM {BATCH_HT}",
    ]


#: Decimal addition without rounding (the default context keeps 28 digits).
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_BUILTIN_TAGS = frozenset(TAG_COLUMNS)
_AT = {c: i for i, c in enumerate(COLUMNS)}
_DIMS_OF = operator.itemgetter(*(_AT[c] for c in DIMS.values()))
_TOKENS_AT = [_AT[c] for c in ("uncached_input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                               "output_tokens", "reasoning_tokens")]
_SHADOW_AT = _AT["shadow_model"]


def batch_sums(values: Sequence[Sequence[Any]], hours: Sequence[Any], tags: Sequence[dict[str, str]],
               money_at: Sequence[int], hour_value: Callable[[Any], Any] | None = None) -> tuple[list[tuple], list[tuple]]:
    """One batch's hourly sums, computed here from the rows the store is writing, with exactly
    the semantics of the SQL that rebuilds them from the raw rows (``rebuild_sql``, ``MEASURES[].raw``).
    Returns ``(main, tagged)``: rows of ``BATCH_H`` (hour, ``DIMS`` with ``''`` for a missing
    value, ``MEASURES``) and of ``BATCH_HT`` (hour, tag name, tag value, ``MEASURES``; every tag
    but the built-in ``schema.TAG_COLUMNS``, non-empty values only).

    ``values``: each row's raw-table values in ``schema.COLUMNS`` order (as the store writes
    them; more may follow); ``money_at``: the positions in them of the ``schema.MONEY`` amounts as
    the store sums them (SQLite: the pico-USD integers of the ``_pusd`` columns, so the sums equal
    a rebuild's, rounding included; PostgreSQL: the ``Decimal`` USD); ``hours``: each row's UTC
    hour as a key (SQLite: the stored text ``2026-03-02T10``), turned into the stored hour by
    ``hour_value`` once per group; ``tags``: each row's tags. Sums are exact (integers;
    ``Decimal`` added without rounding)."""
    groups: dict[tuple, list] = {}
    tgroups: dict[tuple, list] = {}
    builtin = _BUILTIN_TAGS
    dims_of = _DIMS_OF
    for v, h, t in zip(values, hours, tags):
        k = (h, *dims_of(v))
        g = groups.get(k)
        if g is None:
            groups[k] = [v]
        else:
            g.append(v)
        if not t.keys() <= builtin:
            for name, tv in t.items():
                if name not in builtin and tv is not None and tv != "":
                    tk = (h, name, tv if isinstance(tv, str) else str(tv))
                    g = tgroups.get(tk)
                    if g is None:
                        tgroups[tk] = [v]
                    else:
                        g.append(v)
    hv = hour_value or (lambda h: h)
    with localcontext(_EXACT):
        main = [(hv(k[0]), *[x or "" for x in k[1:]], *_measures(vs, money_at)) for k, vs in groups.items()]
        tagged = [(hv(k[0]), k[1], k[2], *_measures(vs, money_at)) for k, vs in tgroups.items()]
    return main, tagged


def _measures(vs: list[Sequence[Any]], money_at: Sequence[int]) -> tuple:
    """``MEASURES`` of the rows ``vs`` (see ``batch_sums``)."""
    cols = list(zip(*vs))
    n = len(vs)
    cost, base, saved, shadow, opp = (cols[i] for i in money_at)
    unc, cr, cw, cw1h, out, rsn = (sum(filter(None, cols[i])) for i in _TOKENS_AT)
    if any(opp):
        pos = [c for c, o in zip(cost, opp) if o is not None and o > 0]
        down, down_cost = len(pos), sum(filter(None, pos))
    else:
        down, down_cost = 0, 0
    return (
        n,                                  # requests
        sum(x is None for x in cost),       # unpriced (not cost.count(None): Decimal == None is slow)
        sum(filter(None, cost)),
        sum(filter(None, base)),
        sum(filter(None, saved)),
        unc + cr + cw + cw1h,               # input tokens
        out,
        cr,
        cw + cw1h,                          # cache-write tokens (5 min + 1 h)
        rsn,
        n - cols[_SHADOW_AT].count(None),   # shadow requests
        down,                               # downgradable requests (opportunity > 0)
        down_cost,                          # their cost
        sum(filter(None, shadow)),
        sum(filter(None, opp)),
    )


assert [m.name for m in MEASURES] == ["requests", "unpriced", "cost_usd", "baseline_usd", "saved_usd", "input_tokens", "output_tokens",
                                      "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "shadow_requests",
                                      "downgradable_requests", "downgradable_cost_usd", "shadow_cost_usd", "opportunity_usd"]
assert tuple(DIMS) == ("team", "feature", "env", "key_id", "provider", "model", "status", "unpriced_reason")  # batch_sums' key


def rebuild_sql(kind: str, where: str, hour_where: str | None, src_from: str = "nadir_requests") -> list[str]:
    """INSERT … SELECT statements rebuilding the rollups from the raw rows matching ``where`` (a
    condition on ``nadir_requests``): the hourly ones from the raw rows (one pass each), the daily
    ones from the hourly rows matching ``hour_where`` (the same range; sums of sums, exact).
    ``hour_where=None`` (a ledger before schema v4, mid-migration): the daily ones from the raw rows.
    ``src_from``: the raw table as the FROM clause names it (SQLite: with an index hint)."""
    dl = dialect(kind)
    meas_cols = [c for c, _ in _measure_cols(dl)]
    meas_sql = [dl.measure_sql(m) for m in MEASURES]
    dim_sql = [f"COALESCE({col}, '')" for col in DIMS.values()]
    groups = ", ".join(str(i) for i in range(1, 2 + len(DIMS)))
    skip = ", ".join(f"'{t}'" for t in TAG_COLUMNS)
    tag_rows = dl.tag_rows.format(src="nadir_requests")

    def from_raw(table: str, texpr: str) -> str:
        col = TIME_COL[table]
        if table in MAIN_OF:
            return (f"INSERT INTO {table} ({col}, tag, value, {', '.join(meas_cols)}) "
                    f"SELECT {texpr}, j.key, j.value, {', '.join(meas_sql)} FROM {src_from}, {tag_rows} "
                    f"WHERE ({where}) AND j.key NOT IN ({skip}) AND j.value IS NOT NULL AND j.value <> '' GROUP BY 1, 2, 3")
        return (f"INSERT INTO {table} ({col}, {', '.join(DIMS)}, {', '.join(meas_cols)}) "
                f"SELECT {texpr}, {', '.join(dim_sql)}, {', '.join(meas_sql)} FROM {src_from} WHERE {where} GROUP BY {groups}")

    if hour_where is None:
        return [from_raw(DAILY, dl.day), from_raw(DAILY_TAG, dl.day)]
    sums = ", ".join(f"SUM({c})" for c in meas_cols)
    daily = (f"INSERT INTO {DAILY} (day, {', '.join(DIMS)}, {', '.join(meas_cols)}) "
             f"SELECT {dl.day_of_hour}, {', '.join(DIMS)}, {sums} FROM {HOURLY} WHERE {hour_where} GROUP BY {groups}")
    daily_tag = (f"INSERT INTO {DAILY_TAG} (day, tag, value, {', '.join(meas_cols)}) "
                 f"SELECT {dl.day_of_hour}, tag, value, {sums} FROM {HOURLY_TAG} WHERE {hour_where} GROUP BY 1, 2, 3")
    return [from_raw(HOURLY, dl.hour), from_raw(HOURLY_TAG, dl.hour), daily, daily_tag]


# ---------------------------------------------------------------------------- report side
@dataclass
class Plan:
    """How one report range is answered: ``rollup`` (``DAILY`` or ``DAILY_TAG``) for the whole UTC
    days in ``[day0, day1)``; ``hourly`` (``HOURLY`` or ``HOURLY_TAG``) for the whole UTC hours of
    the partial days at either edge (``hour_ranges``); raw rows for the partial hours at either
    edge (``raw_ranges``), or raw rows for all of it (neither rollup: a grouping the rollups do not
    hold). So a rollup-backed range reads at most two partial hours of raw rows."""

    rollup: str | None
    day0: date | None = None
    day1: date | None = None
    raw_ranges: tuple[tuple[datetime | None, datetime | None], ...] = ()
    hourly: str | None = None
    hour_ranges: tuple[tuple[datetime, datetime], ...] = ()

    @property
    def raw_only(self) -> bool:
        """Whether every row comes from the raw table (a grouping the rollups cannot answer)."""
        return self.rollup is None and self.hourly is None

    @property
    def tagged(self) -> bool:
        """Whether the per-tag rollups answer it (they have no ``unpriced_reason`` column)."""
        return self.rollup == DAILY_TAG or self.hourly == HOURLY_TAG


def _ceil_day(t: datetime) -> date:
    d = day_of(t)
    return d if t.astimezone(timezone.utc) == datetime(d.year, d.month, d.day, tzinfo=timezone.utc) else d + timedelta(days=1)


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def floor_hour(t: datetime) -> datetime:
    """The start of ``t``'s UTC hour."""
    return t.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    """The first UTC hour start at or after ``t``."""
    h = floor_hour(t)
    return h if h == t.astimezone(timezone.utc) else h + timedelta(hours=1)


def plan(by: Sequence[str], since: datetime | None, until: datetime | None) -> Plan:
    """Which tables answer grouping ``by`` over ``[since, until)`` (see ``Plan``)."""
    other = [b for b in by if b not in TIME_GROUPS]
    if all(b in ROLLUP_GROUPS for b in other):
        table, hourly = DAILY, HOURLY
    elif len(other) == 1 and other[0].startswith("tag:") and other[0][4:] not in TAG_COLUMNS:
        table, hourly = DAILY_TAG, HOURLY_TAG
    else:
        return Plan(None, raw_ranges=((since, until),))
    h0 = ceil_hour(since) if since is not None else None
    h1 = floor_hour(until) if until is not None else None
    if h0 is not None and h1 is not None and h0 >= h1:  # less than one whole hour: raw only
        return Plan(None, raw_ranges=((since, until),))
    raw = []
    if since is not None and h0 != since:
        raw.append((since, h0))
    if until is not None and h1 != until:
        raw.append((h1, until))
    day0 = _ceil_day(since) if since is not None else None
    day1 = day_of(until) if until is not None else None
    if day0 is not None and day1 is not None and day0 >= day1:  # no whole day: whole hours, raw edges
        return Plan(None, raw_ranges=tuple(raw), hourly=hourly, hour_ranges=((h0, h1),))  # type: ignore[arg-type]
    hours = []
    if h0 is not None and h0 < midnight(day0):  # type: ignore[arg-type]
        hours.append((h0, midnight(day0)))  # type: ignore[arg-type]
    if h1 is not None and midnight(day1) < h1:  # type: ignore[arg-type]
        hours.append((midnight(day1), h1))  # type: ignore[arg-type]
    return Plan(table, day0, day1, tuple(raw), hourly if hours else None, tuple(hours))


RAW_GROUP_COLS = {**{k: v for k, v in DIMS.items()}, "user": "tag_user", "session": "tag_session"}


def group_sql(dl: Dialect, name: str, table: str | None) -> tuple[str, list[Any]]:
    """SQL expression (and its parameters) of report group ``name`` in ``table`` (``None``: raw).
    Time groups all read the UTC day; ``time_key`` folds it into weeks or months."""
    if name in TIME_GROUPS:
        if table in (HOURLY, HOURLY_TAG):
            return dl.day_of_hour, []
        return ("day" if table else dl.day), []
    if table in (DAILY, HOURLY):
        return name, []
    if table in (DAILY_TAG, HOURLY_TAG):
        return "value", []
    if name in RAW_GROUP_COLS:
        return RAW_GROUP_COLS[name], []
    if name.startswith("tag:"):
        tag = name[4:]
        if tag in TAG_COLUMNS:
            return f"tag_{tag}", []
        return dl.tag, [tag]
    raise ValueError(name)


def key_positions(by: Sequence[str]) -> tuple[list[int], list[str]]:
    """For each of ``by``: its column in an aggregate key (time groups share the first time
    group's column, a UTC day); and the key's columns (``day`` for the time one)."""
    pos: list[int] = []
    cols: list[str] = []
    tcol = None
    for b in by:
        if b in TIME_GROUPS:
            if tcol is None:
                tcol = len(cols)
                cols.append("day")
            pos.append(tcol)
        else:
            pos.append(len(cols))
            cols.append(b)
    return pos, cols


def time_position(by: Sequence[str]) -> int | None:
    """The key column holding the UTC day, or ``None`` without a time group."""
    pos, cols = key_positions(by)
    return cols.index("day") if "day" in cols else None


def aggregate_sql(dl: Dialect, by: Sequence[str], table: str | None, extra_dims: Sequence[str] = (),
                  measures: Sequence[str] | None = None) -> tuple[str, list[Any], int]:
    """SELECT of the group values (time groups share one ``day`` column), ``extra_dims`` (rollup
    dimension columns, e.g. ``unpriced_reason``) and the sums of ``MEASURES``, with a ``{where}``
    slot. Returns (sql, group parameters, number of key columns)."""
    exprs: list[str] = []
    params: list[Any] = []
    for b in key_positions(by)[1]:
        e, p = group_sql(dl, b, table)
        exprs.append(e)
        params.extend(p)
    for d in extra_dims:
        exprs.append(d if table else DIMS[d])
    if table:
        sums = [f"SUM({c})" for c, _ in _measure_cols(dl)]
        if measures is not None:  # the others as constant 0: the database adds only what is asked
            sums = [x if m.name in measures else "0" for x, m in zip(sums, MEASURES)]
    else:
        sums = [dl.measure_sql(m) if measures is None or m.name in measures else "0" for m in MEASURES]
    src = table or "nadir_requests"
    sel = ", ".join([*exprs, *sums])
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(exprs)))}" if exprs else ""
    # group parameters appear in SELECT (before WHERE) and are repeated by position in GROUP BY
    return f"SELECT {sel} FROM {src} WHERE {{where}}{group}", params, len(exprs)


def cutoffs(raw_days: int | None, rollup_days: int | None, now: datetime | None = None) -> tuple[datetime | None, date | None]:
    """Retention cut-offs at UTC midnight: raw rows before the first (``raw_days`` whole days kept
    before today), rollup days before the second (``rollup_days``, never shorter than ``raw_days``)."""
    today = day_of(now or datetime.now(timezone.utc))
    raw = midnight(today - timedelta(days=raw_days)) if raw_days else None
    if rollup_days and raw_days:
        rollup_days = max(rollup_days, raw_days)
    return raw, (today - timedelta(days=rollup_days)) if rollup_days else None
