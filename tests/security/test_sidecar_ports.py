"""Sidecar mode (issue 14): only the Envoy in the same pod may speak ext_proc to nadir-extproc.

nadir-extproc runs with the shipped Kubernetes settings (k8s/base/settings.yaml; only ports and
paths that cannot exist here are replaced) and a client on ANOTHER host -- a network namespace
joined by a veth pair, standing in for any other pod that can reach this pod's IP -- tries every TCP
port the settings open. It must get gRPC health answers on the kubelet's probe port and
``UNIMPLEMENTED`` for ``Process`` there; no port it can reach may run ``Process``. The Unix socket
(Envoy's way in) still processes the same message, so the check tells the two apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import yaml

from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep, external_processor_pb2_grpc as ep_grpc
from nadir_extproc.stack import free_port
from tests.security.netns import REPO, ForeignHost
from tests.security.serve import serving

K8S = REPO / "k8s"
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
#: Keys of the settings that open a TCP listener.
TCP_KEYS = ("listen", "health_listen")

# Runs inside the foreign namespace: health checks and one fabricated Process message per port.
CLIENT = r"""
import json, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep, external_processor_pb2_grpc as ep_grpc
args = json.loads(%r)
def code(e):
    return e.code().name if isinstance(e, grpc.RpcError) else type(e).__name__
out = {}
for port in args["ports"]:
    res = out[str(port)] = {}
    with grpc.insecure_channel(f"{args['host']}:{port}") as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for svc in ("", args["service"]):
            try:
                res["health:" + svc] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                    h.Check(health_pb2.HealthCheckRequest(service=svc), timeout=3).status)
            except Exception as e:
                res["health:" + svc] = code(e)
        hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in
             ((":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json"),
              ("x-nadir-team", "victim"))])
        msg = ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm, end_of_stream=False))
        try:
            replies = list(ep_grpc.ExternalProcessorStub(ch).Process(iter([msg]), timeout=3))
            res["process"] = "OK:" + ",".join(r.WhichOneof("response") or "" for r in replies)
        except Exception as e:
            res["process"] = code(e)
print(json.dumps(out))
"""


def _headers_msg() -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in
                                     ((":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json"))])
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm, end_of_stream=False))


def _probe_ports() -> set[int]:
    """The ports the kubelet's gRPC probes use on nadir-extproc in k8s/base/deployment.yaml."""
    dep = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    c = next(c for c in dep["spec"]["template"]["spec"]["initContainers"] if c["name"] == "nadir-extproc")
    return {c[p]["grpc"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}


@pytest.fixture()
def k8s_sidecar_service(tmp_path: Path):
    """nadir-extproc on k8s/base/settings.yaml with its TCP ports moved to free ones; yields
    ({original port: port here}, unix socket path)."""
    settings = yaml.safe_load((K8S / "base" / "settings.yaml").read_text())
    moved: dict[int, int] = {}
    for key in TCP_KEYS:
        if settings.get(key):
            host, _, port = settings[key].rpartition(":")
            moved[int(port)] = free_port()
            settings[key] = f"{host}:{moved[int(port)]}"
    sock = str(tmp_path / "extproc.sock")
    settings.update(uds=sock, state_dir=str(tmp_path / "state"))
    settings.setdefault("telemetry", {})["prometheus_port"] = free_port()
    with serving(settings, tmp_path, tmp_path / "serve.log"):
        yield moved, sock


def test_another_host_gets_health_and_unimplemented_process(k8s_sidecar_service):
    why = ForeignHost.unavailable()
    if why:
        pytest.skip(why)
    moved, sock = k8s_sidecar_service
    probes = _probe_ports()
    assert probes <= set(moved), f"probe ports {probes} must be TCP listeners of the settings ({sorted(moved)})"
    host = ForeignHost()
    try:
        host.__enter__()
    except RuntimeError as e:  # e.g. a container without CAP_NET_ADMIN
        pytest.skip(str(e))
    try:
        seen = host.run(CLIENT % json.dumps({"host": host.our_addr, "ports": sorted(moved.values()), "service": SERVICE}))
    finally:
        host.__exit__(None, None, None)
    for original, port in moved.items():
        res = seen[str(port)]
        if original in probes:
            # The kubelet's probe port answers health for the server and the ext_proc service ...
            assert res["health:"] == res[f"health:{SERVICE}"] == "SERVING", (original, res)
            # ... and nothing else: Process is not served there.
            assert res["process"] == "UNIMPLEMENTED", (original, res)
        else:
            # Any other TCP listener is not reachable from another host at all (loopback only).
            assert res["process"] in ("UNIMPLEMENTED", "UNAVAILABLE"), (original, res)
            assert not res["process"].startswith("OK"), (original, res)
    # Not even from inside the pod: every container shares its loopback (the app's too), and no TCP
    # port of the shipped settings serves Process there either.
    for port in moved.values():
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError) as e:
                list(ep_grpc.ExternalProcessorStub(ch).Process(iter([_headers_msg()]), timeout=5))
        assert e.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE), port
    # Envoy's way in -- the Unix socket on the pod's shared emptyDir -- processes the same message.
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        replies = list(ep_grpc.ExternalProcessorStub(ch).Process(iter([_headers_msg()]), timeout=5))
    assert [r.WhichOneof("response") for r in replies] == ["request_headers"]
