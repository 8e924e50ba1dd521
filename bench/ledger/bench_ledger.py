"""Ledger benchmark: `report` latency over 1 M and 10 M rows on SQLite and PostgreSQL, and the
writer's sustained insert rate with rollups on.

    .venv/bin/python bench/ledger/bench_ledger.py [--rows 1000000 --rows 10000000] [--stores sqlite,postgres]
                                                  [--writer-rows 200000] [--out bench/ledger/results]

For each store and size it
1. bulk-loads N generated rows spread evenly over the 30 days before now, generated inside each
   database by one INSERT … SELECT per million rows (``generate_sql``: a recursive CTE on SQLite,
   ``generate_series`` on PostgreSQL; the same rows on both, into the real schema made by
   ``open_store``), then builds the rollups with the same code as ``nadir-extproc ledger
   rebuild-rollups`` (timed: that is the one-time migration cost);
2. times the ``nadir-extproc report`` command (a subprocess, Python start-up included; median of 3;
   wall and CPU time) and ``report.from_store`` in-process, for the common groupings;
3. (on the first size) runs a ``LedgerWriter`` with rollups on against that ledger: pre-built
   rows are submitted as fast as possible into a queue large enough to drop none, and the rate is
   rows written / time until ``flush()`` returns.

PostgreSQL is a throwaway server (Debian's binaries, ``initdb`` in a temp folder, a free loopback
port, default durability: fsync on, ``synchronous_commit`` on; ``shared_buffers=512MB``).

Generated traffic (``Gen`` + ``generate_sql``): 400 API keys (a few carry most traffic), each owned
by one team (12), feature (25) and env (3) and using 3 of 8 models (70 % its first); 5 000 users;
20 % of rows carry an allowed ``project`` tag (5 values); 95 % ok / 3 % provider error / 2 % cut
streams; 3 % of the rest unknown-model (unpriced); costs = tokens x per-token rates, exact. The
writer-rate rows are built in Python (``Gen.ledger_rows``) as ``LedgerRow`` objects. Targets (issue 20): ``--by team --by day`` over 10 M rows <= 3 s on both stores; one month
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
KEEP_ROLLUPS = False  # --keep-rollups
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
           None, None, None, None, None,  # shadow routing: auto requests are never scored in shadow
           t.get("user"), t.get("feature"), t.get("team"), t.get("env"), t.get("session"), json.dumps(t, sort_keys=True))
    if kind == "sqlite":
        row += (cost, base, saved, None, None)
    return row


def _h(i: str, j: int) -> str:
    """A cheap deterministic pseudo-random non-negative integer of row ``i`` (SQL, both stores)."""
    return f"((({i} + 1) * {2654435761 + 40503 * j} + {j * 97}) % 4294967291)"


def _pico_text_sql(c: str) -> str:
    return (f"CASE WHEN {c} IS NULL THEN NULL WHEN {c} = 0 THEN '0' ELSE (CASE WHEN {c} < 0 THEN '-' ELSE '' END) || "
            f"rtrim(rtrim(printf('%d.%012d', abs({c}) / 1000000000000, abs({c}) % 1000000000000), '0'), '.') END")


def generate_sql(kind: str, lo: int, hi: int, t0_us: int, step_us: int) -> str:
    """INSERT … SELECT generating rows ``lo..hi-1`` inside the database (the same rows on both
    stores): keys and models from the ``bench_keys`` / ``bench_models`` tables ``Gen`` fills."""
    sq = kind == "sqlite"
    series = (f"WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi - 1})" if sq
              else f"WITH s(i) AS (SELECT generate_series({lo}::bigint, {hi - 1}::bigint))")
    h = lambda j: _h("s.i", j)  # noqa: E731
    kidx = f"(({h(1)} % 400) * ({h(1)} % 400) / 400)"  # skewed: a few keys carry most traffic
    pick = f"CASE WHEN {h(2)} % 10 < 7 THEN k.m0 WHEN {h(3)} % 2 = 0 THEN k.m1 ELSE k.m2 END"
    rows = (f"{series}, r AS (SELECT s.i AS i, k.key_id, k.team, k.feature, k.env, {pick} AS m, "
            f"CASE WHEN {h(4)} % 100 < 95 THEN 'ok' WHEN {h(4)} % 100 < 98 THEN 'provider_error' ELSE 'cut_stream' END AS status, "
            f"50 + {h(5)} % 7950 AS unc, CASE WHEN {h(6)} % 10 < 3 THEN {h(6)} % 4000 ELSE 0 END AS cr, 10 + {h(7)} % 1990 AS out, "
            f"{h(8)} % 100 AS up, {h(9)} % 5000 AS usr, {h(10)} % 25 AS proj "
            f"FROM s JOIN bench_keys k ON k.k = {kidx}), "
            f"q AS (SELECT r.*, m.model, m.provider, CASE WHEN r.status = 'provider_error' OR r.up < 3 THEN NULL "
            f"ELSE r.unc * m.rin + r.cr * m.rin / 10 + r.out * m.rout END AS cost FROM r JOIN bench_models m ON m.m = r.m), "
            f"z AS (SELECT q.*, CASE WHEN cost IS NULL THEN NULL ELSE (unc + cr) * 2500000 + out * 10000000 - cost END AS saved FROM q)")
    if sq:
        ts = (f"strftime('%Y-%m-%dT%H:%M:%S', ({t0_us} + i * {step_us}) / 1000000, 'unixepoch') || '.' || "
              f"printf('%06d', ({t0_us} + i * {step_us}) % 1000000) || 'Z'")
        rid = "printf('%032x', i)"
        user = "'user-' || usr"
        proj = "CASE WHEN proj < 5 THEN printf('project-%02d', proj) END"
        tags = (f"CASE WHEN proj < 5 THEN json_object('env', env, 'feature', feature, 'project', {proj}, 'team', team, 'user', {user}) "
                f"ELSE json_object('env', env, 'feature', feature, 'team', team, 'user', {user}) END")
        money = [_pico_text_sql("cost"), _pico_text_sql("(cost + saved)"), _pico_text_sql("saved")]
        extra_cols, extra_vals = ", " + ", ".join(PICO_COLUMNS[:3]), ", cost, cost + saved, saved"  # shadow columns: NULL
        stream = "0"
    else:
        ts = f"'epoch'::timestamptz + ({t0_us} + i * {step_us}) * interval '1 microsecond'"
        rid = "lpad(to_hex(i), 32, '0')"
        user = "'user-' || usr"
        proj = "CASE WHEN proj < 5 THEN 'project-' || lpad(proj::text, 2, '0') END"
        tags = (f"(CASE WHEN proj < 5 THEN json_build_object('env', env, 'feature', feature, 'project', {proj}, 'team', team, 'user', {user}) "
                f"ELSE json_build_object('env', env, 'feature', feature, 'team', team, 'user', {user}) END)::text")
        money = ["cost * 0.000000000001", "(cost + saved) * 0.000000000001", "saved * 0.000000000001"]
        extra_cols, extra_vals = "", ""
        stream = "false"
    reason = "CASE WHEN status = 'provider_error' THEN 'provider_error' WHEN cost IS NULL THEN 'unknown_model' END"
    vals = [ts, rid, "NULL", "'openai_chat'", "provider", "'auto'", "model", "'weak'", "0.2", "'short'", "'onnx'",
            "unc", "cr", "0", "0", "out", "0", money[0], money[1], money[2], reason, "status",
            "CASE WHEN status = 'provider_error' THEN 500 ELSE 200 END", stream, "1.2", "850.0", "key_id",
            "NULL", "NULL", "NULL", "NULL", "NULL",  # shadow routing columns
            user, "feature", "team", "env", "NULL", tags]
    assert len(vals) == len(COLUMNS)
    return f"{rows} INSERT INTO {TABLE} ({', '.join(COLUMNS)}{extra_cols}) SELECT {', '.join(vals)}{extra_vals} FROM z" if sq else \
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) {rows} SELECT {', '.join(vals)} FROM z"


def bulk_load(stores: list, n: int, t0: float, t1: float, gen: Gen) -> tuple[dict[str, float], float]:
    """Load ``n`` generated rows into every store, generated inside each database
    (``generate_sql``: the same rows on both). Returns ({kind: seconds}, 0)."""
    chunk = 1_000_000
    t0_us, step_us = int(t0 * 1e6), max(1, int((t1 - t0) * 1e6) // n)
    spent = {}
    for s in stores:
        start = time.perf_counter()
        ph = s.dl.ph
        s.conn.execute("DROP TABLE IF EXISTS bench_keys")
        s.conn.execute("DROP TABLE IF EXISTS bench_models")
        s.conn.execute("CREATE TABLE bench_keys (k INTEGER PRIMARY KEY, key_id TEXT, team TEXT, feature TEXT, env TEXT, m0 INTEGER, m1 INTEGER, m2 INTEGER)")
        s.conn.execute("CREATE TABLE bench_models (m INTEGER PRIMARY KEY, model TEXT, provider TEXT, rin BIGINT, rout BIGINT)")
        for k, (key, team, feat, env, ms) in enumerate(gen.keys):
            s.conn.execute(f"INSERT INTO bench_keys VALUES ({', '.join([ph] * 8)})", [k, key, team, feat, env, *ms])
        for m, (model, provider, rin, rout) in enumerate(MODELS):
            s.conn.execute(f"INSERT INTO bench_models VALUES ({', '.join([ph] * 5)})", [m, model, provider, rin, rout])
        indexes = []
        if s.kind == "sqlite":
            s.conn.execute("PRAGMA cache_size=-1000000")
            # Build the time/key/team/cost indexes once after the load (one sort each) instead of
            # 4 random-order index inserts per row; the store's own writes keep them as usual.
            indexes = s._query(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = '{TABLE}' AND sql IS NOT NULL")
            for name, _ in indexes:
                s.conn.execute(f"DROP INDEX {name}")
        else:
            from datetime import date

            indexes = s._query(f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename = '{TABLE}'")
            for name, _ in indexes:
                s.conn.execute(f"DROP INDEX {name}")
            months = set()
            d = datetime.fromtimestamp(t0, timezone.utc).date().replace(day=1)
            while d <= datetime.fromtimestamp(t1, timezone.utc).date():
                months.add(d)
                d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
            with s.conn.transaction():
                s._ensure_partitions(months)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            if s.kind == "sqlite":
                s.conn.execute("BEGIN")
                s.conn.execute(generate_sql("sqlite", lo, hi, t0_us, step_us))
                s.conn.execute("COMMIT")
            else:
                with s.conn.transaction():
                    s.conn.execute(generate_sql("postgres", lo, hi, t0_us, step_us))
            print(f"  {s.kind}: {hi:,} rows loaded ({time.perf_counter() - start:.0f} s)", flush=True)
        for _, sql in indexes:
            s.conn.execute(sql.replace(" ON ONLY ", " ON "))  # pg_indexes shows a partitioned index as ON ONLY
        if s.kind == "postgres":
            s.conn.execute(f"ANALYZE {TABLE}")
        else:
            s.conn.execute("ANALYZE")
        spent[s.kind] = time.perf_counter() - start
        print(f"  {s.kind}: loaded and indexed in {spent[s.kind]:.0f} s", flush=True)
    return spent, 0.0


def time_cmd(args: list[str], runs: int = 3) -> tuple[float, float, str]:
    """Median wall time and median CPU time (user + system of the ``report`` process) of the
    command. On a shared machine the CPU time is what the command itself costs; PostgreSQL's own
    server CPU is not in it."""
    import resource

    times, cpus, out = [], [], ""
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run([*CLI, "report", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
        times.append(time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
        if p.returncode != 0:
            raise RuntimeError(f"report {args} failed: {p.stderr[-2000:]}")
        out = p.stdout
    return statistics.median(times), statistics.median(cpus), out


def time_inprocess(store, by: list[str], since, until, runs: int = 3) -> float:
    """Median wall time of ``report.from_store`` (the queries and their assembly, no start-up)."""
    from nadir_extproc.ledger import report as rp

    times = []
    for _ in range(runs):
        t = time.perf_counter()
        rp.from_store(store, by, since, until, top_n=10)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from ``/proc/<pid>/stat``."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(store) -> tuple[float, float] | None:
    """PostgreSQL: (CPU seconds of this connection's backend, of every server process: backends,
    WAL writer, checkpointer, …) so far; ``None`` for SQLite (its work is in this process's CPU)."""
    if store.kind != "postgres":
        return None
    backend = store.conn.info.backend_pid
    data = store._query("SHOW data_directory")[0][0]
    try:
        master = int(Path(data, "postmaster.pid").read_text().split()[0])
    except OSError:  # another user's files: the backend only
        return _cpu_of(backend), float("nan")
    total = _cpu_of(master)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                total += _cpu_of(int(d))
    return _cpu_of(backend), total


def writer_rate(store, gen: Gen, n: int, t1: float, batch: int | None = None, rows: list | None = None) -> dict:
    """Rows/s of a ``LedgerWriter`` (rollups on) writing ``n`` generated rows of the hour before
    ``t1`` into ``store`` as fast as it can: wall, this process's CPU (writer thread, SQLite's
    engine and the submitting loop) and, on PostgreSQL, the server's CPU (``server_cpu``)."""
    from nadir_extproc.ledger.writer import LedgerWriter

    if rows is None:
        rows = gen.ledger_rows(n, t1 - 3600, t1)  # the last hour: rollup rows of today get updated, as in service
    class Keep:  # the writer closes its store on close(); keep ours open for the caller
        def __init__(self, s):
            self.s = s

        def __getattr__(self, name):
            return getattr(self.s, name)

        def close(self):
            pass

    from nadir_extproc.config import LedgerSettings

    batch = batch or LedgerSettings().batch_size  # the service's default
    w = LedgerWriter(Keep(store), queue_size=n + 10, batch_size=batch, flush_interval_s=1.0)
    srv0 = server_cpu(store)
    load0 = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    for r in rows:
        w.submit(r)
    assert w.flush(None)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    srv1 = server_cpu(store)
    w.close()
    # CPU seconds of this process (writer thread + the submitting loop; the database server's
    # own CPU not included): what the rate would be with a core to itself, on a shared machine.
    out = {"rows": n, "seconds": round(dt, 2), "rows_per_s": round(n / dt), "cpu_s": round(dc, 2),
           "rows_per_cpu_s": round(n / dc), "dropped": w.dropped, "failed": w.failed, "batch_size": batch,
           "load_avg_1m": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    if srv0 and srv1:
        out["server_backend_cpu_s"] = round(srv1[0] - srv0[0], 2)
        out["server_cpu_s"] = round(srv1[1] - srv0[1], 2)
        out["rows_per_total_cpu_s"] = round(n / (dc + out["server_cpu_s"]))
    return out


class Postgres:
    """A throwaway PostgreSQL server (as tests/ledger/conftest.py starts one); kept in
    ``root_dir`` (and reused by the next run) when one is given."""

    def __init__(self, root_dir: Path | None = None) -> None:
        self.root_dir = root_dir

    def __enter__(self) -> str:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
        self.bin = Path(found[-1]).parent
        self.user = "postgres" if os.geteuid() == 0 else None
        self.keep = self.root_dir is not None
        if self.keep:
            self.root = self.root_dir
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = Path(tempfile.mkdtemp(prefix="nadir-bench-pg-", dir=os.environ.get("BENCH_TMP")))
        if self.user:
            import pwd

            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        if not (self.root / "data" / "PG_VERSION").is_file():
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
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def open_bench_store(kind: str, n: int, dsn: str | None, data_dir: Path | None = None):
    """(store, report CLI target args, SQLite folder or None, already loaded?). With ``data_dir``
    the loaded ledger is kept there (SQLite: ``<data_dir>/sqlite-<n>``; PostgreSQL: database
    ``bench_<n>`` of the server in ``<data_dir>/pg``) and a later run with the same ``data_dir``
    reuses it: the raw rows are not generated again (``open_store`` migrates it to this code's
    schema, then the rollups are rebuilt and timed as usual)."""
    import psycopg

    if kind == "sqlite":
        if data_dir is not None:
            tmp = data_dir / f"sqlite-{n}"
            loaded = (tmp / "loaded.json").is_file()
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp, loaded = Path(tempfile.mkdtemp(prefix="nadir-bench-sqlite-", dir=os.environ.get("BENCH_TMP"))), False
        return open_store(sqlite_dir=tmp, migrate=not loaded), ["--sqlite-dir", str(tmp)], tmp, loaded
    name = f"bench_{n}"
    loaded = data_dir is not None and (data_dir / f"pg-{n}.loaded.json").is_file()
    if not loaded:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
    db = dsn.rsplit("/", 1)[0] + "/" + name
    return open_store(postgres_dsn=db, migrate=not loaded), ["--dsn", db], None, loaded


def bench_size(kinds: list[str], n: int, dsn: str | None, with_writer: int, now: float, data_dir: Path | None = None,
               load_only: bool = False) -> list[dict]:
    import psycopg

    gen = Gen()
    opened = [open_bench_store(k, n, dsn, data_dir) for k in kinds]
    results = []
    marker = {"sqlite": lambda tmp: tmp / "loaded.json", "postgres": lambda tmp: data_dir / f"pg-{n}.loaded.json"}
    try:
        fresh = [o[0] for o in opened if not o[3]]
        t0, t1 = now - 30 * 86400, now
        spent, gen_s = bulk_load(fresh, n, t0, t1, gen) if fresh else ({}, 0.0)
        for store, _, tmp, loaded in opened:
            if data_dir is not None and not loaded:
                marker[store.kind](tmp).write_text(json.dumps({"rows": n, "now": now, "bulk_load_s": spent[store.kind]}))
        if load_only:
            return []
        for store, target, tmp, loaded in opened:
            load_s = spent.get(store.kind)
            data_now = now
            if loaded:
                m = json.loads(marker[store.kind](tmp).read_text())
                load_s, data_now = m["bulk_load_s"], m["now"]
            res = bench_loaded(store, target, tmp, n, load_s, gen_s, gen, with_writer, now)
            if loaded:
                res["data_loaded_before_s"] = round(now - data_now)  # rows end this long before the run
            results.append(res)
    finally:
        for store, _, tmp, _ in opened:
            store.close()
            if tmp and data_dir is None:
                shutil.rmtree(tmp, ignore_errors=True)
        if "postgres" in kinds and data_dir is None:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS bench_{n}")
    return results


def bench_loaded(store, target, tmp, n, load_s, gen_s, gen, with_writer, now) -> dict:
    kind = store.kind
    res: dict = {"store": kind, "rows": n, "bulk_load_s": round(load_s, 1), "generate_s": round(gen_s, 1),
                 "load_avg_start": [round(x, 1) for x in os.getloadavg()]}
    t = time.perf_counter()
    from nadir_extproc.ledger.store import LATEST

    before = store.schema_version()
    if before < LATEST:  # a kept ledger of an older schema: migrating it rebuilds the rollups
        store.migrate()
        res["migrated_from"] = before
    elif KEEP_ROLLUPS and store._query(f"SELECT count(*) FROM {ru.DAILY}")[0][0]:
        res["rollups_kept"] = True  # built by an earlier run or `ledger rebuild-rollups` on this kept ledger
    else:
        store.rebuild_rollups()
    if kind == "postgres":
        store.conn.execute(f"ANALYZE {ru.DAILY}")
        store.conn.execute(f"ANALYZE {ru.DAILY_TAG}")
    res["rollup_rebuild_s"] = "kept" if res.get("rollups_kept") else round(time.perf_counter() - t, 1)
    res["rollup_rows"] = store._query(f"SELECT count(*) FROM {ru.DAILY}")[0][0]
    res["rollup_tag_rows"] = store._query(f"SELECT count(*) FROM {ru.DAILY_TAG}")[0][0]
    if kind == "sqlite":
        res["file_gb"] = round((tmp / "ledger.sqlite3").stat().st_size / 1e9, 2)
    else:
        res["db_gb"] = round(store._query("SELECT pg_database_size(current_database())")[0][0] / 1e9, 2)
    print(f"  {kind} {n:>11,} rollups rebuilt in {res['rollup_rebuild_s']} s", flush=True)
    now_d = datetime.fromtimestamp(now, timezone.utc)
    m0 = now_d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # The calendar month holding most of the 30 days of rows: the current one (the 2026-11-30 run
    # used the previous month, which held only its last day of rows).
    m_next = (m0 + timedelta(days=32)).replace(day=1)
    fill = {"month0": m0.date().isoformat(), "month1": m_next.date().isoformat()}
    res["calendar_month"] = f"{fill['month0']} .. {fill['month1']}"
    res["report_s"], res["report_cpu_s"], res["from_store_s"] = {}, {}, {}
    from nadir_extproc.ledger.cli import parse_when

    for label, args in GROUPINGS:
        a = [x.format(**fill) for x in args]
        secs, cpu, _ = time_cmd([*target, *a, "--format", "json"])
        by = [a[i + 1] for i, x in enumerate(a) if x == "--by"]
        opt = {a[i]: a[i + 1] for i, x in enumerate(a) if x in ("--since", "--until")}
        t_now = datetime.now(timezone.utc)
        inproc = time_inprocess(store, by, parse_when(opt.get("--since"), "", t_now), parse_when(opt.get("--until"), "", t_now))
        res["report_s"][label], res["report_cpu_s"][label], res["from_store_s"][label] = round(secs, 2), round(cpu, 2), round(inproc, 3)
        print(f"  {kind} {n:>11,} {label:<40} {secs:6.2f} s wall, {cpu:5.2f} s CPU, in-process {inproc:6.3f} s", flush=True)
    res["load_avg_reports"] = [round(x, 1) for x in os.getloadavg()]
    t = time.perf_counter()
    subprocess.run([*CLI, "--help"], capture_output=True, check=True)
    res["cli_startup_s"] = round(time.perf_counter() - t, 2)
    if with_writer:
        res["writer"] = writer_rate(store, gen, with_writer, now)
        print(f"  {kind} writer: {res['writer']}", flush=True)
    return res


def write_results(out: Path, results: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (out / f"ledger-{day}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [f"# Ledger benchmark ({meta['when']})", "", f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']}. {meta['postgres']}; SQLite {meta['sqlite']}. Rows spread over the 30 days before the run "
             "(generated inside each database, the same rows on both; see `generate_sql`). Targets (issue 20): `--by team --by day` "
             "over 10 M rows <= 3 s on both stores; one month `--by key_id` <= 3 s; writer >= 5,000 rows/s with rollups on.", ""]
    labels = [g[0] for g in GROUPINGS]
    heads = [f"{r['store']} {r['rows']:,}" for r in results]
    lines += ["## report latency", "",
              "Each cell: `nadir-extproc report` wall seconds / its CPU seconds / `report.from_store` in-process seconds "
              "(the database work and assembly, no interpreter start-up). On this shared machine wall time includes waiting "
              "for a core; PostgreSQL's server CPU is in the wall and in-process times only.", "",
              "| grouping | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for lb in labels:
        lines.append(f"| {lb} | " + " | ".join(
            f"{r['report_s'].get(lb, float('nan')):.2f} / {r.get('report_cpu_s', {}).get(lb, float('nan')):.2f} / "
            f"{r.get('from_store_s', {}).get(lb, float('nan')):.2f}" for r in results) + " |")
    lines.append("| (`nadir-extproc --help`: start-up alone, wall) | " + " | ".join(f"{r['cli_startup_s']:.2f}" for r in results) + " |")
    lines.append("| (machine load average, 1/5/15 min, after the reports) | " + " | ".join(
        " / ".join(str(x) for x in r.get("load_avg_reports", [])) or "-" for r in results) + " |")
    lines += ["", "## loading and rollups", "", "(`bulk load s`: generating and inserting inside the database, secondary indexes built "
              "after the load; `rollup rebuild s`: `nadir-extproc ledger rebuild-rollups` over all rows, the one-time cost of upgrading a ledger.)", "",
              "| store | rows | bulk load s | rollup rebuild s | rollup rows | tag rollup rows | size GB |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['store']} | {r['rows']:,} | {r['bulk_load_s']} | {r['rollup_rebuild_s']} | {r['rollup_rows']:,} | "
                     f"{r['rollup_tag_rows']:,} | {r.get('file_gb', r.get('db_gb'))} |")
    w = [r for r in results if "writer" in r]
    if w:
        lines += ["", f"## writer, rollups on (LedgerWriter, batch {w[0]['writer'].get('batch_size', 500)}, into the loaded ledger)", "",
                  "| store | ledger rows | rows written | wall s | rows/s (wall) | writer CPU s | rows per CPU s | "
                  "PG backend CPU s | PG server CPU s (all processes) | rows per CPU s, writer + server | dropped | failed |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in w:
            x = r["writer"]
            lines.append(f"| {r['store']} | {r['rows']:,} | {x['rows']:,} | {x['seconds']} | {x['rows_per_s']:,} | {x.get('cpu_s', '-')} | "
                         f"{x.get('rows_per_cpu_s', 0):,} | {x.get('server_backend_cpu_s', '-')} | {x.get('server_cpu_s', '-')} | "
                         f"{x.get('rows_per_total_cpu_s', x.get('rows_per_cpu_s', 0)):,} | {x['dropped']} | {x['failed']} |")
    (out / f"ledger-{day}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="ledger sizes (repeatable; default 1000000)")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--writer-rows", type=int, default=200_000, help="rows for the writer rate (on the first size; 0: skip)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "ledger" / "results")
    ap.add_argument("--merge", action="store_true", help="add to today's results file instead of replacing it")
    ap.add_argument("--render", type=Path, help="only rewrite the .md from this results .json")
    ap.add_argument("--data-dir", type=Path, help="keep the loaded ledgers (and the PostgreSQL server's data) here and "
                    "reuse them in later runs with the same folder: the raw rows are generated once")
    ap.add_argument("--load-only", action="store_true", help="with --data-dir: only generate and load the rows")
    ap.add_argument("--keep-rollups", action="store_true", help="with --data-dir: reuse the rollups a kept ledger already "
                    "has instead of rebuilding (and timing) them; the rebuild time then reads 'kept'")
    a = ap.parse_args()
    global KEEP_ROLLUPS
    KEEP_ROLLUPS = a.keep_rollups and a.data_dir is not None
    if a.render:
        doc = json.loads(a.render.read_text())
        write_results(a.render.parent, doc["results"], doc["meta"])
        return
    sizes = a.rows or [1_000_000]
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    import sqlite3

    now = time.time()
    results: list[dict] = []
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": "python bench/ledger/" + " ".join(
        [Path(sys.argv[0]).name, *sys.argv[1:]]), "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "sqlite": sqlite3.sqlite_version, "postgres": "PostgreSQL (not run)"}
    data_dir = a.data_dir.resolve() if a.data_dir else None
    pg = Postgres(data_dir / "pg" if data_dir else None) if "postgres" in stores else None
    dsn = pg.__enter__() if pg else None
    if pg:
        meta["postgres"] = pg.version
    prev: list[dict] = []
    if a.merge:
        old = a.out / f"ledger-{datetime.now(timezone.utc).strftime('%Y-%m-%d')}.json"
        if old.is_file():
            doc = json.loads(old.read_text())
            prev = doc["results"]
            meta["command"] = doc["meta"]["command"] + "` then `" + meta["command"]
    try:
        for i, n in enumerate(sizes):
            results.extend(bench_size(stores, n, dsn, a.writer_rows if i == 0 else 0, now, data_dir, a.load_only))
            if a.load_only:
                continue
            write_results(a.out, prev + results, meta)  # after each size: a cut-short run keeps what it measured
            print(f"wrote {a.out}/ledger-*.md", flush=True)
    finally:
        if pg:
            pg.__exit__(None, None, None)


if __name__ == "__main__":
    main()
