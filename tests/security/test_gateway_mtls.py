"""Gateway mode (issue 14): nadir-extproc on the network, reachable only over mutual TLS by the
gateway's identity. The service runs with the shipped gateway settings
(k8s/overlays/envoy-gateway/settings.yaml; certificate paths and ports replaced) and certificates
made fresh in the test; a real Envoy runs envoy/gateway.yaml (addresses and certificate paths
replaced) in front of the provider emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep, external_processor_pb2_grpc as ep_grpc
from nadir_extproc.stack import free_port
from tests.deploy.conftest import _ready, start_envoy, stop_process
from tests.deploy.k8s_tools import diff_paths, point_cluster_at
from tests.integration.conftest import raw_post
from tests.security.certs import CA, Pem
from tests.security.netns import REPO
from tests.security.serve import serving

SETTINGS = REPO / "k8s" / "overlays" / "envoy-gateway" / "settings.yaml"
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
KEY = "sk-test-not-a-real-key"


def _headers_msg() -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in
                                     ((":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json"))])
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm, end_of_stream=False))


class Pki:
    """The gateway-mode certificates: one CA signs the ext_proc's server certificate and the
    gateway's client certificate; the rest are the ones that must be refused."""

    def __init__(self, d: Path, gateway_san: str) -> None:
        ca = CA(d, "nadir")
        self.server = ca.issue("server", ["nadir-extproc"], server=True)
        self.gateway = ca.issue("gateway", [gateway_san], server=False)
        self.other_workload = ca.issue("other", ["some-other-workload"], server=False)  # same CA, not the gateway
        self.foreign = CA(d, "foreign").issue("foreign", [gateway_san], server=False)  # right name, wrong CA


@contextlib.contextmanager
def _serve_gateway_settings(d: Path):
    """nadir-extproc on the shipped gateway settings with certificates made in ``d`` and free
    ports; yields (settings as run, Pki, log path)."""
    settings = yaml.safe_load(SETTINGS.read_text())
    pki = Pki(d, settings["tls"]["allowed_client_sans"][0])
    settings["tls"].update(cert_file=str(pki.server.cert), key_file=str(pki.server.key), client_ca_file=str(pki.server.ca))
    for key in ("listen", "health_listen"):
        settings[key] = f"{settings[key].rpartition(':')[0]}:{free_port()}"
    settings.update(state_dir=str(d / "state"), router="rules")
    settings["telemetry"]["prometheus_port"] = free_port()
    log = d / "extproc.log"
    with serving(settings, d, log):
        yield settings, pki, log


@pytest.fixture(scope="module")
def gateway_extproc(tmp_path_factory):
    with _serve_gateway_settings(tmp_path_factory.mktemp("gw")) as running:
        yield running


def _port(settings: dict, key: str) -> int:
    return int(settings[key].rpartition(":")[2])


def _process(port: int, pem: Pem | None, trust: Path) -> str:
    """One fabricated Process message over TLS to 127.0.0.1:port with ``pem`` as client
    certificate (None: no certificate); returns ``OK:<reply kind>`` or the gRPC status name."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=trust.read_bytes(),
        private_key=pem.key.read_bytes() if pem else None,
        certificate_chain=pem.cert.read_bytes() if pem else None,
    )
    opts = [("grpc.ssl_target_name_override", "nadir-extproc")]
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=opts) as ch:
        try:
            replies = list(ep_grpc.ExternalProcessorStub(ch).Process(iter([_headers_msg()]), timeout=5))
        except grpc.RpcError as e:
            return e.code().name
    return "OK:" + ",".join(r.WhichOneof("response") or "" for r in replies)


def test_only_the_gateways_certificate_opens_a_process_stream(gateway_extproc):
    settings, pki, log = gateway_extproc
    port, trust = _port(settings, "listen"), pki.server.ca
    assert settings["listen"].startswith("0.0.0.0:")  # a network address: allowed only because of mTLS
    assert _process(port, pki.gateway, trust) == "OK:request_headers"
    assert _process(port, None, trust) == "UNAVAILABLE"  # no client certificate: the handshake fails
    assert _process(port, pki.foreign, trust) == "UNAVAILABLE"  # the gateway's name, another CA
    assert _process(port, pki.other_workload, trust) == "PERMISSION_DENIED"  # our CA, not the gateway
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:  # plain text on the TLS port
        with pytest.raises(grpc.RpcError) as e:
            list(ep_grpc.ExternalProcessorStub(ch).Process(iter([_headers_msg()]), timeout=5))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "refused ext_proc stream" in log.read_text() and "some-other-workload" in log.read_text()


def test_probe_port_is_plain_text_health_only(gateway_extproc):
    settings, _, _ = gateway_extproc
    with grpc.insecure_channel(f"127.0.0.1:{_port(settings, 'health_listen')}") as ch:
        h = health_pb2_grpc.HealthStub(ch)
        for svc in ("", SERVICE):
            assert h.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as e:
            list(ep_grpc.ExternalProcessorStub(ch).Process(iter([_headers_msg()]), timeout=5))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    d = tmp_path_factory.mktemp("emu")
    p = subprocess.Popen([sys.executable, "-m", "nadir_extproc.emulator", "--host", "127.0.0.1", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=open(d / "emulator.log", "w"), start_new_session=True)
    try:
        yield int(_ready(p, r"listening on http://127\.0\.0\.1:(\d+)", "emulator").group(1))
    finally:
        stop_process(p)


def _gateway_envoy_config(extproc_port: int, emulator_port: int, client: Pem | None, trust: Path) -> tuple[dict, int, int]:
    """envoy/gateway.yaml with ONLY what cannot exist here replaced: ports, the ext_proc's address,
    the certificate files (client: None removes the client certificate), providers -> emulator.
    Returns (config, listener port, admin port)."""
    original = yaml.safe_load((REPO / "envoy" / "gateway.yaml").read_text())
    cfg = json.loads(json.dumps(original))
    listen, admin = free_port(), free_port()
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    for lst in cfg["static_resources"]["listeners"]:
        lst["address"]["socket_address"].update(address="127.0.0.1", port_value=listen if lst["name"] == "llm_gateway" else free_port())
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "nadir_extproc":
            ep_addr = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            ep_addr.update(address="127.0.0.1", port_value=extproc_port)
            c["type"] = "STATIC"
            del c["dns_lookup_family"]
            tls = c["transport_socket"]["typed_config"]["common_tls_context"]
            tls["validation_context"]["trusted_ca"]["filename"] = str(trust)
            if client is None:
                del tls["tls_certificates"]
            else:
                tls["tls_certificates"][0]["certificate_chain"]["filename"] = str(client.cert)
                tls["tls_certificates"][0]["private_key"]["filename"] = str(client.key)
        elif c["name"] == "envoy_admin":
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = admin
        else:
            point_cluster_at(c, "127.0.0.1", emulator_port if c["name"] != "otel_collector" else free_port())
    # The mTLS itself (SNI, ALPN, SAN match, filter settings) is the file as shipped.
    ext = next(c for c in original["static_resources"]["clusters"] if c["name"] == "nadir_extproc")
    idx = original["static_resources"]["clusters"].index(ext)
    for p in diff_paths(original, cfg):
        if p.startswith(f"/static_resources/clusters/{idx}/"):
            assert p.endswith(("/filename", "/socket_address/address", "/socket_address/port_value", "/type", "/dns_lookup_family", "/tls_certificates")), p
    return cfg, listen, admin


def _envoy_stat(admin: int, name: str) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=ext_proc", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + ": "):
            return int(line.split(": ")[1])
    return 0


def _last_upstream_model(emulator_port: int) -> str:
    import base64

    with urllib.request.urlopen(f"http://127.0.0.1:{emulator_port}/__emulator/requests", timeout=5) as r:
        return json.loads(base64.b64decode(json.loads(r.read())[-1]["body_base64"]))["model"]


@pytest.mark.parametrize("who", ["gateway", "no_certificate", "other_workload"])
def test_envoy_with_the_gateway_certificate_is_served_and_others_are_refused(gateway_extproc, emulator, tmp_path, who):
    settings, pki, _ = gateway_extproc
    client = {"gateway": pki.gateway, "no_certificate": None, "other_workload": pki.other_workload}[who]
    cfg, listen, admin = _gateway_envoy_config(_port(settings, "listen"), emulator, client, pki.server.ca)
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(cfg))
    envoy = start_envoy(path, tmp_path / "envoy.log", admin)
    try:
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
        status, headers, _ = raw_post(f"http://127.0.0.1:{listen}/v1/chat/completions", body, {
            "authorization": f"Bearer {KEY}", "x-nadir-tier": "weak", "x-emulator-usage": json.dumps({"input": 1000, "output": 100})})
        if who == "gateway":
            # Processed: routed (weak tier -> gpt-4o-mini) and priced,
            # gpt-4o-mini $0.15 in / $0.60 out: 1000 x 0.15 + 100 x 0.60 millionths = 0.00021.
            assert status == 200 and _last_upstream_model(emulator) == "gpt-4o-mini"
            assert headers["x-nadir-cost-usd"] == "0.00021"
            assert _envoy_stat(admin, "http.llm.ext_proc.streams_failed") == 0
        else:
            # Refused by nadir-extproc: Envoy fails open (failure_mode_allow), so the request goes
            # on UNPROCESSED -- nothing rewritten, priced or written to the ledger -- and, as it asks
            # for model "auto", the fail-closed guard (README "Reliability") answers 503 instead of
            # letting the provider answer 404 for "auto": no upstream call carries "auto".
            assert status == 503 and headers["x-nadir-error"] == "extproc_unavailable"
            assert _last_upstream_model(emulator) != "auto"
            assert [k for k in headers if k.startswith("x-nadir-")] == ["x-nadir-error"]
            assert _envoy_stat(admin, "http.llm.ext_proc.failure_mode_allowed") >= 1
    finally:
        stop_process(envoy)


def test_renewed_certificates_are_used_without_a_restart(tmp_path):
    # cert-manager renews the Secret in place; the next handshake must use the new files.
    with _serve_gateway_settings(tmp_path) as (settings, pki, log):
        port = _port(settings, "listen")
        assert _process(port, pki.gateway, pki.server.ca) == "OK:request_headers"
        # Renewal by a NEW CA for both sides (the hardest case: trust changes too).
        new = CA(tmp_path, "renewed")
        server = new.issue("server2", ["nadir-extproc"], server=True)
        gateway = new.issue("gateway2", settings["tls"]["allowed_client_sans"], server=False)
        for src, dst in ((server.cert, settings["tls"]["cert_file"]), (server.key, settings["tls"]["key_file"]),
                         (new.path, settings["tls"]["client_ca_file"])):
            tmp = Path(dst + ".new")
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dst)  # atomic, as the kubelet swaps a Secret volume's files
        deadline = time.monotonic() + 10
        while _process(port, gateway, new.path) != "OK:request_headers":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert _process(port, pki.gateway, pki.server.ca) == "UNAVAILABLE"  # the old identity is gone
        assert "certificate files changed" in log.read_text()
