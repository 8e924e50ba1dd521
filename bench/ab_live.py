"""A/B of the product's ext_proc CPU per request through a real Envoy, two source trees side by side.

    .venv/bin/python bench/ab_live.py [--a /work/main] [--b .] [--rounds 4] [--seconds 4] [--shape json|stream]
                                      [--model auto|gpt-4o] [--env-a K=V] [--env-b K=V]
                                      [--py-spy FILE]

Starts the canned upstream, the OTLP sink and, per tree, ``nadir-extproc serve`` (defaults: ONNX
router, pricing, spans, metrics, SQLite ledger; ``PYTHONPATH`` picks the tree) behind its own front
Envoy (bench/run.py's configs), then runs ``wrk`` c=16 against A and B in turn, ``--rounds`` times,
and prints ext_proc CPU ms per request (from /proc) per run and the medians. On a shared machine
req/s move with the load; CPU per request, interleaved, is the figure to compare. ``--py-spy``
records B under load (py-spy must be installed) into a flame graph / speedscope file.
Used for bench/results/levers-*.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import run as R  # noqa: E402


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (``/proc/<pid>/task/*/comm``) of one process."""
    out: dict[str, float] = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (t / "comm").read_text().strip()
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(f[11]) + int(f[12])) / R.TICK
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", default="/work/main")
    ap.add_argument("--b", default=str(REPO))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--shape", default="json", choices=("json", "stream"))
    ap.add_argument("--model", default="auto", help="the request's model (auto: routed; a name: shadow routing)")
    ap.add_argument("--env-a", action="append", default=[], metavar="KEY=VALUE", help="extra environment for A (repeatable)")
    ap.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE", help="extra environment for B (repeatable)")
    ap.add_argument("--py-spy", default=None)
    a = ap.parse_args()
    R.ensure_wrk()
    procs = R.Procs()
    try:
        procs.spawn("otlp", [R.PY, str(REPO / "bench" / "otlp_sink.py")], ready=r"listening on (\d+)")
        otlp = int(procs.ready["otlp"].group(1))
        up_port, up_admin = R.free_port(), R.free_port()
        path = procs.dir / "upstream.json"
        path.write_text(json.dumps(R.upstream_config(up_port, up_admin)))
        procs.spawn("upstream", [str(R.envoy_binary()), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "2", "-l", "warning"])
        R.wait_ready(up_admin)
        trees = {"A": str(Path(a.a).resolve()), "B": str(Path(a.b).resolve())}
        pids, fronts = {}, {}
        for k, tree in trees.items():
            port = R.free_port()
            env = {"NADIR_LISTEN": f"127.0.0.1:{port}", "NADIR_STATE_DIR": str(procs.dir / f"state-{k}"),
                   "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp}", "PYTHONPATH": tree,
                   **dict(kv.split("=", 1) for kv in (a.env_a if k == "A" else a.env_b))}
            p = procs.spawn(f"product-{k}", [R.PY, "-m", "nadir_extproc.cli", "serve"], env=env, ready=r"nadir-extproc listening on")
            pids[k] = p.pid
            fronts[k] = R.Front(procs, "product", port, up_port, otlp)
        body = {**(R.STREAM_REQUEST if a.shape == "stream" else R.REQUEST), "model": a.model}
        script = R.wrk_script(procs.dir / "req.lua", body, a.shape == "stream")
        for k in trees:  # warm-up
            R.run_wrk(f"http://127.0.0.1:{fronts[k].port}/v1/chat/completions", script, 4, 2)
        res: dict[str, list[float]] = {k: [] for k in trees}
        for rnd in range(a.rounds):
            for k in (("A", "B") if rnd % 2 == 0 else ("B", "A")):
                time.sleep(0.5)
                c0, th0 = R.cpu_s(pids[k]), threads_cpu(pids[k])
                r = R.run_wrk(f"http://127.0.0.1:{fronts[k].port}/v1/chat/completions", script, a.conns, a.seconds)
                ms = (R.cpu_s(pids[k]) - c0) * 1000 / max(1, r["requests"])
                th1 = threads_cpu(pids[k])
                per = {n: (v - th0.get(n, 0.0)) * 1000 / max(1, r["requests"]) for n, v in th1.items()}
                res[k].append(ms)
                print(f"  {k} round {rnd + 1}: {r['rps']:7.0f} req/s  {ms:.3f} ms CPU/req  non2xx {r['non2xx']}  by thread: "
                      + ", ".join(f"{n} {v:.3f}" for n, v in sorted(per.items(), key=lambda x: -x[1]) if v >= 0.005), flush=True)
        for k, tree in trees.items():
            print(f"{k} {tree} {' '.join(a.env_a if k == 'A' else a.env_b)}: median {statistics.median(res[k]):.3f} ms CPU/req (runs {', '.join(f'{x:.3f}' for x in res[k])})")
        if a.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(pids["B"]), "-d", str(int(a.seconds * 2)), "-o", a.py_spy,
                                    "--format", "raw", "-r", "200", "--threads", *(["--native"] if os.environ.get("SPY_NATIVE") else ["--nonblocking"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            R.run_wrk(f"http://127.0.0.1:{fronts['B'].port}/v1/chat/completions", script, a.conns, a.seconds * 2 + 1)
            spy.wait(30)
            print("py-spy:", a.py_spy)
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
