"""The per-request ledger: row schema, background writer, SQLite and PostgreSQL stores, report.

``open_ledger(settings)`` opens (and migrates) the configured store and starts a writer; the
server hands every finished request's ``Outcome`` to ``LedgerWriter.submit`` and calls
``LedgerWriter.close`` on SIGTERM.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nadir_extproc.ledger.schema import STATUSES, LedgerRow, from_outcome
from nadir_extproc.ledger.store import PostgresStore, SQLiteStore, open_store
from nadir_extproc.ledger.writer import LedgerWriter

log = logging.getLogger("nadir_extproc")

__all__ = ["attach", "STATUSES", "LedgerRow", "LedgerWriter", "PostgresStore", "SQLiteStore", "from_outcome", "open_ledger", "open_store"]


def sqlite_dir(settings: Any) -> Path:
    """The SQLite ledger folder of ``settings``: ``ledger.sqlite_dir`` or ``<state_dir>/ledger``."""
    return Path(settings.ledger.sqlite_dir or Path(settings.state_dir) / "ledger").expanduser()


def open_ledger(settings: Any) -> LedgerWriter:
    """Open and migrate the store ``settings.ledger`` names and start its writer. Raises what
    ``open_store`` raises when the store cannot be opened."""
    cfg = settings.ledger
    store = open_store(sqlite_dir=None if cfg.postgres_dsn else sqlite_dir(settings), postgres_dsn=cfg.postgres_dsn)
    return LedgerWriter(store, queue_size=cfg.queue_size, batch_size=cfg.batch_size, flush_interval_s=cfg.flush_interval_s,
                        retention_days=cfg.retention_days, rollup_retention_days=cfg.rollup_retention_days)


def attach(settings: Any, ctx: Any) -> LedgerWriter | None:
    """Open the ledger ``settings.ledger`` names (``None`` when disabled), seed ``ctx.budgets``
    from it (``Budgets.seed_from_store``: hourly rollups, raw rows where they are not exact) inside
    the longest budget window, and add the writer as an ``on_complete``
    sink of ``ctx``. Raises what ``open_store`` raises."""
    if not settings.ledger.enabled:
        return None
    writer = open_ledger(settings)
    budgets = getattr(ctx, "budgets", None)
    if budgets:
        from datetime import datetime, timedelta, timezone

        since = datetime.now(timezone.utc) - timedelta(seconds=budgets.max_window_s)
        n = budgets.seed_from_store(writer.store)  # hourly rollups where exact, raw rows otherwise
        log.info("budgets: seeded from %d ledger rollup and raw rows since %s", n, since.isoformat())
        cfg = settings.ledger

        def store() -> Any:  # seeds a cold shared (Redis) store from the rollups; its own connection
            return open_store(sqlite_dir=None if cfg.postgres_dsn else sqlite_dir(settings), postgres_dsn=cfg.postgres_dsn, migrate=False)

        budgets.ledger_store = store
    ctx.add_on_complete(writer.submit)
    log.info("ledger: %r", writer.store)
    return writer
