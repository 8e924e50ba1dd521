"""Our own per-request CPU on the request path, without gRPC or Envoy: one ``model="auto"`` Chat
Completions request driven through ``RequestProcessor`` (request headers, request body, response
headers, response body, finish) with the product's default context (ONNX router, pricing, key
ids, telemetry span + metrics to bench/otlp_sink.py, SQLite ledger in a temp folder).

    .venv/bin/python bench/hotpath.py [--n 3000] [--profile] [--stream] [--model gpt-4o] [--no-gc-tuning]
                                      [--phases] [--repeat 5]

Prints CPU µs per request (process CPU, all threads: includes the ledger writer and the span
export threads) and, with ``--profile``, the top functions by own time. Used to measure each
hot-path lever (bench/results/levers-*.md). ``--phases``: instead, the request thread's CPU per
phase (``rh`` request headers, ``rb`` request body, ``sh`` response headers, ``sb`` response body,
``finish``), the minimum over ``--repeat`` runs of ``--n`` requests. ``BENCH_TREE=/path``
measures another source tree's package with this harness (A/B).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The source tree measured (A/B of two trees with this one harness): $BENCH_TREE, else this one.
TREE = Path(os.environ.get("BENCH_TREE") or REPO).resolve()
sys.path.insert(0, str(TREE))

from nadir_extproc import protocol as p  # noqa: E402
from nadir_extproc.pb import base_pb2  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from run import CHAT, SSE  # noqa: E402

REQ_HEADERS = [(":authority", "127.0.0.1:10000"), (":path", "/v1/chat/completions"), (":method", "POST"), (":scheme", "http"),
               ("content-type", "application/json"), ("authorization", "Bearer sk-bench-0123456789"), ("user-agent", "wrk"),
               ("content-length", "90"), ("x-forwarded-proto", "http"), ("x-request-id", "5d7f2a4e-8c1b-4d55-9a3e-2f0b6c1d9e77"),
               ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]


def headers_msg(phase: str, pairs: list[tuple[str, str]], eos: bool = False) -> p.ProcessingRequest:
    r = p.ProcessingRequest()
    hm = getattr(r, phase)
    for k, v in pairs:
        hm.headers.headers.append(base_pb2.HeaderValue(key=k, raw_value=v.encode()))
    hm.end_of_stream = eos
    return r


def body_msg(phase: str, body: bytes) -> p.ProcessingRequest:
    r = p.ProcessingRequest()
    getattr(r, phase).body = body
    getattr(r, phase).end_of_stream = True
    return r


def thread_cpu() -> dict[str, float]:
    """CPU seconds per live thread of this process, by thread name (from /proc/self/task)."""
    import threading

    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in threading.enumerate():
        try:
            f = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        out[t.name] = out.get(t.name, 0.0) + (int(f[11]) + int(f[12])) / tick
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--model", default="auto", help="the request's model (auto: routed; a name: shadow routing)")
    ap.add_argument("--no-gc-tuning", action="store_true", help="leave the collector as Python starts it (serve tunes it)")
    ap.add_argument("--phases", action="store_true", help="request-thread CPU per phase (min over --repeat runs)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nadir-hotpath-")
    os.environ.setdefault("NADIR_STATE_DIR", tmp)
    import subprocess

    sink = subprocess.Popen([sys.executable, str(REPO / "bench" / "otlp_sink.py")], stdout=subprocess.PIPE, text=True)
    port = sink.stdout.readline().split()[-1]
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    from nadir_extproc.config import load_settings
    from nadir_extproc.processor import RequestProcessor
    from nadir_extproc import server
    from nadir_extproc.server import Service

    svc = Service(load_settings(None))  # the product's own wiring: context, telemetry, ledger
    ctx = svc.ctx
    if hasattr(server, "quiet_gc") and not a.no_gc_tuning:
        server.quiet_gc()  # as `serve` does once started
    body = {"model": a.model, "messages": [{"role": "user", "content": "What's the capital of France?"}]}
    if a.stream:
        body["stream"] = True
    msgs = [
        headers_msg("request_headers", REQ_HEADERS),
        body_msg("request_body", json.dumps(body).encode()),
        headers_msg("response_headers", [(":status", "200"), ("content-type", "text/event-stream" if a.stream else "application/json"),
                                         ("date", "Mon, 30 Nov 2026 10:00:00 GMT"), ("x-request-id", "abc")]),
    ]
    tail = [body_msg("response_body", SSE.encode()), body_msg("response_body", b"")] if a.stream else [body_msg("response_body", CHAT.encode())]
    if a.stream:
        tail[0].response_body.end_of_stream = False
    msgs += tail
    wire = [m.SerializeToString() for m in msgs]

    def one() -> None:
        proc = RequestProcessor(ctx)
        for w in wire:
            proc.handle(p.ProcessingRequest.FromString(w)).SerializeToString()
        proc.finish()

    for _ in range(200):
        one()
    time.sleep(1.5)  # let the ledger writer and span exporter drain the warm-up
    if a.phases:
        names = ["rh", "rb", "sh"] + (["sb", "sb-end"] if a.stream else ["sb"]) + ["finish"]
        tt, parse = time.thread_time_ns, p.ProcessingRequest.FromString
        runs = []
        for _ in range(a.repeat):
            acc = [0] * len(names)
            for _ in range(a.n):
                proc = RequestProcessor(ctx)
                for k, w in enumerate(wire):
                    m = parse(w)
                    t0 = tt()
                    proc.handle(m).SerializeToString()
                    acc[k] += tt() - t0
                t0 = tt()
                proc.finish()
                acc[-1] += tt() - t0
            runs.append([x / a.n / 1000 for x in acc])
            time.sleep(0.3)
        tot = sorted(sum(r) for r in runs)
        print(f"{a.n} requests x {a.repeat} ({'stream' if a.stream else 'json'}), request-thread µs per phase, min: "
              + " ".join(f"{nm} {min(r[i] for r in runs):.1f}" for i, nm in enumerate(names))
              + f" | total min {tot[0]:.0f} median {tot[len(tot) // 2]:.0f}")
        import asyncio

        asyncio.run(svc.stop(0))
        sink.terminate()
        sink.wait(5)
        return
    prof = cProfile.Profile(time.thread_time) if a.profile else None  # CPU of this thread, not wall
    c0, t0, th0 = time.process_time(), time.perf_counter(), time.thread_time()
    per0 = thread_cpu()
    if prof:
        prof.enable()
    for _ in range(a.n):
        one()
    if prof:
        prof.disable()
    loop_cpu = time.process_time() - c0
    main_cpu = time.thread_time() - th0
    time.sleep(1.5)  # background threads finish this batch (their CPU counts too)
    total_cpu = time.process_time() - c0
    per1 = thread_cpu()
    print(f"{a.n} requests ({'stream' if a.stream else 'json'}): {loop_cpu / a.n * 1e6:.0f} µs CPU/request in the phases, "
          f"{total_cpu / a.n * 1e6:.0f} µs with background threads ({main_cpu / a.n * 1e6:.0f} µs on the request thread); wall {(time.perf_counter() - t0) / a.n * 1e6:.0f} µs")
    print("  per thread (µs/request): " + ", ".join(f"{k} {(v - per0.get(k, 0.0)) / a.n * 1e6:.0f}" for k, v in per1.items() if v - per0.get(k, 0.0) > 0))
    if prof:
        pstats.Stats(prof).sort_stats(os.environ.get("HOTPATH_SORT", "tottime")).print_stats(int(os.environ.get("HOTPATH_TOP", "25")))
    import asyncio

    asyncio.run(svc.stop(0))
    sink.terminate()
    sink.wait(5)


if __name__ == "__main__":
    main()
