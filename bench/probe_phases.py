"""Probe what Envoy 1.40's ext_proc filter does with fewer phases (facts for docs/extproc-phases.md).

    .venv/bin/python bench/probe_phases.py

Starts the provider emulator, a probe ext_proc (records every ProcessingRequest; rewrites the
body, sets and removes headers, optionally sends a mode_override from the request-body reply) and
a front Envoy rendered from envoy/envoy.yaml with the request and response headers phases SKIPped
and request/response attributes configured. Prints what arrived where.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import urllib.request
from pathlib import Path

import grpc
from google.protobuf import json_format

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from nadir_extproc import protocol as p  # noqa: E402
from nadir_extproc.pb import external_processor_pb2 as ep, external_processor_pb2_grpc as epg  # noqa: E402
from nadir_extproc.stack import envoy_binary, free_port, render_envoy_config  # noqa: E402
import run as bench  # noqa: E402

LOG: list[dict] = []
OVERRIDE: dict = {"mode": None}
REQ_ATTRS = ["request.path", "request.url_path", "request.method", "request.id", "request.headers",
             "request.headers['authorization']", "request.headers['x-absent']", "xds.route_metadata", "xds.route_name"]
RESP_ATTRS = ["response.code", "response.headers['content-type']", "response.code_details"]


class Probe(epg.ExternalProcessorServicer):
    async def Process(self, it, ctx):
        async for req in it:
            ph = req.WhichOneof("request")
            LOG.append({"phase": ph, "attributes": {k: json_format.MessageToDict(v) for k, v in req.attributes.items()}})
            r = ep.ProcessingResponse()
            if ph == "request_body":
                body = req.request_body.body.replace(b'"auto"', b'"gpt-4o-mini"')
                p.common({"x-probe-set": "1", "content-length": str(len(body))}, ["x-probe-remove"], body=body,
                         into=r.request_body.response)
                if OVERRIDE["mode"] is not None:
                    r.mode_override.CopyFrom(OVERRIDE["mode"])
            elif ph == "response_body":
                p.common({"x-probe-cost": "1"}, into=r.response_body.response)
            elif ph in ("request_headers", "response_headers"):
                p.common({f"x-probe-{ph}": "1"}, into=getattr(r, ph).response)
            else:
                getattr(r, ph).SetInParent()
            yield r


def _serve(port: int, ready: threading.Event) -> None:
    async def main() -> None:
        s = grpc.aio.server()
        epg.add_ExternalProcessorServicer_to_server(Probe(), s)
        s.add_insecure_port(f"127.0.0.1:{port}")
        await s.start()
        ready.set()
        await s.wait_for_termination()
    asyncio.run(main())


def main() -> None:
    xp = free_port()
    ready = threading.Event()
    threading.Thread(target=_serve, args=(xp, ready), daemon=True).start()
    ready.wait()
    procs = bench.Procs()
    try:
        procs.spawn("emulator", [sys.executable, "-m", "nadir_extproc.emulator", "--host", "127.0.0.1", "--port", "0"],
                    ready=r"listening on http://127\.0\.0\.1:(\d+)")
        emu = int(procs.ready["emulator"].group(1))
        lp, ad = free_port(), free_port()
        cfg = render_envoy_config(listen_port=lp, admin_port=ad, extproc_port=xp, upstream_port=emu, otlp_port=free_port())
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        tc = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc")["typed_config"]
        tc["processing_mode"] = {"request_header_mode": "SKIP", "response_header_mode": "SKIP", "request_body_mode": "BUFFERED",
                                 "response_body_mode": "BUFFERED", "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"}
        tc["request_attributes"] = REQ_ATTRS
        tc["response_attributes"] = RESP_ATTRS
        for r in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            r["metadata"] = {"filter_metadata": {"nadir": {"provider": r["route"]["cluster"]}}}
        (procs.dir / "front.json").write_text(json.dumps(cfg))
        procs.spawn("front", [str(envoy_binary()), "-c", str(procs.dir / "front.json"), "--use-dynamic-base-id", "-l", "warning"])
        bench.wait_ready(ad)

        def post(body: bytes, hdrs: dict) -> tuple[int, dict, bytes, dict]:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{emu}/__emulator/requests", method="DELETE")).close()
            req = urllib.request.Request(f"http://127.0.0.1:{lp}/v1/chat/completions?x=1", data=body, method="POST",
                                         headers={"content-type": "application/json", **hdrs})
            with urllib.request.urlopen(req, timeout=10) as r:
                st, h, b = r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
            with urllib.request.urlopen(f"http://127.0.0.1:{emu}/__emulator/requests") as r:
                up = json.loads(r.read())[-1]
            up["body"] = base64.b64decode(up["body_base64"])
            up["hdrs"] = {k.lower(): v for k, v in up["headers"]}
            return st, h, b, up

        hdrs = {"authorization": "Bearer sk-probe", "x-probe-remove": "1"}
        print("== 1. headers SKIP, bodies BUFFERED, attributes configured")
        LOG.clear()
        st, h, _, up = post(b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}', hdrs)
        for d in LOG:
            print("  ext_proc got", d["phase"], json.dumps(d["attributes"]))
        print(f"  client: {st}, x-probe-cost on the response: {h.get('x-probe-cost')!r}, transfer-encoding {h.get('transfer-encoding')!r}")
        print(f"  upstream: body model {json.loads(up['body'])['model']!r}, x-probe-set {up['hdrs'].get('x-probe-set')!r}, "
              f"x-probe-remove {up['hdrs'].get('x-probe-remove')!r}, content-length {up['hdrs'].get('content-length')!r}")
        print("== 2. mode_override (response headers SEND, body STREAMED) sent in the request-body reply")
        OVERRIDE["mode"] = p.ProcessingMode(request_header_mode=2, response_header_mode=1, request_body_mode=2,
                                            response_body_mode=1, request_trailer_mode=2, response_trailer_mode=2)
        LOG.clear()
        post(b'{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}', hdrs)
        print("  phases after the override:", [d["phase"] for d in LOG])
        with urllib.request.urlopen(f"http://127.0.0.1:{ad}/stats?filter=ext_proc") as r:
            print("  " + " ".join(ln for ln in r.read().decode().splitlines() if not ln.endswith(": 0")))
        bugs = [ln for ln in (procs.dir / "front.log").read_text().splitlines() if "envoy bug failure" in ln]
        print("  envoy_bug lines in Envoy's log:", len(bugs), (bugs[0].split("]")[-1].strip() if bugs else ""))
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
