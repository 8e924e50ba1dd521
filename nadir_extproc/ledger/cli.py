"""``nadir-extproc report``: spend, savings, requests and tokens from the ledger.

Reads the store the settings name (``ledger.sqlite_dir`` / ``ledger.postgres_dsn``, or
``NADIR_LEDGER_DSN``), or the one given with ``--sqlite-dir`` / ``--dsn``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer


def _when(s: str | None, what: str) -> datetime | None:
    if not s:
        return None
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{what}: use an ISO date or time (2026-01-31, 2026-01-31T12:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def report(
    by: list[str] = typer.Option([], "--by", "-b", help="Group by: day, week, month, feature, team, user, env, session, key_id, model, provider, status or tag:<name> (repeatable)."),
    since: Optional[str] = typer.Option(None, help="From this UTC date/time (inclusive), ISO format."),
    until: Optional[str] = typer.Option(None, help="Up to this UTC date/time (exclusive), ISO format."),
    top: int = typer.Option(10, help="How many of the most expensive requests to list (0: none)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
    view: str = typer.Option("all", help="For tables and CSV: spend, top, unpriced or all (CSV: one view; all = spend)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML settings file (else $NADIR_CONFIG)."),
    sqlite_dir: Optional[Path] = typer.Option(None, help="Read the SQLite ledger in this folder."),
    dsn: Optional[str] = typer.Option(None, help="Read the PostgreSQL ledger at this DSN (else $NADIR_LEDGER_DSN)."),
) -> None:
    """Spend, savings, requests and tokens from the ledger, grouped; top-N requests; unpriced by reason."""
    from nadir_extproc.config import ConfigError, load_settings
    from nadir_extproc.ledger import report as rp
    from nadir_extproc.ledger.store import open_store

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format: table, csv or json")
    if view not in ("all", "spend", "top", "unpriced"):
        raise typer.BadParameter("--view: spend, top, unpriced or all")
    for b in by:
        try:
            rp.group_key(b)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    t0, t1 = _when(since, "--since"), _when(until, "--until")
    if sqlite_dir is None and not dsn:
        try:
            s = load_settings(config)
        except ConfigError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        dsn = s.ledger.postgres_dsn
        if not dsn:
            sqlite_dir = Path(s.ledger.sqlite_dir or Path(s.state_dir) / "ledger")
    try:
        store = open_store(sqlite_dir=sqlite_dir, postgres_dsn=dsn, migrate=False)
    except Exception as e:  # noqa: BLE001 — message names the store, never the DSN's password
        typer.echo(f"error: cannot open the ledger: {type(e).__name__}", err=True)
        raise typer.Exit(1) from None
    try:
        if store.schema_version() == 0:
            typer.echo("error: the ledger is empty (no schema yet: the service has not written to it)", err=True)
            raise typer.Exit(1)
        rep = rp.build(store.rows(t0, t1), by, top_n=top)
    finally:
        store.close()
    if fmt == "json":
        typer.echo(rp.to_json(rep))
    elif fmt == "csv":
        typer.echo(rp.to_csv(rep, "spend" if view == "all" else view), nl=False)
    else:
        rp.print_tables(rep, views=("spend", "top", "unpriced") if view == "all" else (view,))
