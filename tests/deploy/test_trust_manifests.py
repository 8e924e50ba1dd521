"""The trust boundary in the manifests (issue 14, SECURITY.md): every pod that runs nadir-extproc
is selected by a NetworkPolicy that opens none of its ports to other pods (gateway mode: the mTLS
port to the Gateway's Envoy pods only), the probes use the health-only port, and gateway mode's
mTLS pieces name each other consistently (settings, Secret mounts, cert-manager Certificates,
BackendTLSPolicy, EnvoyProxy client certificate, envoy/gateway.yaml)."""

from __future__ import annotations

import pytest
import yaml

from nadir_extproc.config import load_settings
from tests.deploy.k8s_tools import BUILDS, K8S, REPO, container, find, kustomize, one

EG_PODS = {"gateway.envoyproxy.io/owning-gateway-name": "llm-gateway"}


def _extproc_pods(docs: list[dict]) -> list[tuple[dict, dict, list[dict]]]:
    """(pod labels, nadir-extproc container, all container ports) for every pod shape that runs
    nadir-extproc."""
    out = []
    for d in find(docs, "Deployment"):
        spec = d["spec"]["template"]["spec"]
        try:
            c = container(spec, "nadir-extproc")
        except KeyError:
            continue
        ports = [p for x in spec.get("initContainers", []) + spec["containers"] for p in x.get("ports", [])]
        out.append((d["spec"]["template"]["metadata"]["labels"], c, ports))
    for proxy in find(docs, "EnvoyProxy"):
        for c in proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"].get("initContainers", []):
            if c["name"] == "nadir-extproc":
                out.append((EG_PODS, c, c["ports"]))
    return out


def _port_numbers(ports: list[dict], container_ports: list[dict]) -> set[int]:
    names = {p["name"]: p["containerPort"] for p in container_ports}
    return {names.get(p["port"], p["port"]) for p in ports}


@pytest.mark.parametrize("build", BUILDS)
def test_every_extproc_pod_is_behind_a_network_policy(build):
    docs = kustomize(build)
    pods = _extproc_pods(docs)
    assert pods, build
    policies = find(docs, "NetworkPolicy")
    for labels, c, pod_ports in pods:
        mine = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert mine, f"{build}: no NetworkPolicy selects the pod {labels}"
        assert all(p["spec"]["policyTypes"] == ["Ingress"] for p in mine)
        # The probes use the health-only port, which no rule opens (the kubelet comes from the node).
        probe_ports = {c[p]["grpc"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert probe_ports == {50052}, build
        for rule in (r for p in mine for r in p["spec"]["ingress"]):
            opened = _port_numbers(rule.get("ports", []), pod_ports)
            assert 50052 not in opened, (build, rule)
            if 50051 in opened:  # ExternalProcessor over the network: gateway mode's mTLS port only
                assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}},
                                         "podSelector": {"matchLabels": EG_PODS}}], (build, rule)
            if 9464 in opened:  # metrics: Prometheus only (observability overlay)
                assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}], (build, rule)
            assert "from" in rule or opened <= {8080, 10080}, (build, rule)  # open to all: the app / Gateway listener only


def test_gateway_mode_mtls_pieces_fit_together():
    docs = kustomize("overlays/envoy-gateway")
    path = K8S / "overlays" / "envoy-gateway" / "settings.yaml"
    s = load_settings(path, env={})
    cm = one(docs, "ConfigMap", "nadir-extproc-gateway-config")
    assert cm["data"]["settings.yaml"] == path.read_text(encoding="utf-8")  # byte for byte
    dep = one(docs, "Deployment", "nadir-extproc")
    spec = dep["spec"]["template"]["spec"]
    ext = container(spec, "nadir-extproc")
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols[next(m["name"] for m in ext["volumeMounts"] if m["mountPath"] == "/etc/nadir")]["configMap"]["name"] == cm["metadata"]["name"]
    # ExternalProcessor: the network, but mutual TLS only; the probes: the health-only port.
    assert s.listen == "0.0.0.0:50051" and s.tls is not None and not s.allow_plaintext_listen
    assert s.health_listen == "0.0.0.0:50052"
    ports = {p["name"]: p["containerPort"] for p in ext["ports"]}
    assert (ports["grpc"], ports["health"]) == (50051, 50052)
    svc = one(docs, "Service", "nadir-extproc")
    assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("grpc", "grpc")]  # no health, no metrics
    # The certificate files are the server Certificate's Secret, mounted where the settings read them.
    tls_mount = next(m for m in ext["volumeMounts"] if m["name"] == "nadir-tls")
    assert tls_mount["readOnly"] is True
    for f in (s.tls.cert_file, s.tls.key_file, s.tls.client_ca_file):
        assert f.startswith(tls_mount["mountPath"] + "/")
    server = one(docs, "Certificate", "nadir-extproc-server")["spec"]
    client = one(docs, "Certificate", "nadir-gateway-client")["spec"]
    assert vols["nadir-tls"]["secret"]["secretName"] == server["secretName"]
    assert spec["securityContext"]["fsGroup"] == ext["securityContext"]["runAsGroup"]  # can read the 0440 files
    # One private CA signs both; each certificate can only do its side.
    assert server["issuerRef"]["name"] == client["issuerRef"]["name"] == one(docs, "Issuer", "nadir-extproc-ca")["metadata"]["name"]
    assert "server auth" in server["usages"] and "client auth" not in server["usages"]
    assert "client auth" in client["usages"] and "server auth" not in client["usages"]
    # The Gateway: presents the client certificate that nadir-extproc allows, checks the server's name.
    assert s.tls.allowed_client_sans == client["dnsNames"]
    proxy = one(docs, "EnvoyProxy", "llm-gateway")
    assert proxy["spec"]["backendTLS"]["clientCertificateRef"] == {"kind": "Secret", "name": client["secretName"]}
    btp = one(docs, "BackendTLSPolicy", "nadir-extproc-tls")["spec"]
    assert btp["targetRefs"] == [{"group": "", "kind": "Service", "name": svc["metadata"]["name"], "sectionName": "grpc"}]
    assert btp["validation"]["hostname"] in server["dnsNames"]
    assert btp["validation"]["caCertificateRefs"] == [{"group": "", "kind": "Secret", "name": server["secretName"]}]
    policy = one(docs, "EnvoyExtensionPolicy", "nadir-extproc")["spec"]["extProc"][0]["backendRefs"]
    assert policy == [{"name": svc["metadata"]["name"], "port": 50051}]
    # envoy/gateway.yaml (a gateway Envoy of your own) expects the same names.
    gw = yaml.safe_load((REPO / "envoy" / "gateway.yaml").read_text())
    cl = next(c for c in gw["static_resources"]["clusters"] if c["name"] == "nadir_extproc")
    tls = cl["transport_socket"]["typed_config"]
    assert tls["sni"] in server["dnsNames"]
    assert tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": tls["sni"]}}]
    assert tls["common_tls_context"]["alpn_protocols"] == ["h2"]
    assert tls["common_tls_context"]["tls_certificates"]  # the client certificate


def test_sidecar_variant_keeps_no_network_path_to_the_extproc():
    docs = kustomize("overlays/envoy-gateway-sidecar")
    for kind in ("Certificate", "Issuer", "BackendTLSPolicy"):
        assert [d["metadata"]["name"] for d in find(docs, kind) if "nadir" in d["metadata"]["name"]] == [], kind
    assert find(docs, "ConfigMap", "nadir-extproc-gateway-config") == []
    assert "backendTLS" not in one(docs, "EnvoyProxy", "llm-gateway")["spec"]
    s = load_settings(K8S / "base" / "settings.yaml", env={})
    assert s.tls is None and s.listen is None and s.uds  # the in-pod ext_proc: Unix socket only


def test_gateway_envoy_config_differs_from_the_sidecar_only_where_enumerated():
    from tests.deploy.k8s_tools import diff_paths

    side = yaml.safe_load((REPO / "envoy" / "sidecar.yaml").read_text())
    gw = yaml.safe_load((REPO / "envoy" / "gateway.yaml").read_text())
    idx = [c["name"] for c in side["static_resources"]["clusters"]].index("nadir_extproc")
    ep = f"/static_resources/clusters/{idx}/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address"
    assert diff_paths(side, gw) == {
        "/static_resources/listeners/0/name", "/static_resources/listeners/0/address/socket_address/address",
        f"/static_resources/clusters/{idx}/type", f"/static_resources/clusters/{idx}/dns_lookup_family",
        f"/static_resources/clusters/{idx}/transport_socket", f"{ep}/pipe", f"{ep}/socket_address",
    }


def test_tcp_shapes_add_a_loopback_listener_matching_envoys_address():
    """The k8s settings have no TCP ExternalProcessor listener (Unix socket only); the two shapes
    whose Envoy needs TCP add exactly loopback 127.0.0.1:50051, the address their Envoy dials."""
    import tempfile
    from pathlib import Path

    base = container(one(kustomize("base"), "Deployment", "llm-app")["spec"]["template"]["spec"], "nadir-extproc")
    assert "NADIR_LISTEN" not in {e["name"] for e in base["env"]}
    assert load_settings(K8S / "base" / "settings.yaml", env={}).listen is None
    with tempfile.TemporaryDirectory(dir=K8S / "overlays") as d:
        (Path(d) / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\ncomponents: [../../components/extproc-tcp]\n")
        tcp = kustomize(Path(d).relative_to(K8S))
    istio = kustomize("overlays/istio")
    sidecar_tcp = yaml.safe_load(one(tcp, "ConfigMap", "nadir-envoy")["data"]["envoy.yaml"])
    ef = one(istio, "EnvoyFilter", "nadir-extproc")
    clusters = [next(c for c in sidecar_tcp["static_resources"]["clusters"] if c["name"] == "nadir_extproc"),
                next(p["patch"]["value"] for p in ef["spec"]["configPatches"] if p["applyTo"] == "CLUSTER")]
    for docs, cluster in zip((tcp, istio), clusters):
        ext = container(one(docs, "Deployment", "llm-app")["spec"]["template"]["spec"], "nadir-extproc")
        listen = {e["name"]: e.get("value") for e in ext["env"]}["NADIR_LISTEN"]
        addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        assert listen == f"{addr['address']}:{addr['port_value']}" == "127.0.0.1:50051"
        assert load_settings(K8S / "base" / "settings.yaml", env={"NADIR_LISTEN": listen}).listen == listen  # allowed: loopback


def test_gateway_mode_with_operator_provided_secrets(tmp_path):
    """Without the cert-manager component (your own PKI) the overlay still builds and validates and
    expects exactly the two Secrets the docs name."""
    import tempfile
    from pathlib import Path

    from tests.deploy.k8s_tools import K8S_VERSIONS, kubernetes_validate

    src = K8S / "overlays" / "envoy-gateway"
    k = yaml.safe_load((src / "kustomization.yaml").read_text())
    assert k.pop("components") == ["../../components/extproc-mtls-cert-manager"]
    # The temporary overlay sits beside envoy-gateway: same depth for ../../base, siblings' files by path.
    k["resources"] = [r if r.startswith("../") else f"../envoy-gateway/{r}" for r in k["resources"]]
    for gen in k["configMapGenerator"]:
        gen["files"] = [f"{f}=../envoy-gateway/{f}" for f in gen["files"]]
    with tempfile.TemporaryDirectory(dir=K8S / "overlays") as d:
        (Path(d) / "kustomization.yaml").write_text(yaml.safe_dump(k))
        docs = kustomize(Path(d).relative_to(K8S))
    assert find(docs, "Certificate") == find(docs, "Issuer") == []
    spec = one(docs, "Deployment", "nadir-extproc")["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    secrets.add(one(docs, "EnvoyProxy", "llm-gateway")["spec"]["backendTLS"]["clientCertificateRef"]["name"])
    assert secrets == {"nadir-extproc-tls", "nadir-gateway-client-tls"}
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump_all([x for x in docs if x["apiVersion"] in ("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1")]))
    rc, out = kubernetes_validate(path, K8S_VERSIONS[-1])
    assert rc == 0, out


@pytest.mark.parametrize("build", BUILDS)
def test_effective_listeners_with_the_images_environment(build):
    """What nadir-extproc actually runs with in each shape: the settings file from its ConfigMap,
    overridden by the image's ENV (Dockerfile) and the container's env -- an image default must not
    undo the file (e.g. a NADIR_LISTEN in the image would reopen TCP in the sidecar and move the
    gateway's mTLS listener to loopback)."""
    from tests.deploy.test_dockerfile import image_environment

    docs = kustomize(build)
    cms = {cm["metadata"]["name"]: cm for cm in find(docs, "ConfigMap")}
    for labels, c, _ in _extproc_pods(docs):
        env = {**image_environment(), **{e["name"]: e["value"] for e in c.get("env", []) if "value" in e}}
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/nadir")
        if labels == EG_PODS:
            vols = one(docs, "EnvoyProxy", "llm-gateway")["spec"]["provider"]["kubernetes"]["envoyDeployment"]["pod"]["volumes"]
        else:
            dep = next(d for d in find(docs, "Deployment") if d["spec"]["template"]["metadata"]["labels"] == labels)
            vols = dep["spec"]["template"]["spec"]["volumes"]
        cm_name = next(v["configMap"]["name"] for v in vols if v["name"] == mount["name"])
        # The generated name has a hash suffix (or, inside EnvoyProxy, not): match the generator's.
        cm = cms.get(cm_name) or next(x for n, x in cms.items() if n.startswith(cm_name + "-"))
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(cm["data"]["settings.yaml"])
            f.flush()
            s = load_settings(f.name, env=env)
        assert s.health_listen == "0.0.0.0:50052", build
        if s.tls is not None:  # gateway mode
            assert (build, s.listen) == ("overlays/envoy-gateway", "0.0.0.0:50051")
        elif "NADIR_LISTEN" in {e["name"] for e in c.get("env", [])}:  # extproc-tcp / istio: loopback TCP
            assert s.listen == "127.0.0.1:50051", build
        else:  # the socket only
            assert s.listen is None and s.uds, build
