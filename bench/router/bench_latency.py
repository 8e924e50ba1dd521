"""Router latency and memory benchmark (not a test: numbers depend on the machine).

    .venv/bin/python bench/router/bench_latency.py [--out bench/router/results.md]

Measures ``OnnxRouter.route`` — the whole hot-path call the processor makes: featurise (tokenizer +
dense statistics) + one onnxruntime run (embedding lookup, pooling, classifier) + policy — on
prompts of 100, 1 K, 10 K and 100 K characters, with a warm session,
the process pinned to one CPU (``os.sched_setaffinity``), 200 warm-up calls then N timed calls per
size (``time.perf_counter_ns`` around each call). Also the featuriser alone, the resident memory
added by loading the model (VmRSS before/after creating the session), and the bytes the model files
add to the wheel (every file in ``nadir_extproc/routing/model/``).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from pathlib import Path


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def prompt(n: int, seed: int) -> str:
    """A deterministic mix of prose, numbers and a code fence, ``n`` characters long."""
    rnd = random.Random(seed)
    words = ("the", "model", "router", "explain", "why", "prove", "latency", "cost", "def", "return",
             "value", "error", "function", "because", "request", "token", "x", "=", "42", "+", "3.14", "?")
    parts, size = [], 0
    while size < n:
        w = rnd.choice(words)
        parts.append(w)
        size += len(w) + 1
        if rnd.random() < 0.02:
            parts.append("\n```python\nprint(1)\n```\n")
    return " ".join(parts)[:n]


def pct(xs: list[int], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import numpy  # noqa: F401  (import cost not counted as model memory)
    import onnxruntime  # noqa: F401

    from nadir_extproc.routing.base import RouteRequest
    from nadir_extproc.routing.features import featurise
    from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, OnnxRouter, OnnxScorer
    from nadir_extproc.routing.policy import TierPolicy

    before = rss_kib()
    scorer = OnnxScorer()
    after = rss_kib()
    router = OnnxRouter(TierPolicy(), scorer)
    rows = []
    for size in (100, 1_000, 10_000, 100_000):
        text = prompt(size, size)
        req = RouteRequest("openai", "openai_chat", text)
        n = args.n if size <= 10_000 else max(200, args.n // 4)
        for _ in range(200):
            router.route(req)
        route_ns, feat_ns = [], []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            router.route(req)
            route_ns.append(time.perf_counter_ns() - t0)
        for _ in range(n):
            t0 = time.perf_counter_ns()
            featurise(text, scorer.tokenizer)
            feat_ns.append(time.perf_counter_ns() - t0)
        rows.append((size, n, min(route_ns) / 1000, pct(route_ns, 50), pct(route_ns, 99), statistics.mean(route_ns) / 1000, pct(feat_ns, 50), pct(feat_ns, 99)))
    load = os.getloadavg()
    lines = [
        f"Command: `.venv/bin/python bench/router/bench_latency.py --out bench/router/results.md` "
        f"(load average during the run: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} — the machine is shared, "
        "so p99 includes preemption by other processes).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (pinned to 1), Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}; model {DEFAULT_MODEL_PATH.name} "
        f"({DEFAULT_MODEL_PATH.stat().st_size / 1e6:.2f} MB, {scorer.metadata.get('version')}).",
        f"Resident memory added by loading the model (session + weights): {(after - before) / 1024:.1f} MiB.",
        f"Model files added to the wheel ({DEFAULT_MODEL_PATH.parent.name}/: "
        + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(DEFAULT_MODEL_PATH.parent.iterdir()) if p.is_file())
        + f"): {sum(p.stat().st_size for p in DEFAULT_MODEL_PATH.parent.iterdir() if p.is_file()) / 1e6:.2f} MB "
        "uncompressed (the wheel is a zip: it compresses them further).",
        "",
        "| prompt chars | calls | route min (µs) | route p50 (µs) | route p99 (µs) | route mean (µs) | featurise p50 (µs) | featurise p99 (µs) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s:,} | {n} | {mn:.0f} | {p50:.0f} | {p99:.0f} | {m:.0f} | {f50:.0f} | {f99:.0f} |" for s, n, mn, p50, p99, m, f50, f99 in rows]
    lines += ["", "`route min` is the fastest call: the cost without preemption by other processes (on a machine this "
              "loaded, p50 and p99 measure the load, not the router)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
