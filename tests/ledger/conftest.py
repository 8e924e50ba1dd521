"""Stores under test: SQLite in a temp folder, and a real throwaway PostgreSQL server.

The PostgreSQL server is started once per test session with ``initdb`` + ``pg_ctl`` from
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package; ``.ci/run`` installs it) on a free
loopback port in a temp folder, as the ``postgres`` user when we are root (PostgreSQL refuses to
run as root), and stopped afterwards. Without the binaries the PostgreSQL tests skip, saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from nadir_extproc.stack import free_port


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[3]) if Path(p).parts[3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _run(args: list[str], user: str | None) -> subprocess.CompletedProcess:
    if user:
        args = ["runuser", "-u", user, "--", *args]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def pg_server():
    """``postgresql://`` DSN of the throwaway server's ``postgres`` database."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install 'psycopg[binary]')")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            import pwd

            pw = pwd.getpwnam(user)
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
    root = Path(tempfile.mkdtemp(prefix="nadir-pg-"))
    data = root / "data"
    if user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = free_port()
    r = _run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "nadir", "-E", "UTF8", "--no-sync"], user)
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    r = _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "server.log"), "-w", "-t", "60", "start"], user)
    if r.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {r.stdout[-2000:]}{r.stderr[-2000:]}{log[-2000:]}")
    try:
        yield f"postgresql://nadir@127.0.0.1:{port}/postgres"
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server):
    """A fresh, empty database on the throwaway server for one test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield pg_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """An empty, migrated store of each kind."""
    from nadir_extproc.ledger.store import open_store

    if request.param == "sqlite":
        s = open_store(sqlite_dir=tmp_path / "ledger")
    else:
        s = open_store(postgres_dsn=request.getfixturevalue("pg_dsn"))
    yield s
    try:
        s.close()
    except Exception:  # noqa: BLE001 — already closed by the test
        pass
