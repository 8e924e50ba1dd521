"""Writer-only A/B loop: the ledger writer's rate with rollups on, without loading a big ledger.

    .venv/bin/python bench/ledger/writer_ab.py [--stores sqlite,postgres] [--rows 40000] [--batch 2000] [--repeat 3]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/ledger/writer_ab.py …   # the same loop over other code

Each repeat writes ``--rows`` generated rows (``bench_ledger.Gen``: the traffic of the full
benchmark, all in the hour before now) through a ``LedgerWriter`` into a fresh, empty ledger
(SQLite in a temp folder; a database on a throwaway PostgreSQL server with default durability)
and prints wall rows/s, this process's CPU and PostgreSQL's server CPU (``bench_ledger.server_cpu``).
The nadir_extproc imported is the first on ``sys.path`` (``PYTHONPATH`` wins), so one command
measures two versions of the store on the same rows, one after the other. Not a results file:
the full run is ``bench_ledger.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if os.environ.get("PYTHONPATH"):
    sys.path.insert(0, os.environ["PYTHONPATH"].split(":")[0])
else:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nadir_extproc  # noqa: E402  (before bench_ledger, which puts its own checkout first on sys.path)
import nadir_extproc.ledger.writer  # noqa: E402, F401
from nadir_extproc.ledger.store import open_store  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ledger as bl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the service's ledger.batch_size)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    print(f"code: {Path(nadir_extproc.__file__).parent}", flush=True)
    now = time.time()
    rows = bl.Gen().ledger_rows(a.rows, now - 3600, now)
    pg = bl.Postgres() if "postgres" in stores else None
    dsn = pg.__enter__() if pg else None
    try:
        for kind in stores:
            for i in range(a.repeat):
                tmp = None
                if kind == "sqlite":
                    tmp = tempfile.mkdtemp(prefix="nadir-writer-ab-", dir=os.environ.get("BENCH_TMP"))
                    store = open_store(sqlite_dir=tmp)
                else:
                    import psycopg

                    with psycopg.connect(dsn, autocommit=True) as c:
                        c.execute("DROP DATABASE IF EXISTS writer_ab")
                        c.execute("CREATE DATABASE writer_ab")
                    store = open_store(postgres_dsn=dsn.rsplit("/", 1)[0] + "/writer_ab")
                try:
                    res = bl.writer_rate(store, None, a.rows, now, batch=a.batch, rows=rows)
                finally:
                    store.close()
                    if tmp:
                        shutil.rmtree(tmp, ignore_errors=True)
                print(kind, json.dumps(res), flush=True)
    finally:
        if pg:
            pg.__exit__(None, None, None)


if __name__ == "__main__":
    main()
