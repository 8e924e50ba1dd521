"""``nadir-extproc serve`` with per-phase CPU accounting, for bench/ab_phases.py (not the product).

    INSTR_FILE=/tmp/x.json PYTHONPATH=<tree> .venv/bin/python bench/instr_serve.py

Replaces ``ExternalProcessor.Process`` with the same loop timed by ``time.thread_time_ns``: per
request, the CPU of the processor set-up (``setup``), of each phase's ``handle_async`` (``rh`` request
headers, ``rb`` request body, ``sh`` response headers, ``sb`` response body) and of ``finish``
(span, metrics, ledger hand-off); the collector's wall time (``gc``); and every thread's CPU by
Python thread name (/proc/self/task). What is left on the event-loop thread besides those is
grpc.aio and asyncio. A thread dumps the counters to ``INSTR_FILE`` (JSON) every 0.5 s.
``INSTR_GRPC_OPTS="name=int;…"`` adds gRPC server options (e.g. ``grpc.http2.bdp_probe=0``).
"""
import gc, json, os, sys, threading, time
from pathlib import Path
import grpc
import nadir_extproc.server as S
from nadir_extproc import processor as P

tt = time.thread_time_ns
ST = {"n": 0, "setup": 0, "finish": 0, "rh": 0, "rb": 0, "sh": 0, "sb": 0, "gc": 0, "gcn": 0}
PH = {"request_headers": "rh", "request_body": "rb", "response_headers": "sh", "response_body": "sb"}
MODE = os.environ.get("INSTR_MODE", "")

async def Process(self, request_iterator, context):
    t0 = tt()
    proc = S.RequestProcessor(self.ctx)
    proc.out.trace_carrier = S.carrier_from_metadata(context.invocation_metadata())
    ST["setup"] += tt() - t0
    read, write, eof = context.read, context.write, grpc.aio.EOF
    try:
        while True:
            req = await read()
            if req is eof:
                break
            t0 = tt()
            r = await proc.handle_async(req)
            ST[PH.get(req.WhichOneof("request"), "rh")] += tt() - t0
            await write(r)
    finally:
        t0 = tt()
        proc.finish()
        ST["finish"] += tt() - t0
        ST["n"] += 1

S.ExternalProcessor.Process = Process
_extra = [(kv.split("=", 1)[0], int(kv.split("=", 1)[1])) for kv in os.environ.get("INSTR_GRPC_OPTS", "").split(";") if kv]
if _extra:
    _orig_server = grpc.aio.server
    def _server(*a, options=None, **kw):
        return _orig_server(*a, options=list(options or []) + _extra, **kw)
    S.grpc.aio.server = _server
_g = [0]
def _gccb(phase, info):
    if phase == "start":
        _g[0] = time.perf_counter_ns()
    else:
        ST["gc"] += time.perf_counter_ns() - _g[0]; ST["gcn"] += 1
gc.callbacks.append(_gccb)

def dumper(path):
    tick = os.sysconf("SC_CLK_TCK")
    while True:
        names = {t.native_id: t.name for t in threading.enumerate()}
        th = {}
        for t in Path("/proc/self/task").iterdir():
            try:
                f = (t / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (t / "comm").read_text().strip()
            except OSError:
                continue
            nm = names.get(int(t.name), comm)
            th[nm] = th.get(nm, 0) + (int(f[11]) + int(f[12])) / tick
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"st": ST, "threads": th, "t": time.time()}, fh)
        os.replace(tmp, path)
        time.sleep(0.5)

if os.environ.get("INSTR_FILE"):
    threading.Thread(target=dumper, args=(os.environ["INSTR_FILE"],), daemon=True, name="instr").start()

from nadir_extproc.cli import main
sys.argv = ["nadir-extproc", "serve"]
main()
