"""``nadir-extproc report``: spend, savings, requests and tokens from the ledger; and
``nadir-extproc ledger rebuild-rollups | prune``: maintenance.

Reads the store the settings name (``ledger.sqlite_dir`` / ``ledger.postgres_dsn``, or
``NADIR_LEDGER_DSN``), or the one given with ``--sqlite-dir`` / ``--dsn``. A report never creates a
ledger: on a machine where the service has not written one yet it says so in one line and exits 1.
A ledger of an older schema is migrated in place on open (one line on stderr); if that is not
possible (read-only file) the report is added up from the raw rows instead.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import typer

_AGO = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(s: str | None, what: str, now: datetime | None = None) -> datetime | None:
    """``--since`` / ``--until``: an ISO date or time (UTC unless it has an offset: ``2026-01-31``,
    ``2026-01-31T12:00``, ``2026-01-31T12:00+02:00``) or a duration before ``now``: ``N`` followed
    by ``s``, ``m``, ``h``, ``d`` or ``w`` (``7d`` = 7 x 24 h ago). ``today`` and ``yesterday`` are UTC
    midnights. Raises ``typer.BadParameter`` naming the accepted forms."""
    if not s:
        return None
    now = now or datetime.now(timezone.utc)
    m = _AGO.match(s)
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])
    low = s.strip().lower()
    if low in ("today", "yesterday"):
        d = now.astimezone(timezone.utc).date() - timedelta(days=1 if low == "yesterday" else 0)
        return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    try:
        t = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{what} {s!r}: use a date (2026-01-31), a UTC time (2026-01-31T12:00), a duration ago (90m, 12h, 7d, 2w), today or yesterday"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _fail(msg: str, code: int = 1) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _open(config: Path | None, sqlite_dir: Path | None, dsn: str | None, *, create: bool, with_tables: bool = False) -> Any:
    """The ledger store the options or settings name; one-line errors (exit 1), also for a ledger
    without tables when ``with_tables``."""
    from nadir_extproc.ledger.store import open_store

    if sqlite_dir is None and not dsn:
        from nadir_extproc.cliutil import settings_or_exit  # pydantic settings: only when they are needed

        s = settings_or_exit(config)
        dsn = s.ledger.postgres_dsn
        if not dsn:
            sqlite_dir = Path(s.ledger.sqlite_dir or Path(s.state_dir) / "ledger").expanduser()
    elif sqlite_dir is not None:
        # The obvious other forms of --sqlite-dir: the ledger file itself, or the state folder above it.
        if sqlite_dir.is_file():
            sqlite_dir = sqlite_dir.parent
        elif not (sqlite_dir / "ledger.sqlite3").exists() and (sqlite_dir / "ledger" / "ledger.sqlite3").is_file():
            sqlite_dir = sqlite_dir / "ledger"
    try:
        store = open_store(sqlite_dir=sqlite_dir, postgres_dsn=dsn, migrate=False, create=create)
    except FileNotFoundError:
        _fail(f"no ledger yet at {Path(sqlite_dir) / 'ledger.sqlite3'}: `nadir-extproc serve` writes it with the first "
              f"request (or name one with --sqlite-dir, --dsn or --config)")
    except Exception as e:  # noqa: BLE001 — message names the store, never the DSN's password
        _fail(f"cannot open the ledger at {_where(sqlite_dir, dsn)}: {_first_line(e, dsn)} "
              "(check --dsn / $NADIR_LEDGER_DSN or ledger.postgres_dsn, and that the server is up)" if dsn else
              f"cannot open the ledger at {_where(sqlite_dir, dsn)}: {_first_line(e, dsn)}")
    if with_tables and store.schema_version() == 0:
        store.close()
        _fail("the ledger has no tables yet: `nadir-extproc serve` creates them with the first request")
    return store


def _where(sqlite_dir: Path | None, dsn: str | None) -> str:
    """The store for a message: the SQLite folder, or the DSN with its password replaced by ``***``."""
    if not dsn:
        return str(sqlite_dir)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn))


def _first_line(e: Exception, dsn: str | None) -> str:
    """``Type: first line of the message``, with any password of ``dsn`` removed."""
    text = (str(e).strip().splitlines() or [""])[0]
    pw = re.search(r"://[^:/@]*:([^@]*)@", dsn or "") or re.search(r"password\s*=\s*(\S+)", dsn or "")
    if pw and pw.group(1):
        text = text.replace(pw.group(1), "***")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _upgrade(store: Any) -> bool:
    """Migrate an older ledger in place; ``False`` when that failed (then read it as it is)."""
    from nadir_extproc.ledger.store import LATEST

    have = store.schema_version()
    if have >= LATEST:
        return True
    try:
        store.migrate()
    except Exception as e:  # noqa: BLE001 — e.g. a read-only file: the report still works, slower
        typer.echo(f"note: ledger schema v{have} could not be upgraded ({type(e).__name__}); adding up raw rows instead", err=True)
        if getattr(store, "kind", "") == "postgres":
            store.reconnect()
        return False
    typer.echo(f"note: ledger schema upgraded from v{have} to v{LATEST} (rollups built from the rows already there)", err=True)
    return True


def report(
    by: list[str] = typer.Option([], "--by", "-b", help="Group by: day, week, month, feature, team, user, env, session, key_id, model, provider, status or tag:<name> (repeatable)."),
    since: Optional[str] = typer.Option(None, help="From (inclusive): a UTC date/time (2026-01-31, 2026-01-31T12:00) or a duration ago (7d, 12h, 2w)."),
    until: Optional[str] = typer.Option(None, help="Up to (exclusive): same forms as --since."),
    top: int = typer.Option(10, min=0, help="How many of the most expensive requests to list (0: none)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
    view: str = typer.Option("all", help="For tables and CSV: spend, top, unpriced or all (CSV: one view; all = spend)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file (else $NADIR_CONFIG)."),
    sqlite_dir: Optional[Path] = typer.Option(None, help="Read the SQLite ledger in this folder (or its ledger.sqlite3, or the state folder above it)."),
    dsn: Optional[str] = typer.Option(None, help="Read the PostgreSQL ledger at this DSN (else $NADIR_LEDGER_DSN)."),
    opportunity: bool = typer.Option(False, "--opportunity", help="What routing would save on explicit-model traffic (shadow routing): spend, spend the router would have sent to a cheaper model and its share, estimated saving, request counts, with the router's measured quality."),
) -> None:
    """Spend, savings, requests and tokens from the ledger, grouped; top-N requests; unpriced by reason; --opportunity: what routing would save."""
    from nadir_extproc.ledger import opportunity as op
    from nadir_extproc.ledger import report as rp

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format: table, csv or json")
    if view not in ("all", "spend", "top", "unpriced"):
        raise typer.BadParameter("--view: spend, top, unpriced or all")
    for b in by:
        try:
            rp.group_key(b)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    by = list(dict.fromkeys(by))  # --by day --by day: one day column
    now = datetime.now(timezone.utc)
    t0, t1 = parse_when(since, "--since", now), parse_when(until, "--until", now)
    if t0 is not None and t1 is not None and t0 >= t1:
        same_day = " (a date means its first instant: for the whole of one day, omit --until or give the next day)" if t0 == t1 else ""
        raise typer.BadParameter(f"--since ({t0.isoformat()}) must be before --until ({t1.isoformat()}){same_day}")
    store = _open(config, sqlite_dir, dsn, create=False, with_tables=True)
    try:
        if opportunity:
            try:
                orep = op.from_store(store, by, t0, t1) if _upgrade(store) else op.build(store.rows(t0, t1), by)
            except sqlite3.OperationalError as e:
                if "overflow" not in str(e):
                    raise
                orep = op.build(store.rows(t0, t1), by)
            rep = None
        elif _upgrade(store):
            try:
                rep = rp.from_store(store, by, t0, t1, top_n=top)
            except sqlite3.OperationalError as e:
                if "overflow" not in str(e):
                    raise
                rep = rp.build(store.rows(t0, t1), by, top_n=top)  # > 2^63 pico-USD in one sum: exact, slower
        else:
            rep = rp.build(store.rows(t0, t1), by, top_n=top)
        pruned = _pruned_note(store, t0, by, 0 if opportunity else top)
    finally:
        store.close()
    if rep is None:
        if fmt == "json":
            typer.echo(op.to_json(orep))
        elif fmt == "csv":
            typer.echo(op.to_csv(orep), nl=False)
            typer.echo(op.notes(), err=True, nl=False)  # not in the CSV: a reader would take them for records
        else:
            op.print_table(orep)
    elif fmt == "json":
        typer.echo(rp.to_json(rep))
    elif fmt == "csv":
        typer.echo(rp.to_csv(rep, "spend" if view == "all" else view), nl=False)
    else:
        rp.print_tables(rep, views=("spend", "top", "unpriced") if view == "all" else (view,))
    if pruned:
        typer.echo(pruned, err=True)


def _pruned_note(store: Any, since: datetime | None, by: list[str], top: int) -> str | None:
    """A note when the range reaches before the raw rows retention removed and the report needed them."""
    from nadir_extproc.ledger import rollup as ru
    from nadir_extproc.ledger.schema import parse_ts

    try:
        cut = store.meta("raw_pruned_before")
    except Exception:  # noqa: BLE001 — older schema: nothing pruned
        return None
    if not cut:
        return None
    cut_t = parse_ts(cut) if cut.endswith("Z") else datetime.fromisoformat(cut)
    if since is not None and since >= cut_t:
        return None
    needs_raw = ru.plan(by, since, None).raw_only or top > 0
    if not needs_raw:
        return None
    return (f"note: raw rows before {cut_t.date().isoformat()} were removed by retention; groupings by user/session and "
            f"the top requests cover only later requests (rollup totals cover all days)")


ledger_app = typer.Typer(help="Ledger maintenance: rebuild the daily rollups, apply retention.", no_args_is_help=True)


@ledger_app.command("rebuild-rollups")
def rebuild_rollups(
    since: Optional[str] = typer.Option(None, help="First UTC day to rebuild (default: the oldest raw row's day)."),
    until: Optional[str] = typer.Option(None, help="Day after the last to rebuild (default: no end)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file (else $NADIR_CONFIG)."),
    sqlite_dir: Optional[Path] = typer.Option(None, help="The SQLite ledger in this folder."),
    dsn: Optional[str] = typer.Option(None, help="The PostgreSQL ledger at this DSN (else $NADIR_LEDGER_DSN)."),
) -> None:
    """Recompute the daily rollups from the raw rows (after a migration or a fix), in one transaction; days whose raw rows retention removed keep their rollups unless named with --since."""
    now = datetime.now(timezone.utc)
    d0, d1 = parse_when(since, "--since", now), parse_when(until, "--until", now)
    store = _open(config, sqlite_dir, dsn, create=False, with_tables=True)
    try:
        store.migrate()
        n = store.rebuild_rollups(d0.date() if d0 else None, d1.date() if d1 else None)
    finally:
        store.close()
    typer.echo(f"rebuilt the daily rollups from {n} raw rows")


@ledger_app.command("prune")
def prune(
    raw_days: Optional[int] = typer.Option(None, min=1, help="Keep raw rows this many days (default: ledger.retention_days)."),
    rollup_days: Optional[int] = typer.Option(None, min=1, help="Keep rollup days this many days (default: ledger.rollup_retention_days)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file (else $NADIR_CONFIG)."),
    sqlite_dir: Optional[Path] = typer.Option(None, help="The SQLite ledger in this folder."),
    dsn: Optional[str] = typer.Option(None, help="The PostgreSQL ledger at this DSN (else $NADIR_LEDGER_DSN)."),
) -> None:
    """Apply retention now (the service also does it hourly): raw rows older than the raw retention (PostgreSQL: whole monthly partitions dropped), rollup days older than theirs."""
    from nadir_extproc.ledger.rollup import cutoffs

    if raw_days is None or rollup_days is None:
        from nadir_extproc.cliutil import settings_or_exit

        s = settings_or_exit(config)
        raw_days = raw_days if raw_days is not None else s.ledger.retention_days
        rollup_days = rollup_days if rollup_days is not None else s.ledger.rollup_retention_days
    if raw_days is None and rollup_days is None:
        _fail("no retention set: pass --raw-days / --rollup-days or set ledger.retention_days", 2)
    store = _open(config, sqlite_dir, dsn, create=False)
    try:
        store.migrate()
        raw_before, rollup_before = cutoffs(raw_days, rollup_days)
        res = store.prune(raw_before, rollup_before)
    finally:
        store.close()
    typer.echo("pruned: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in res.items()))
