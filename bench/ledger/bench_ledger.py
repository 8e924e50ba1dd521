"""Ledger benchmark: `report` latency over 1 M and 10 M rows on SQLite and PostgreSQL, and the
writer's sustained insert rate with rollups on.

    .venv/bin/python bench/ledger/bench_ledger.py [--rows 1000000 --rows 10000000] [--stores sqlite,postgres]
                                                  [--writer-rows 200000] [--out bench/ledger/results]

For each store and size it
1. bulk-loads N generated rows spread evenly over the 30 days before now (executemany on SQLite,
   COPY on PostgreSQL; the real schema via ``open_store``), then builds the rollups with the same
   code as ``nadir-extproc ledger rebuild-rollups`` (timed: that is the one-time migration cost);
2. times the ``nadir-extproc report`` command (a subprocess, Python start-up included; median of 3)
   for the common groupings;
3. (on the first size) runs a ``LedgerWriter`` with rollups on against that ledger: pre-built
   rows are submitted as fast as possible into a queue large enough to drop none, and the rate is
   rows written / time until ``flush()`` returns.

PostgreSQL is a throwaway server (Debian's binaries, ``initdb`` in a temp folder, a free loopback
port, default durability: fsync on, ``synchronous_commit`` on; ``shared_buffers=512MB``).

Generated traffic (``gen``): 400 API keys, each owned by one team (12), feature (25) and env (3)
and using 3 of 8 models; 5 000 users; 20 % of rows carry an allowed ``project`` tag (20 values);
95 % ok / 3 % provider error / 2 % cut streams; 3 % unpriced; costs = tokens x per-token rates,
exact. Targets (issue 20): ``--by team --by day`` over 10 M rows <= 3 s on both stores; one month
``--by key_id`` <= 3 s; writer >= 5 000 rows/s. Writes ``<out>/ledger-<date>.{md,json}``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nadir_extproc.ledger import rollup as ru  # noqa: E402
from nadir_extproc.ledger.schema import COLUMNS, TABLE, LedgerRow  # noqa: E402
from nadir_extproc.ledger.store import PICO_COLUMNS, open_store  # noqa: E402
from nadir_extproc.stack import free_port  # noqa: E402

CLI = [sys.executable, "-m", "nadir_extproc.cli"]
MODELS = [  # (served model, provider, input pico-USD/token, output pico-USD/token)
    ("gpt-4o-mini-2024-07-18", "openai", 150_000, 600_000), ("gpt-4o-2024-08-06", "openai", 2_500_000, 10_000_000),
    ("gpt-4.1-mini-2025-04-14", "openai", 400_000, 1_600_000), ("claude-haiku-4-5-20251001", "anthropic", 1_000_000, 5_000_000),
    ("claude-sonnet-4-5-20250929", "anthropic", 3_000_000, 15_000_000), ("gemini-2.5-flash", "google", 300_000, 2_500_000),
    ("gemini-2.5-pro", "google", 1_250_000, 10_000_000), ("gpt-4.1-2025-04-14", "openai", 2_000_000, 8_000_000),
]
GROUPINGS = [
    ("total (no --by)", []),
    ("--by team --by day", ["--by", "team", "--by", "day"]),
    ("--by key_id, one month (--since 30d)", ["--by", "key_id", "--since", "30d"]),
    ("--by key_id, calendar month", ["--by", "key_id", "--since", "{month0}", "--until", "{month1}"]),
    ("--by model --by week", ["--by", "model", "--by", "week"]),
    ("--by feature --by month", ["--by", "feature", "--by", "month"]),
    ("--by tag:project --by day", ["--by", "tag:project", "--by", "day"]),
    ("--by team, last 7 days (--since 7d)", ["--by", "team", "--since", "7d"]),
    ("--by user, last day (raw rows)", ["--by", "user", "--since", "1d"]),
]


def pico_text(n: int) -> str:
    """Exact plain-decimal USD text of ``n`` pico-USD (as ``format_usd`` writes it)."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    whole, frac = divmod(n, 10**12)
    s = f"{whole}.{frac:012d}".rstrip("0").rstrip(".")
    return "0" if s == "0" else sign + s


class Gen:
    """Deterministic realistic traffic (see module doc)."""

    def __init__(self, seed: int = 20) -> None:
        r = self.rnd = random.Random(seed)
        self.keys = []
        for k in range(400):
            team = f"team-{r.randrange(12):02d}"
            feat = f"feature-{r.randrange(25):02d}"
            env = r.choice(["prod", "prod", "staging", "dev"])
            self.keys.append((f"{r.getrandbits(64):016x}", team, feat, env, r.sample(range(len(MODELS)), 3)))

    def values(self, n: int, t0: float, t1: float, start_index: int = 0):
        """``n`` rows evenly spread over [t0, t1) (epoch seconds), oldest first, as dicts of the raw
        columns (money as pico ints)."""
        r = self.rnd
        step = (t1 - t0) / n
        for i in range(n):
            key, team, feat, env, models = self.keys[int(r.paretovariate(1.2) * 7) % 400]
            model, provider, rin, rout = MODELS[models[0] if r.random() < 0.7 else r.choice(models)]
            u = r.random()
            status = "ok" if u < 0.95 else ("provider_error" if u < 0.98 else "cut_stream")
            unc, cr, out = r.randrange(50, 8000), (r.randrange(0, 4000) if r.random() < 0.3 else 0), r.randrange(10, 2000)
            if status == "provider_error" or r.random() < 0.03:
                cost = saved = None
                reason = "provider_error" if status == "provider_error" else "unknown_model"
            else:
                cost = unc * rin + cr * rin // 10 + out * rout
                saved = (unc + cr) * 2_500_000 + out * 10_000_000 - cost
                reason = None
            tags = {"team": team, "feature": feat, "env": env, "user": f"user-{r.randrange(5000)}"}
            if r.random() < 0.2:
                tags["project"] = f"project-{r.randrange(20):02d}"
            yield {
                "ts": t0 + i * step, "request_id": f"{start_index + i:032x}", "provider": provider, "served_model": model,
                "unc": unc, "cr": cr, "out": out, "cost": cost, "saved": saved, "reason": reason, "status": status,
                "key_id": key, "tags": tags,
            }

    def ledger_rows(self, n: int, t0: float, t1: float) -> list[LedgerRow]:
        out = []
        for v in self.values(n, t0, t1, start_index=10**12):
            cost = Decimal(v["cost"]).scaleb(-12) if v["cost"] is not None else None
            saved = Decimal(v["saved"]).scaleb(-12) if v["saved"] is not None else None
            out.append(LedgerRow(
                ts=datetime.fromtimestamp(v["ts"], timezone.utc), request_id=v["request_id"], dialect="openai_chat",
                provider=v["provider"], requested_model="auto", served_model=v["served_model"], uncached_input_tokens=v["unc"],
                cache_read_tokens=v["cr"], cache_write_tokens=0, cache_write_1h_tokens=0, output_tokens=v["out"],
                reasoning_tokens=0, cost_usd=cost, baseline_usd=(cost + saved) if cost is not None else None, saved_usd=saved,
                unpriced_reason=v["reason"], status=v["status"], http_status=200 if v["status"] != "provider_error" else 500,
                latency_ms=1.2, duration_ms=850.0, key_id=v["key_id"], tags=v["tags"],
            ))
        return out


def raw_tuple(v: dict, kind: str) -> tuple:
    """One generated row in ``COLUMNS`` order (plus SQLite's pico twins)."""
    cost, saved = v["cost"], v["saved"]
    base = cost + saved if cost is not None else None
    if kind == "sqlite":
        ts = datetime.fromtimestamp(v["ts"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        money = [pico_text(x) if x is not None else None for x in (cost, base, saved)]
    else:
        ts = datetime.fromtimestamp(v["ts"], timezone.utc).isoformat()
        money = [pico_text(x) if x is not None else None for x in (cost, base, saved)]
    t = v["tags"]
    row = (ts, v["request_id"], None, "openai_chat", v["provider"], "auto", v["served_model"], "weak", 0.2, "short", "onnx",
           v["unc"], v["cr"], 0, 0, v["out"], 0, money[0], money[1], money[2], v["reason"], v["status"],
           500 if v["status"] == "provider_error" else 200, 0 if kind == "sqlite" else False, 1.2, 850.0, v["key_id"],
           t.get("user"), t.get("feature"), t.get("team"), t.get("env"), t.get("session"), json.dumps(t, sort_keys=True))
    if kind == "sqlite":
        row += (cost, base, saved)
    return row


def bulk_load(store, n: int, t0: float, t1: float, gen: Gen) -> float:
    """Load ``n`` generated rows the fast way; returns seconds."""
    start = time.perf_counter()
    chunk = 200_000
    it = gen.values(n, t0, t1)
    if store.kind == "sqlite":
        c = store.conn
        c.execute("PRAGMA cache_size=-1000000")
        cols = [*COLUMNS, *PICO_COLUMNS]
        sql = f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        while True:
            batch = [raw_tuple(v, "sqlite") for _, v in zip(range(chunk), it)]
            if not batch:
                break
            c.execute("BEGIN")
            c.executemany(sql, batch)
            c.execute("COMMIT")
    else:
        from datetime import date

        months = set()
        d = datetime.fromtimestamp(t0, timezone.utc).date().replace(day=1)
        while d <= datetime.fromtimestamp(t1, timezone.utc).date():
            months.add(d)
            d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
        with store.conn.transaction():
            store._ensure_partitions(months)
        while True:
            batch = [raw_tuple(v, "postgres") for _, v in zip(range(chunk), it)]
            if not batch:
                break
            with store.conn.transaction(), store.conn.cursor() as cur:
                with cur.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                    for row in batch:
                        cp.write_row(row)
        store.conn.execute(f"ANALYZE {TABLE}")
    return time.perf_counter() - start


def time_cmd(args: list[str], runs: int = 3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run([*CLI, "report", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise RuntimeError(f"report {args} failed: {p.stderr[-2000:]}")
        out = p.stdout
    return statistics.median(times), out


def writer_rate(store, gen: Gen, n: int, t1: float) -> dict:
    from nadir_extproc.ledger.writer import LedgerWriter

    rows = gen.ledger_rows(n, t1 - 3600, t1)  # the last hour: rollup rows of today get updated, as in service
    class Keep:  # the writer closes its store on close(); keep ours open for the caller
        def __init__(self, s):
            self.s = s

        def __getattr__(self, name):
            return getattr(self.s, name)

        def close(self):
            pass

    w = LedgerWriter(Keep(store), queue_size=n + 10, batch_size=500, flush_interval_s=1.0)
    t, c = time.perf_counter(), time.process_time()
    for r in rows:
        w.submit(r)
    assert w.flush(None)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    w.close()
    # CPU seconds of this process (writer thread + the submitting loop; the database server's
    # own CPU not included): what the rate would be with a core to itself, on a shared machine.
    return {"rows": n, "seconds": round(dt, 2), "rows_per_s": round(n / dt), "cpu_s": round(dc, 2),
            "rows_per_cpu_s": round(n / dc), "dropped": w.dropped, "failed": w.failed, "batch_size": 500}


class Postgres:
    """A throwaway PostgreSQL server (as tests/ledger/conftest.py starts one)."""

    def __enter__(self) -> str:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
        self.bin = Path(found[-1]).parent
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="nadir-bench-pg-", dir=os.environ.get("BENCH_TMP")))
        if self.user:
            import pwd

            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self._run([str(self.bin / "initdb"), "-D", str(self.root / "data"), "-A", "trust", "-U", "nadir", "-E", "UTF8"])
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c max_wal_size=8GB "
                f"-c work_mem=64MB -c maintenance_work_mem=512MB")
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-o", opts, "-l", str(self.root / "log"), "-w", "start"])
        self.version = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
        return f"postgresql://nadir@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str]) -> None:
        if self.user:
            args = ["runuser", "-u", self.user, "--", *args]
        subprocess.run(args, check=True, capture_output=True, timeout=300)

    def __exit__(self, *exc) -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def bench_store(kind: str, n: int, dsn: str | None, with_writer: int, now: float) -> dict:
    import psycopg

    t0, t1 = now - 30 * 86400, now
    gen = Gen()
    tmp = None
    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="nadir-bench-sqlite-", dir=os.environ.get("BENCH_TMP")))
        store = open_store(sqlite_dir=tmp)
        target = ["--sqlite-dir", str(tmp)]
    else:
        name = f"bench_{n}"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
        db = dsn.rsplit("/", 1)[0] + "/" + name
        store = open_store(postgres_dsn=db)
        target = ["--dsn", db]
    res: dict = {"store": kind, "rows": n}
    try:
        res["bulk_load_s"] = round(bulk_load(store, n, t0, t1, gen), 1)
        t = time.perf_counter()
        store.rebuild_rollups()
        if kind == "postgres":
            store.conn.execute(f"ANALYZE {ru.DAILY}")
            store.conn.execute(f"ANALYZE {ru.DAILY_TAG}")
        res["rollup_rebuild_s"] = round(time.perf_counter() - t, 1)
        res["rollup_rows"] = store._query(f"SELECT count(*) FROM {ru.DAILY}")[0][0]
        res["rollup_tag_rows"] = store._query(f"SELECT count(*) FROM {ru.DAILY_TAG}")[0][0]
        if kind == "sqlite":
            res["file_gb"] = round((tmp / "ledger.sqlite3").stat().st_size / 1e9, 2)
        else:
            res["db_gb"] = round(store._query("SELECT pg_database_size(current_database())")[0][0] / 1e9, 2)
        now_d = datetime.fromtimestamp(now, timezone.utc)
        m0 = now_d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        m_prev = (m0 - timedelta(days=1)).replace(day=1)
        fill = {"month0": m_prev.date().isoformat(), "month1": m0.date().isoformat()}
        res["report_s"] = {}
        for label, args in GROUPINGS:
            a = [x.format(**fill) for x in args]
            secs, _ = time_cmd([*target, *a, "--format", "json"])
            res["report_s"][label] = round(secs, 2)
            print(f"  {kind} {n:>9,} {label:<40} {secs:6.2f} s", flush=True)
        t = time.perf_counter()
        subprocess.run([*CLI, "--help"], capture_output=True, check=True)
        res["cli_startup_s"] = round(time.perf_counter() - t, 2)
        if with_writer:
            res["writer"] = writer_rate(store, gen, with_writer, now)
            print(f"  {kind} writer: {res['writer']}", flush=True)
    finally:
        store.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        elif kind == "postgres":
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS bench_{n}")
    return res


def write_results(out: Path, results: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (out / f"ledger-{day}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [f"# Ledger benchmark ({meta['when']})", "", f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}. {meta['postgres']}; SQLite {meta['sqlite']}. Rows spread over the 30 days before the run "
             "(see the generator in bench_ledger.py). Report times are the `nadir-extproc report ... --format json` command, "
             "median of 3, Python start-up included (`cli_startup_s`).", ""]
    labels = [g[0] for g in GROUPINGS]
    heads = [f"{r['store']} {r['rows']:,}" for r in results]
    lines += ["## report latency (s)", "", "| grouping | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for lb in labels:
        lines.append(f"| {lb} | " + " | ".join(f"{r['report_s'].get(lb, float('nan')):.2f}" for r in results) + " |")
    lines.append("| (CLI start-up alone) | " + " | ".join(f"{r['cli_startup_s']:.2f}" for r in results) + " |")
    lines += ["", "## loading and rollups", "", "| store | rows | bulk load s | rollup rebuild s | rollup rows | tag rollup rows | size GB |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['store']} | {r['rows']:,} | {r['bulk_load_s']} | {r['rollup_rebuild_s']} | {r['rollup_rows']:,} | "
                     f"{r['rollup_tag_rows']:,} | {r.get('file_gb', r.get('db_gb'))} |")
    w = [r for r in results if "writer" in r]
    if w:
        lines += ["", "## writer, rollups on (LedgerWriter, batch 500, into the loaded ledger)", "",
                  "| store | ledger rows | rows written | wall s | rows/s (wall) | writer CPU s | rows per CPU s | dropped | failed |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in w:
            x = r["writer"]
            lines.append(f"| {r['store']} | {r['rows']:,} | {x['rows']:,} | {x['seconds']} | {x['rows_per_s']:,} | {x.get('cpu_s', '-')} | "
                         f"{x.get('rows_per_cpu_s', 0):,} | {x['dropped']} | {x['failed']} |")
    (out / f"ledger-{day}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="ledger sizes (repeatable; default 1000000)")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--writer-rows", type=int, default=200_000, help="rows for the writer rate (on the first size; 0: skip)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "ledger" / "results")
    ap.add_argument("--merge", action="store_true", help="add to today's results file instead of replacing it")
    a = ap.parse_args()
    sizes = a.rows or [1_000_000]
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    import sqlite3

    now = time.time()
    results: list[dict] = []
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": "python bench/ledger/" + " ".join(
        [Path(sys.argv[0]).name, *sys.argv[1:]]), "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "sqlite": sqlite3.sqlite_version, "postgres": "PostgreSQL (not run)"}
    pg = Postgres() if "postgres" in stores else None
    dsn = pg.__enter__() if pg else None
    if pg:
        meta["postgres"] = pg.version
    try:
        for i, n in enumerate(sizes):
            for kind in stores:
                results.append(bench_store(kind, n, dsn, a.writer_rows if i == 0 else 0, now))
    finally:
        if pg:
            pg.__exit__(None, None, None)
    if a.merge:
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        old = a.out / f"ledger-{day}.json"
        if old.is_file():
            prev = json.loads(old.read_text())
            results = prev["results"] + results
            meta["command"] = prev["meta"]["command"] + "` then `" + meta["command"]
    write_results(a.out, results, meta)
    print(f"wrote {a.out}/ledger-*.md", flush=True)


if __name__ == "__main__":
    main()
