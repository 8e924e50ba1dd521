"""The request-path benchmark: Envoy alone vs no-op ext_procs vs nadir-extproc, one interleaved run.

    make bench                      # = .venv/bin/python bench/run.py (installs wrk if missing)
    .venv/bin/python bench/run.py --quick          # ~1.5 min smoke run of the same harness
    .venv/bin/python bench/run.py --workers 2      # the product as `serve --workers 2`

Setup (all on 127.0.0.1, every process started and stopped here):
- a canned upstream: an Envoy ``direct_response`` returning a Chat Completions body with usage
  (JSON, or an SSE stream when the request carries ``x-bench-stream``), so the upstream costs
  almost nothing;
- front Envoys rendered from ``envoy/envoy.yaml`` (``nadir_extproc.stack.render_envoy_config``):
  ``envoy`` has the ext_proc filter removed; ``noop4`` and ``noop2`` point the filter at a no-op
  grpc.aio ext_proc (``bench/noop_extproc.py``) with the 4 phases of the file's mode (headers +
  BUFFERED bodies both ways) and with the fewest phases the product could work with (request and
  response headers ``SKIP``: the two BUFFERED body phases); ``product`` is the file as shipped
  with ``nadir-extproc serve`` in its default configuration (ONNX router, pricing, key ids, spans
  and metrics to an OTLP sink ``bench/otlp_sink.py``, SQLite ledger);
- ``wrk`` (Debian package) posting ``model="auto"`` Chat Completions requests, non-streaming and
  streaming, at concurrency 16 and 64 (throughput) and 1 (latency), variants interleaved.

Reports (``bench/results/extproc-<date>.{md,json}``): req/s and ratio to Envoy alone, p50/p99 at
c=1, ext_proc CPU per request (``/proc/<pid>/stat`` utime+stime of the ext_proc process and its
workers over the run / requests served), RSS after 10 k and 100 k requests, time to first byte on
streams, and the ``auto`` rewrite time for 1, 6 and 8 MB bodies (in process, and through Envoy
with its ``message_timeouts`` counter). The machine is shared: the load average is recorded
before and after, and the ratios and CPU per request are the figures to trust.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nadir_extproc.stack import envoy_binary, free_port, render_envoy_config  # noqa: E402

PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

CHAT = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764460800, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}, separators=(",", ":"))


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
    c = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764460800, "model": "gpt-4o-mini-2024-07-18",
         "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"


SSE = (
    _chunk({"role": "assistant", "content": ""}) + _chunk({"content": "Paris"}) + _chunk({"content": "."})
    + _chunk({}, "stop") + _chunk({}, usage={"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16})
    + "data: [DONE]\n\n"
)
REQUEST = {"model": "auto", "messages": [{"role": "user", "content": "What's the capital of France?"}]}
STREAM_REQUEST = {**REQUEST, "stream": True}
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-0123456789"}


# ----------------------------------------------------------------------------- processes
class Procs:
    """Child processes (own session each) and a temp folder; ``stop()`` ends exactly these."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nadir-bench-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.ready: dict[str, re.Match] = {}  # the ready line's match, per process

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None, ready: str | None = None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        p = subprocess.Popen(args, stdout=subprocess.PIPE if ready else log, stderr=log, env={**os.environ, **(env or {})},
                             start_new_session=True, text=True)
        self.procs[name] = p
        if ready:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line and p.poll() is not None:
                    raise RuntimeError(f"{name} exited: {(self.dir / f'{name}.log').read_text()[-2000:]}")
                m = re.search(ready, line)
                if m:
                    self.ready[name] = m
                    return p
            raise RuntimeError(f"{name}: no ready line")
        return p

    def stop(self) -> None:
        for name, p in reversed(list(self.procs.items())):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)  # its own session: the process and its workers
                except ProcessLookupError:
                    pass
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_ready(admin_port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"envoy (admin {admin_port}) not ready")


def envoy_stat(admin_port: int, name: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/stats?filter={re.escape(name)}$", timeout=5) as r:
        for line in r.read().decode().splitlines():
            k, _, v = line.partition(": ")
            if k == name:
                return int(v)
    return 0


def upstream_config(port: int, admin: int) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "upstream", "codec_type": "AUTO",
        "route_config": {"virtual_hosts": [{"name": "canned", "domains": ["*"], "routes": [
            {"match": {"prefix": "/", "headers": [{"name": "x-bench-stream", "present_match": True}]},
             "direct_response": {"status": 200, "body": {"inline_string": SSE}},
             "response_headers_to_add": [{"header": {"key": "content-type", "value": "text/event-stream"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]},
            {"match": {"prefix": "/"},
             "direct_response": {"status": 200, "body": {"inline_string": CHAT}},
             "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]},
        ]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": 16 << 20,
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        }]},
    }


def front_config(kind: str, listen: int, admin: int, extproc: int, upstream: int, otlp: int) -> dict:
    """``envoy/envoy.yaml`` rendered for one variant: ``envoy`` (no ext_proc filter), ``noop4``
    (the file's mode), ``noop2`` (headers SKIP), ``product`` (the file as shipped)."""
    cfg = render_envoy_config(listen_port=listen, admin_port=admin, extproc_port=extproc, upstream_port=upstream, otlp_port=otlp)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    if kind != "product":
        # The baselines have no product behind them: the Lua failure guard that follows the
        # ext_proc (503 for an unrouted "auto") is part of the product and goes with it.
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.lua"]
    if kind == "envoy":
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_proc"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.ext_proc":
            tc = f["typed_config"]
            if kind.startswith("noop"):
                tc["processing_mode"] = {
                    "request_header_mode": "SEND" if kind == "noop4" else "SKIP",
                    "response_header_mode": "SEND" if kind == "noop4" else "SKIP",
                    "request_body_mode": "BUFFERED", "response_body_mode": "BUFFERED",
                    "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP",
                }
                tc.pop("allow_mode_override", None)
    # The access log goes to Envoy's stdout (a file here) for every variant alike.
    return cfg


class Front:
    def __init__(self, procs: Procs, kind: str, extproc_port: int, upstream: int, otlp: int) -> None:
        self.kind = kind
        self.port = free_port()
        self.admin = free_port()
        cfg = front_config("product" if kind.startswith("product") else kind, self.port, self.admin, extproc_port, upstream, otlp)
        path = procs.dir / f"front-{kind}.json"
        path.write_text(json.dumps(cfg))
        self.pid = procs.spawn(f"envoy-{kind}", [str(envoy_binary()), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "2",
                                                  "-l", "warning"]).pid
        wait_ready(self.admin)


# ----------------------------------------------------------------------------- measuring
def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the product's worker processes)."""
    out = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for k in kids:
        out += proc_tree(int(k))
    return out


def cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    total = 0
    for p in proc_tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
    return total / TICK


def cpu_s_single(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / TICK


def rss_mb(pid: int) -> float:
    total = 0
    for p in proc_tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except OSError:
            pass
    return total / 1e6


def wrk_script(path: Path, body: dict, stream: bool) -> Path:
    hdrs = dict(HEADERS)
    if stream:
        hdrs["x-bench-stream"] = "1"
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{json.dumps(body, separators=(',', ':'))}]==]"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in hdrs.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, conns: int, seconds: float) -> dict:
    threads = 1 if conns == 1 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{max(1, round(seconds))}s", "--latency", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    out = proc.stdout
    if "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {' '.join(cmd)}\n{out}\n{proc.stderr}")
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else ""
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        res[f"p{p}_ms"] = float(m.group(1)) * _UNIT[m.group(2)] if m else None
    return res


def ttfb(port: int, n: int) -> list[float]:
    """Time to the response headers of a streamed request (ms), one at a time over one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps(STREAM_REQUEST).encode()
    out = []
    for i in range(n + 20):
        t = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, {**HEADERS, "x-bench-stream": "1"})
        r = conn.getresponse()
        dt = (time.perf_counter() - t) * 1000
        data = r.read()
        assert r.status == 200 and b"[DONE]" in data, (r.status, data[:200])
        if i >= 20:
            out.append(dt)
    conn.close()
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def big_body(size: int) -> bytes:
    head = b'{"messages":[{"role":"user","content":"'
    tail = b'"}],"model":"auto"}'
    unit = b"lorem ipsum dolor "
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


def rewrite_in_process(sizes: list[int]) -> list[dict]:
    """The request-body phase of a ``model="auto"`` body, in this process with default settings:
    wall and CPU ms of ``RequestProcessor.handle`` (parse, route, rewrite, reply)."""
    from nadir_extproc import protocol as p
    from nadir_extproc.config import Settings
    from nadir_extproc.pb import base_pb2
    from nadir_extproc.processor import RequestProcessor
    from nadir_extproc.server import build_context

    ctx = build_context(Settings(ledger={"enabled": False}, telemetry={"enabled": False}, key_id={"enabled": False}))
    out = []
    for size in sizes:
        raw = big_body(size)
        walls, cpus = [], []
        for _ in range(5):
            proc = RequestProcessor(ctx)
            hreq = p.ProcessingRequest()
            for k, v in ((":path", "/v1/chat/completions"), (":method", "POST"), ("content-type", "application/json")):
                hreq.request_headers.headers.headers.append(base_pb2.HeaderValue(key=k, raw_value=v.encode()))
            proc.handle(hreq)
            breq = p.ProcessingRequest()
            breq.request_body.body = raw
            breq.request_body.end_of_stream = True
            t, c = time.perf_counter(), time.thread_time()
            r = proc.handle(breq)
            walls.append((time.perf_counter() - t) * 1000)
            cpus.append((time.thread_time() - c) * 1000)
            new = r.request_body.response.body_mutation.body
            assert b'"model":"auto"' not in new and len(new) > size - 100, "not rewritten"
        # The rewrite itself: parse (replaces json.loads) + splice, CPU ms, without the router.
        from nadir_extproc import jsonbody
        from nadir_extproc.dialects.base import replace_top_level_string

        rw = []
        for _ in range(5):
            c = time.thread_time()
            replace_top_level_string(raw, "model", "gpt-4o", jsonbody.parse(raw))
            rw.append((time.thread_time() - c) * 1000)
        out.append({"bytes": len(raw), "wall_ms_median": round(statistics.median(walls), 2), "cpu_ms_median": round(statistics.median(cpus), 2),
                    "rewrite_cpu_ms_median": round(statistics.median(rw), 2), "model": proc.out.routed_model})
    return out


def rewrite_through_envoy(front: Front, sizes: list[int]) -> list[dict]:
    out = []
    for size in sizes:
        raw = big_body(size)
        before = envoy_stat(front.admin, "http.llm.ext_proc.message_timeouts")
        lat = []
        statuses = []
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
            t = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", raw, HEADERS)
            r = conn.getresponse()
            r.read()
            wall = (time.perf_counter() - t) * 1000
            statuses.append(r.status)
            lat.append((float(r.headers.get("x-nadir-latency-ms") or "nan"), wall))
            conn.close()
        after = envoy_stat(front.admin, "http.llm.ext_proc.message_timeouts")
        out.append({"bytes": len(raw), "statuses": statuses, "x_nadir_latency_ms": [round(a, 1) for a, _ in lat],
                    "client_wall_ms": [round(b, 1) for _, b in lat], "message_timeouts": after - before})
    return out


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" 1")[0].strip() if Path("/proc/loadavg").exists() else "?"


def other_load() -> str:
    """What else is running (top CPU users by name), for the record."""
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout.splitlines()[1:8]
        return "; ".join(" ".join(x.split()) for x in out)
    except OSError:
        return "?"


# ----------------------------------------------------------------------------- main
def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True, env=env)
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test of the harness)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per wrk run (default 5, quick 2)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds at c=16 (default 2, quick 1)")
    ap.add_argument("--soak", type=int, default=None, help="requests for the RSS soak (default 100000, quick 12000)")
    ap.add_argument("--workers", type=int, default=2, help="also run the product as serve --workers N (0: skip)")
    ap.add_argument("--soak-seconds", type=float, default=None, help="cap on the RSS soak (default 360, quick 30)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--tag", default="", help="suffix for the result file names")
    a = ap.parse_args()
    seconds = a.seconds or (2 if a.quick else 5)
    rounds = a.rounds or (1 if a.quick else 2)
    soak_n = a.soak or (12_000 if a.quick else 100_000)
    soak_cap = a.soak_seconds or (30 if a.quick else 360)
    ensure_wrk()
    started = datetime.now(timezone.utc)
    load_before = loadavg()
    others_before = other_load()
    procs = Procs()
    results: dict = {"command": " ".join(["python bench/run.py", *sys.argv[1:]]), "started": started.isoformat(timespec="seconds"),
                     "seconds_per_run": seconds, "rounds_c16": rounds, "workers": a.workers}
    try:
        procs.spawn("otlp", [PY, str(REPO / "bench" / "otlp_sink.py")], ready=r"listening on (\d+)")
        otlp = int(procs.ready["otlp"].group(1))
        up_port, up_admin = free_port(), free_port()
        path = procs.dir / "upstream.json"
        path.write_text(json.dumps(upstream_config(up_port, up_admin)))
        procs.spawn("upstream", [str(envoy_binary()), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "2", "-l", "warning"])
        wait_ready(up_admin)
        noop = procs.spawn("noop", [PY, str(REPO / "bench" / "noop_extproc.py")], ready=r"noop listening on (\d+)")
        noop_port = int(procs.ready["noop"].group(1))
        prod_port = free_port()
        state = procs.dir / "state"
        env = {"NADIR_LISTEN": f"127.0.0.1:{prod_port}", "NADIR_STATE_DIR": str(state),  # defaults otherwise
               "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp}"}
        prod = procs.spawn("product", [PY, "-m", "nadir_extproc.cli", "serve"], env=env, ready=r"nadir-extproc listening on")
        pids = {"envoy": None, "noop4": noop.pid, "noop2": noop.pid, "product": prod.pid}
        ports = {"noop4": noop_port, "noop2": noop_port, "product": prod_port, "envoy": 0}
        if a.workers > 1:  # the same product as `serve --workers N` (one port, SO_REUSEPORT)
            prod2_port = free_port()
            env2 = {**env, "NADIR_LISTEN": f"127.0.0.1:{prod2_port}", "NADIR_STATE_DIR": str(procs.dir / "state2")}
            prod2 = procs.spawn("product2", [PY, "-m", "nadir_extproc.cli", "serve", "--workers", str(a.workers)], env=env2,
                                ready=r"nadir-extproc listening on")
            pids["product2"], ports["product2"] = prod2.pid, prod2_port
        fronts = {k: Front(procs, k, ports[k], up_port, otlp) for k in pids}
        scripts = {s: wrk_script(procs.dir / f"{s}.lua", STREAM_REQUEST if s == "stream" else REQUEST, s == "stream") for s in ("json", "stream")}
        # Warm-up (JIT-free Python still warms caches, the router session, connections).
        for k, f in fronts.items():
            run_wrk(f"http://127.0.0.1:{f.port}/v1/chat/completions", scripts["json"], 4, 1)
        runs: list[dict] = []

        def settle() -> None:
            """Wait (<= 10 s) until no ext_proc is still busy with a previous run's backlog."""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                c0 = sum(cpu_s(p) for p in set(pids.values()) if p)
                time.sleep(0.5)
                if sum(cpu_s(p) for p in set(pids.values()) if p) - c0 < 0.05:
                    return

        def one(kind: str, shape: str, conns: int) -> None:
            f = fronts[kind]
            settle()
            c0 = cpu_s(pids[kind])
            e0 = cpu_s(f.pid)
            t0 = envoy_stat(f.admin, "http.llm.ext_proc.message_timeouts") if pids[kind] else 0
            r = run_wrk(f"http://127.0.0.1:{f.port}/v1/chat/completions", scripts[shape], conns, seconds)
            r["cpu_ms_per_req"] = round((cpu_s(pids[kind]) - c0) * 1000 / max(1, r["requests"]), 3) if pids[kind] else None
            r["envoy_cpu_ms_per_req"] = round((cpu_s(f.pid) - e0) * 1000 / max(1, r["requests"]), 3)  # the front Envoy
            # Envoy's ext_proc message timeouts in this run (overload queueing when the ext_proc
            # is the bottleneck; with failure_mode_allow those requests went on unprocessed).
            r["message_timeouts"] = (envoy_stat(f.admin, "http.llm.ext_proc.message_timeouts") - t0) if pids[kind] else 0
            r.update(kind=kind, shape=shape, conns=conns)
            runs.append(r)
            print(f"  {kind:8s} {shape:6s} c={conns:<3d} {r['rps']:8.0f} req/s  p50 {r['p50_ms']} ms  cpu/req {r['cpu_ms_per_req']} ms  "
                  f"non2xx {r['non2xx']}  message_timeouts {r['message_timeouts']}", flush=True)

        kinds = ("envoy", "noop4", "noop2", "product")
        all_kinds = tuple(pids)  # + product2 (throughput only)
        for rnd in range(rounds):
            print(f"round {rnd + 1}/{rounds} c=16", flush=True)
            for shape in ("json", "stream"):
                for kind in all_kinds:
                    one(kind, shape, 16)
        print("c=64", flush=True)
        for shape in ("json", "stream"):
            for kind in all_kinds:
                one(kind, shape, 64)
        print("c=1", flush=True)
        for shape in ("json", "stream"):
            for kind in kinds:
                one(kind, shape, 1)
        results["runs"] = runs
        # Time to first byte on streams.
        n_ttfb = 100 if a.quick else 300
        results["ttfb_ms"] = {}
        for kind in kinds:
            xs = ttfb(fronts[kind].port, n_ttfb)
            results["ttfb_ms"][kind] = {"p50": round(pct(xs, 50), 3), "p99": round(pct(xs, 99), 3), "n": len(xs)}
        print("ttfb", results["ttfb_ms"], flush=True)
        # RSS soak on the product: RSS after 10k requests and after soak_n requests (c=16, JSON).
        print(f"soak {soak_n} requests", flush=True)
        served = 0
        rss = {}
        f = fronts["product"]
        t_soak = time.monotonic()
        rss["start"] = rss_mb(prod.pid)
        first = min(10_000, soak_n // 10)  # RSS checkpoint: 10 k requests (a tenth in short runs)
        while served < soak_n and time.monotonic() - t_soak < soak_cap:
            step = first if served < first else soak_n - served
            secs = min(_secs_for(step, runs), 60.0, max(2.0, soak_cap - (time.monotonic() - t_soak)))
            r = run_wrk(f"http://127.0.0.1:{f.port}/v1/chat/completions", scripts["json"], 16, secs)
            served += r["requests"]
            if "after_10k" not in rss and served >= first:
                rss["after_10k"] = rss_mb(prod.pid)
                rss["served_at_10k"] = served
        rss["after_soak"] = rss_mb(prod.pid)
        rss["served"] = served
        rss["soak_s"] = round(time.monotonic() - t_soak, 1)
        results["rss_mb"] = {k: round(v, 1) if isinstance(v, float) else v for k, v in rss.items()}
        print("rss", results["rss_mb"], flush=True)
        sizes = [1_000_000, 6_000_000, 8_000_000]
        results["rewrite_in_process"] = rewrite_in_process(sizes)
        results["rewrite_through_envoy"] = rewrite_through_envoy(fronts["product"], sizes)
        print("rewrite", results["rewrite_in_process"], results["rewrite_through_envoy"], flush=True)
        results["product_stats"] = {k: envoy_stat(fronts["product"].admin, f"http.llm.ext_proc.{k}")
                                    for k in ("streams_started", "streams_failed", "message_timeouts", "failure_mode_allowed")}
        if "product2" in pids:
            results["product2_stats"] = {k: envoy_stat(fronts["product2"].admin, f"http.llm.ext_proc.{k}")
                                         for k in ("streams_started", "message_timeouts", "failure_mode_allowed")}
            # CPU seconds per process of `serve --workers N` over the whole run (supervisor first):
            # shows how the kernel spread Envoy's connections over the workers.
            results["product2_cpu_s_per_process"] = [round(cpu_s_single(x), 1) for x in proc_tree(pids["product2"])]
    finally:
        procs.stop()
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["machine"] = machine(load_before, others_before)
    write(a.out, results, a.tag)


def _secs_for(n: int, runs: list[dict]) -> float:
    rps = [r["rps"] for r in runs if r["kind"] == "product" and r["shape"] == "json" and r["conns"] == 16] or [500.0]
    return max(2.0, n / max(50.0, statistics.median(rps)))


def machine(load_before: str, others_before: str) -> dict:
    cpu = "?"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env_ver = subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True).stdout.strip().split("version:")[-1].strip()
    mem = Path("/proc/meminfo").read_text().split("\n")[0].split(":")[1].strip() if Path("/proc/meminfo").exists() else "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(), "python": platform.python_version(),
            "envoy": env_ver.split()[0] if env_ver else "?", "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
            "loadavg_before": load_before, "loadavg_after": loadavg(), "top_cpu_before": others_before, "top_cpu_after": other_load()}


def write(out_dir: Path, res: dict, tag: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
    name = f"extproc-{stamp}{('-' + tag) if tag else ''}"
    (out_dir / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")  # first: kept if the report fails
    (out_dir / f"{name}.md").write_text(report(res))
    print(f"wrote {out_dir / name}.md/.json")


def report(res: dict) -> str:
    runs = res["runs"]
    m = res["machine"]
    kinds = ("envoy", "noop4", "noop2", "product") + (("product2",) if any(r["kind"] == "product2" for r in runs) else ())
    label = {"envoy": "Envoy alone", "noop4": "no-op ext_proc, 4 phases", "noop2": "no-op ext_proc, 2 body phases (headers SKIP)",
             "product": "nadir-extproc defaults (1 process)", "product2": f"nadir-extproc defaults, `serve --workers {res['workers']}`"}

    def med(kind: str, shape: str, conns: int, key: str) -> float | None:
        xs = [r[key] for r in runs if r["kind"] == kind and r["shape"] == shape and r["conns"] == conns and r[key] is not None]
        return statistics.median(xs) if xs else None

    lines = [f"# ext_proc request-path benchmark ({res['started']})", "",
             f"Command: `{res['command']}` ({res['seconds_per_run']} s per wrk run, {res['rounds_c16']} interleaved rounds at c=16)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}, Python {m['python']}, Envoy {m['envoy']}, {m['wrk']}.",
             f"Shared machine: load average before `{m['loadavg_before']}`, after `{m['loadavg_after']}`; top CPU before: {m['top_cpu_before']}.",
             "Everything (wrk, 5 Envoys, ext_procs, OTLP sink) shares the same cores; absolute req/s are noisy, ratios and CPU per request are the figures to trust.", ""]
    for shape in ("json", "stream"):
        lines += [f"## {'Non-streaming (JSON)' if shape == 'json' else 'Streaming (SSE)'} `model=\"auto\"` Chat Completions", "",
                  "| configuration | req/s c=16 | × Envoy | req/s c=64 | × Envoy | p50 c=1 (ms) | p99 c=1 (ms) | +p50 vs Envoy | ext_proc CPU/req (ms, c=16) | front Envoy CPU/req (ms, c=16) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        base16, base64, base_p50 = med("envoy", shape, 16, "rps"), med("envoy", shape, 64, "rps"), med("envoy", shape, 1, "p50_ms")
        for k in kinds:
            r16, r64 = med(k, shape, 16, "rps"), med(k, shape, 64, "rps")
            p50, p99 = med(k, shape, 1, "p50_ms"), med(k, shape, 1, "p99_ms")
            cpu = med(k, shape, 16, "cpu_ms_per_req")
            c1 = "— | — | —" if p50 is None else f"{p50:.2f} | {p99:.2f} | {p50 - base_p50:+.2f}"
            ecpu = med(k, shape, 16, "envoy_cpu_ms_per_req")
            lines.append(f"| {label[k]} | {r16:.0f} | {r16 / base16:.2f}× | {r64:.0f} | {r64 / base64:.2f}× | {c1} | "
                         f"{'—' if cpu is None else f'{cpu:.3f}'} | {ecpu:.3f} |")
        bad = sum(r["non2xx"] for r in runs if r["shape"] == shape)
        mt = {c: sum(r.get("message_timeouts", 0) for r in runs if r["shape"] == shape and r["conns"] == c) for c in (1, 16, 64)}
        lines += ["", f"Non-2xx responses in these runs: {bad}. Envoy ext_proc message timeouts (overload: requests queued in "
                  f"the ext_proc past the 0.5 s message_timeout went on unprocessed): c=1 {mt[1]}, c=16 {mt[16]}, c=64 {mt[64]}.", ""]
    lines += ["## Time to first byte, streams (one at a time, ms to the response headers)", "", "| configuration | p50 | p99 |", "|---|---:|---:|"]
    for k in kinds:
        if k not in res["ttfb_ms"]:
            continue
        t = res["ttfb_ms"][k]
        lines.append(f"| {label[k]} | {t['p50']:.2f} | {t['p99']:.2f} |")
    r = res["rss_mb"]
    lines += ["", "## Memory (nadir-extproc RSS, MB)", "",
              f"Start {r['start']}, after {r['served_at_10k']} requests {r['after_10k']}, after {r['served']} requests {r['after_soak']} "
              f"({(r['after_soak'] / r['after_10k'] - 1) * 100:+.1f} % from the first checkpoint), soak {r['soak_s']} s at c=16.", "",
              "## `model=\"auto\"` rewrite of large bodies", "",
              "| body bytes | parse + rewrite, CPU ms (median of 5) | whole request-body phase (router, reply …) wall ms | its CPU ms | through Envoy: statuses | x-nadir-latency-ms (wall) | message_timeouts |",
              "|---:|---:|---:|---:|---|---|---:|"]
    for a, b in zip(res["rewrite_in_process"], res["rewrite_through_envoy"]):
        lines.append(f"| {a['bytes']:,} | {a.get('rewrite_cpu_ms_median', '—')} | {a['wall_ms_median']} | {a['cpu_ms_median']} | {b['statuses']} | "
                     f"{b['x_nadir_latency_ms']} | {b['message_timeouts']} |")
    lines += ["", f"Product ext_proc counters over the whole run (Envoy stats): {res['product_stats']}."]
    if "product2_stats" in res:
        lines += [f"`serve --workers {res['workers']}`: counters {res['product2_stats']}; CPU seconds per process over the run "
                  f"(supervisor, then workers): {res['product2_cpu_s_per_process']}."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
