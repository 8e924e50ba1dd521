"""Ledger stores: SQLite (embedded default, WAL) and PostgreSQL (fleets of sidecars), same schema.

Both apply the versioned migrations of ``schema.MIGRATIONS`` on ``migrate()`` (idempotent; the
applied versions are recorded in ``nadir_schema_version``; PostgreSQL serialises concurrent
sidecars with an advisory lock). A store is used by one thread at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from nadir_extproc.ledger.schema import COLUMNS, LATEST, MIGRATIONS, TABLE, VERSION_TABLE, LedgerRow, from_db, statements, to_db

SQLITE_FILE = "ledger.sqlite3"
#: Key of the PostgreSQL advisory lock taken while migrating (any constant shared by all sidecars).
_PG_LOCK = 0x6E61646972  # "nadir"


class Store(Protocol):
    """What the writer and the report need from a store."""

    kind: str

    def migrate(self) -> int:
        """Apply missing migrations; returns the schema version now in force."""

    def schema_version(self) -> int:
        """Highest applied migration (0 for an empty database)."""

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        """Write ``rows`` in one transaction (all or none)."""

    def rows(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRow]:
        """Rows with ``since <= ts < until`` (either bound optional), oldest first."""

    def close(self) -> None:
        """Release the connection."""


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


class SQLiteStore:
    """The ledger in ``<directory>/ledger.sqlite3`` (WAL journal, 5 s busy timeout so several
    processes can share the file). Money is stored as plain decimal TEXT, times as UTC ISO TEXT."""

    kind = "sqlite"

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / SQLITE_FILE
        self.conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def schema_version(self) -> int:
        has = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (VERSION_TABLE,)).fetchone()
        if not has:
            return 0
        return self.conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]

    def migrate(self) -> int:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")  # one migrating process at a time
        try:
            c.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            have = c.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]
            for v, _ in MIGRATIONS:
                if v > have:
                    for stmt in statements(self.kind, v):
                        c.execute(stmt)
                    c.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?, ?)", (v, datetime.now(timezone.utc).isoformat()))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return LATEST

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        if not rows:
            return
        sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(sql, [to_db(r, text_money=True, text_time=True) for r in rows])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def rows(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRow]:
        where, args = [], []
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        if since is not None:
            where.append("ts >= ?")
            args.append(_utc(since).strftime(fmt))
        if until is not None:
            where.append("ts < ?")
            args.append(_utc(until).strftime(fmt))
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY ts"
        cur = self.conn.execute(sql, args)
        while batch := cur.fetchmany(1000):
            for values in batch:
                yield from_db(values)

    def close(self) -> None:
        self.conn.close()


class PostgresStore:
    """The ledger in PostgreSQL (``dsn`` as libpq takes it: ``postgresql://user@host:port/db``).
    Money is ``NUMERIC``, times ``TIMESTAMPTZ``. Needs ``psycopg`` (the ``postgres`` extra);
    raises ``RuntimeError`` without it, ``psycopg.OperationalError`` when the server is unreachable."""

    kind = "postgres"

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg  # only needed for PostgreSQL
        except ImportError as e:
            raise RuntimeError("ledger.postgres_dsn needs psycopg: pip install 'nadir-extproc[postgres]'") from e

        self._psycopg = psycopg
        self._dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def __repr__(self) -> str:  # never show the DSN (it may hold a password)
        info = self.conn.info
        return f"PostgresStore(host={info.host!r}, port={info.port}, dbname={info.dbname!r})"

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
            have = self.conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()[0]
            for v, _ in MIGRATIONS:
                if v > have:
                    for stmt in statements(self.kind, v):
                        self.conn.execute(stmt)
                    self.conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (v,))
        return LATEST

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        if not rows:
            return
        sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        with self.conn.transaction():
            with self.conn.cursor() as cur:
                cur.executemany(sql, [to_db(r, text_money=False, text_time=False) for r in rows])

    def rows(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[LedgerRow]:
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("ts >= %s")
            args.append(_utc(since))
        if until is not None:
            where.append("ts < %s")
            args.append(_utc(until))
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY ts"
        with self.conn.transaction():
            with self.conn.cursor(name="nadir_ledger_rows") as cur:  # server-side: streams rows
                cur.execute(sql, args)
                while batch := cur.fetchmany(1000):
                    for values in batch:
                        yield from_db(values)

    def reconnect(self) -> None:
        """Open a fresh connection after a failure (same DSN)."""
        try:
            self.conn.close()
        finally:
            self.conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)

    def close(self) -> None:
        self.conn.close()


def open_store(*, sqlite_dir: str | Path | None = None, postgres_dsn: str | None = None, migrate: bool = True) -> SQLiteStore | PostgresStore:
    """PostgreSQL when ``postgres_dsn`` is given, else SQLite in ``sqlite_dir``; migrated unless
    ``migrate=False``. Raises ``ValueError`` with neither, ``OSError``/``sqlite3.Error``/
    ``psycopg.Error`` when the store cannot be opened."""
    if postgres_dsn:
        store: SQLiteStore | PostgresStore = PostgresStore(postgres_dsn)
    elif sqlite_dir:
        store = SQLiteStore(sqlite_dir)
    else:
        raise ValueError("ledger: set sqlite_dir or postgres_dsn")
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
