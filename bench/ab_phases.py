"""Several ext_proc configurations through real Envoys, interleaved: CPU per request and where it goes.

    .venv/bin/python bench/ab_phases.py NAME=KIND[,tree=PATH][,ENV=VALUE…] … [--rounds 4] [--seconds 4]
                                        [--shape json|stream] [--model auto]
    e.g. bench/ab_phases.py main=instr,tree=/work/main new=instr noop=noop-rw

KIND: ``instr`` (``nadir-extproc serve`` under bench/instr_serve.py: per-phase CPU and per-thread
CPU), ``product`` (plain ``serve``), ``noop`` / ``noop-rw`` (bench/noop_extproc.py). ``tree``: the
source tree on ``PYTHONPATH`` (default: this one). Same setup as bench/ab_live.py (canned upstream,
OTLP sink, one front Envoy per configuration from bench/run.py), wrk c=16, the configurations
interleaved (order reversed every round); prints per run and the min/median of CPU ms per request
and, for ``instr``, the µs per request of each phase and thread. Used for
bench/results/levers-*.md (the live split of a request's CPU).
"""
import argparse, json, os, statistics, sys, time
from pathlib import Path
TREE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TREE / "bench"))
import run as R

def parse(spec):
    name, _, rest = spec.partition("=")
    parts = rest.split(",")
    kind, env, tree = parts[0], {}, str(TREE)
    for kv in parts[1:]:
        k, v = kv.split("=", 1)
        if k == "tree": tree = v
        else: env[k] = v
    return name, kind, env, tree

ap = argparse.ArgumentParser()
ap.add_argument("cfg", nargs="+")
ap.add_argument("--rounds", type=int, default=4)
ap.add_argument("--seconds", type=float, default=4)
ap.add_argument("--conns", type=int, default=16)
ap.add_argument("--shape", default="json")
ap.add_argument("--model", default="auto")
a = ap.parse_args()
procs = R.Procs()
try:
    procs.spawn("otlp", [R.PY, str(TREE / "bench" / "otlp_sink.py")], ready=r"listening on (\d+)")
    otlp = int(procs.ready["otlp"].group(1))
    up_port, up_admin = R.free_port(), R.free_port()
    path = procs.dir / "upstream.json"; path.write_text(json.dumps(R.upstream_config(up_port, up_admin)))
    procs.spawn("upstream", [str(R.envoy_binary()), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "2", "-l", "warning"])
    R.wait_ready(up_admin)
    cfgs = [parse(s) for s in a.cfg]
    pids, fronts, instr = {}, {}, {}
    for name, kind, env, tree in cfgs:
        port = R.free_port()
        e = {"NADIR_LISTEN": f"127.0.0.1:{port}", "NADIR_STATE_DIR": str(procs.dir / f"state-{name}"),
             "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp}", "PYTHONPATH": tree, **env}
        if kind.startswith("noop"):
            p = procs.spawn(name, [R.PY, str(Path(tree) / "bench" / "noop_extproc.py"), "--port", str(port)] + (["--read-write"] if kind == "noop-rw" else []),
                            env=e, ready=r"noop listening on (\d+)")
            fk = "noop4"
        else:
            if kind == "instr":
                instr[name] = str(procs.dir / f"instr-{name}.json"); e["INSTR_FILE"] = instr[name]
                cmd = [R.PY, str(TREE / "bench" / "instr_serve.py")]
            else:
                cmd = [R.PY, "-m", "nadir_extproc.cli", "serve"]
            p = procs.spawn(name, cmd, env=e, ready=r"nadir-extproc listening on")
            fk = "product"
        pids[name] = p.pid
        fronts[name] = R.Front(procs, fk if fk == "product" else "noop4", port, up_port, otlp)
        fronts[name].kind = name
    body = {**(R.STREAM_REQUEST if a.shape == "stream" else R.REQUEST), "model": a.model}
    script = R.wrk_script(procs.dir / "req.lua", body, a.shape == "stream")
    for name, *_ in cfgs:
        R.run_wrk(f"http://127.0.0.1:{fronts[name].port}/v1/chat/completions", script, 4, 2)
    res = {n: [] for n, *_ in cfgs}; det = {n: [] for n, *_ in cfgs}
    def rd(n):
        try: return json.loads(Path(instr[n]).read_text())
        except Exception: return None
    names = [n for n, *_ in cfgs]
    for rnd in range(a.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for n in order:
            time.sleep(0.5)
            i0 = rd(n) if n in instr else None
            c0 = R.cpu_s(pids[n])
            r = R.run_wrk(f"http://127.0.0.1:{fronts[n].port}/v1/chat/completions", script, a.conns, a.seconds)
            ms = (R.cpu_s(pids[n]) - c0) * 1000 / max(1, r["requests"])
            res[n].append(ms)
            extra = ""
            if n in instr:
                time.sleep(0.6)
                i1 = rd(n)
                nreq = i1["st"]["n"] - i0["st"]["n"]
                st = {k: (i1["st"][k] - i0["st"][k]) / max(1, nreq) / 1000 for k in i1["st"] if k not in ("n", "gcn")}
                th = {k: (v - i0["threads"].get(k, 0)) * 1e6 / max(1, nreq) for k, v in i1["threads"].items()}
                det[n].append((st, th))
                extra = " | us/req " + " ".join(f"{k} {v:.0f}" for k, v in st.items()) + " | threads " + " ".join(f"{k[:14]} {v:.0f}" for k, v in sorted(th.items(), key=lambda x: -x[1]) if v >= 5)
            print(f"  {n:10s} r{rnd+1}: {r['rps']:6.0f} req/s {ms:.3f} ms/req p50 {r['p50_ms']:.2f}{extra}", flush=True)
    for n in names:
        xs = res[n]
        print(f"{n:10s}: min {min(xs):.3f} median {statistics.median(xs):.3f} ms CPU/req  ({', '.join(f'{x:.3f}' for x in xs)})")
        if det[n]:
            keys = det[n][0][0].keys()
            print("   median us/req: " + " ".join(f"{k} {statistics.median(d[0][k] for d in det[n]):.0f}" for k in keys))
            tks = set().union(*[d[1].keys() for d in det[n]])
            print("   median threads us/req: " + " ".join(f"{k} {statistics.median(d[1].get(k, 0) for d in det[n]):.0f}" for k in sorted(tks)))
finally:
    procs.stop()
