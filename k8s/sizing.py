"""Measure what one nadir-extproc sidecar and its Envoy cost, to size k8s requests/limits.

Starts the local stack (emulator + nadir-extproc + Envoy 1.40, ``nadir_extproc.stack.Stack``),
sends ``--requests`` sequential non-streamed ``model="auto"`` chat completions through Envoy
(every request runs all four ext_proc phases, BUFFERED), and prints, per process: CPU time per
request in ms (user+system from /proc/PID/stat, divided by the request count), resident memory
after start-up and the peak (VmRSS / VmHWM, MiB). Loopback only; every process is stopped at the
end. Linux only (reads /proc).

    .venv/bin/python k8s/sizing.py --requests 500
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request

from nadir_extproc.stack import Stack

CLK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK


def mem_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(val.split()[0]) / 1024, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "Say hello in one word."}]}).encode()
    with Stack() as stack:
        pids = {name: stack.procs[name].pid for name in ("extproc", "envoy")}
        start_mem = {n: mem_mib(p) for n, p in pids.items()}
        url = f"{stack.base_url}/v1/chat/completions"
        for _ in range(20):  # warm-up, not counted
            urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"content-type": "application/json", "authorization": "Bearer sk-sizing"}), timeout=10).read()
        before = {n: cpu_ms(p) for n, p in pids.items()}
        for _ in range(args.requests):
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"content-type": "application/json", "authorization": "Bearer sk-sizing"}), timeout=10) as r:
                assert r.headers["x-nadir-cost-usd"], "request was not priced"
                r.read()
        after = {n: cpu_ms(p) for n, p in pids.items()}
        report = {
            n: {
                "cpu_ms_per_request": round((after[n] - before[n]) / args.requests, 3),
                "rss_mib_after_start": start_mem[n]["VmRSS"],
                "peak_rss_mib": mem_mib(pids[n])["VmHWM"],
            }
            for n in pids
        }
    print(json.dumps({"requests": args.requests, **report}, indent=2))


if __name__ == "__main__":
    main()
