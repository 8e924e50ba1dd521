"""Every kustomize build renders, validates (kubernetes-validate --strict, k8s 1.29 and 1.33; CRDs
against the schemas in k8s/schemas), and says what the deploy guide promises: native sidecars with
gRPC probes, hardened security contexts, resources, and ConfigMaps that are the repo's files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from nadir_extproc.config import load_settings
from tests.deploy.k8s_tools import BUILDS, K8S, K8S_VERSIONS, REPO, container, find, kubernetes_validate, kustomize, one

EXTPROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
BUILT_IN_GROUPS = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"}


def _schema_for(doc: dict) -> Path:
    group, _, version = doc["apiVersion"].rpartition("/")
    return K8S / "schemas" / group / f"{doc['kind'].lower()}_{version}.json"


@pytest.fixture(scope="module", params=BUILDS)
def build(request) -> tuple[str, list[dict]]:
    return request.param, kustomize(request.param)


def test_build_validates_strictly_on_both_kubernetes_versions(build, tmp_path):
    name, docs = build
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    builtin = sum(1 for d in docs if d["apiVersion"] in BUILT_IN_GROUPS)
    for version in K8S_VERSIONS:
        rc, out = kubernetes_validate(path, version)
        assert rc == 0, f"{name} on {version}:\n{out}"
        short = version.rsplit(".", 1)[0]
        assert out.count(f"passed for resource") == builtin, out
        assert f"against version {short}" in out
        # Only CRD kinds may lack a Kubernetes schema; they are checked below.
        for line in out.splitlines():
            if "Couldn't find schema" in line:
                assert "api version v1 " not in line and "apps/v1" not in line and "policy/v1" not in line, line
                assert " networking.k8s.io/v1 " not in line, line


def test_custom_resources_match_the_crd_schemas_in_the_repo(build):
    name, docs = build
    crds = [d for d in docs if d["apiVersion"] not in BUILT_IN_GROUPS]
    if name in ("base", "overlays/observability"):
        assert crds == []
        return
    assert crds
    for doc in crds:
        schema_path = _schema_for(doc)
        assert schema_path.exists(), f"{doc['kind']} {doc['apiVersion']}: no schema at {schema_path.relative_to(REPO)}"
        jsonschema.validate(doc, json.loads(schema_path.read_text()))


def test_crd_schemas_reject_misspelt_and_misplaced_fields():
    # The schemas are closed: a typo must fail, or the test above proves nothing.
    docs = kustomize("overlays/envoy-gateway") + kustomize("overlays/istio")
    policy = one(docs, "EnvoyExtensionPolicy", "nadir-extproc")
    bad = json.loads(json.dumps(policy))
    bad["spec"]["extProc"][0]["processingMode"]["request"]["body"] = "buffered"  # enum is case-sensitive
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(_schema_for(policy).read_text()))
    bad = json.loads(json.dumps(policy))
    bad["spec"]["lua"][0]["valueRef"] = {"group": "", "kind": "ConfigMap", "name": "x"}  # inline OR valueRef
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(_schema_for(policy).read_text()))
    proxy = one(docs, "EnvoyProxy", "llm-gateway")
    bad = json.loads(json.dumps(proxy))
    bad["spec"]["filterOrder"][0]["name"] = "envoy.filters.http.luaa"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(_schema_for(proxy).read_text()))
    bad["spec"]["filterOrder"][0] = {"name": "envoy.filters.http.lua", "before": "envoy.filters.http.ext_proc", "after": "envoy.filters.http.ext_proc"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(_schema_for(proxy).read_text()))
    ef = one(docs, "EnvoyFilter", "nadir-extproc")
    bad = json.loads(json.dumps(ef))
    bad["spec"]["configPatches"][1]["match"]["listener"]["port"] = 80  # it is portNumber
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(_schema_for(ef).read_text()))


def _pods(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in find(docs, "Deployment")]


def test_every_container_is_hardened_and_sized(build):
    name, docs = build
    pods = _pods(docs)
    for proxy in find(docs, "EnvoyProxy"):  # the Gateway's pod additions
        dep = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]
        if dep.get("initContainers"):
            pods.append((proxy["metadata"]["name"], {"initContainers": dep["initContainers"], "containers": []}))
    assert pods
    for pod_name, spec in pods:
        if "securityContext" in spec:
            assert spec["securityContext"]["runAsNonRoot"] is True, pod_name
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", pod_name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            where = f"{name}: {pod_name}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"]), where


def test_base_runs_extproc_then_envoy_as_native_sidecars_with_probes():
    docs = kustomize("base")
    spec = one(docs, "Deployment", "llm-app")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["nadir-extproc", "envoy"]  # start order
    assert all(c["restartPolicy"] == "Always" for c in spec["initContainers"])
    ext = container(spec, "nadir-extproc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ext[probe]["grpc"]["port"] == 50052, probe  # health_listen: grpc.health.v1 only
    assert ext["startupProbe"]["grpc"]["service"] == EXTPROC_SERVICE
    assert ext["readinessProbe"]["grpc"]["service"] == EXTPROC_SERVICE
    envoy = container(spec, "envoy")
    assert envoy["startupProbe"]["httpGet"] == {"path": "/ready", "port": 9902}
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 9902}
    # Envoy and nadir-extproc share the socket directory; the app does not need it.
    mounts = lambda c: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts(ext)["nadir-socket"] == mounts(envoy)["nadir-socket"] == "/var/run/nadir"
    assert "nadir-socket" not in mounts(container(spec, "app"))
    app_env = {e["name"]: e["value"] for e in container(spec, "app")["env"]}
    assert app_env == {"OPENAI_BASE_URL": "http://127.0.0.1:10000/v1", "ANTHROPIC_BASE_URL": "http://127.0.0.1:10000"}
    # The pod outlives nadir-extproc's drain (grace_period_s) so the kubelet never SIGKILLs it.
    settings = load_settings(K8S / "base" / "settings.yaml", env={})
    assert spec["terminationGracePeriodSeconds"] > settings.grace_period_s
    pdb = one(docs, "PodDisruptionBudget", "llm-app")
    assert pdb["spec"]["selector"]["matchLabels"] == one(docs, "Deployment", "llm-app")["spec"]["selector"]["matchLabels"]


def test_configmaps_hold_the_repo_files_byte_for_byte():
    docs = kustomize("base")
    envoy_cm = one(docs, "ConfigMap", "nadir-envoy")
    assert envoy_cm["data"]["envoy.yaml"] == (REPO / "envoy" / "sidecar.yaml").read_text(encoding="utf-8")
    cfg_cm = one(docs, "ConfigMap", "nadir-extproc-config")
    assert cfg_cm["data"]["settings.yaml"] == (K8S / "base" / "settings.yaml").read_text(encoding="utf-8")
    # The Deployment mounts exactly these (hash-suffixed) ConfigMaps where the processes read them.
    spec = one(docs, "Deployment", "llm-app")["spec"]["template"]["spec"]
    vols = {v["name"]: v.get("configMap", {}).get("name") for v in spec["volumes"]}
    assert vols["envoy-config"] == envoy_cm["metadata"]["name"]
    assert vols["nadir-config"] == cfg_cm["metadata"]["name"]
    envoy = container(spec, "envoy")
    assert envoy["args"][envoy["args"].index("--config-path") + 1] == "/etc/envoy/envoy.yaml"
    ext_env = {e["name"]: e.get("value") for e in container(spec, "nadir-extproc")["env"]}
    assert ext_env["NADIR_CONFIG"] == "/etc/nadir/settings.yaml"
    # The observability overlay keeps the same bytes and adds the dashboard file unchanged.
    obs = kustomize("overlays/observability")
    assert one(obs, "ConfigMap", "nadir-envoy")["data"] == envoy_cm["data"]
    assert one(obs, "ConfigMap", "grafana-dashboard-nadir")["data"]["nadir-extproc.json"] == (K8S / "grafana" / "nadir-extproc.json").read_text()


def test_settings_file_loads_and_matches_the_sidecar_wiring():
    s = load_settings(K8S / "base" / "settings.yaml", env={})
    assert s.uds == "/var/run/nadir/extproc.sock"
    # ExternalProcessor only on loopback and the socket; the pod IP gets the health-only port, which is
    # the one the kubelet probes (issue 14, SECURITY.md; tests/security runs it from another host).
    assert s.listen is None and s.tls is None and not s.allow_plaintext_listen  # Unix socket only
    assert s.health_listen == "0.0.0.0:50052"
    spec = one(kustomize("base"), "Deployment", "llm-app")["spec"]["template"]["spec"]
    ext = container(spec, "nadir-extproc")
    assert {ext[p]["grpc"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {50052}
    assert [p["containerPort"] for p in ext["ports"] if p["containerPort"] in (50051, 50052)] == [50052]
    sidecar = yaml.safe_load((REPO / "envoy" / "sidecar.yaml").read_text())
    cluster = next(c for c in sidecar["static_resources"]["clusters"] if c["name"] == "nadir_extproc")
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]["path"] == s.uds
    limit = sidecar["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"]
    assert s.max_message_bytes > limit  # a full 8 MiB body plus the gRPC framing fits


def test_tcp_component_swaps_only_the_extproc_address():
    import tempfile

    with tempfile.TemporaryDirectory(dir=K8S / "overlays") as d:
        (Path(d) / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\ncomponents: [../../components/extproc-tcp]\n"
        )
        docs = kustomize(Path(d).relative_to(K8S))
    assert one(docs, "ConfigMap", "nadir-envoy")["data"]["envoy.yaml"] == (REPO / "envoy" / "sidecar-tcp.yaml").read_text()
    uds = yaml.safe_load((REPO / "envoy" / "sidecar.yaml").read_text())
    tcp = yaml.safe_load((REPO / "envoy" / "sidecar-tcp.yaml").read_text())
    from tests.deploy.k8s_tools import diff_paths

    idx = [c["name"] for c in uds["static_resources"]["clusters"]].index("nadir_extproc")
    ep = f"/static_resources/clusters/{idx}/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address"
    assert diff_paths(uds, tcp) == {f"{ep}/pipe", f"{ep}/socket_address"}
    assert tcp["static_resources"]["clusters"][idx]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 50051}
    }


def _extproc_filter(cfg: dict) -> dict:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc")


def test_every_deployment_shape_uses_the_local_stacks_extproc_settings():
    local = _extproc_filter(yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text()))["typed_config"]
    sidecar = _extproc_filter(yaml.safe_load((REPO / "envoy" / "sidecar.yaml").read_text()))["typed_config"]
    assert sidecar == local
    ef = one(kustomize("overlays/istio"), "EnvoyFilter", "nadir-extproc")
    patch = next(p for p in ef["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER")["patch"]["value"]
    assert patch["typed_config"] == local
    policy = one(kustomize("overlays/envoy-gateway"), "EnvoyExtensionPolicy", "nadir-extproc")["spec"]["extProc"][0]
    assert policy["failOpen"] is local["failure_mode_allow"] is True
    assert policy["messageTimeout"] == "500ms" and local["message_timeout"] == "0.5s"
    assert policy["processingMode"] == {"allowModeOverride": True, "request": {"body": "Buffered"}, "response": {"body": "Buffered"}}
    assert local["processing_mode"]["request_body_mode"] == local["processing_mode"]["response_body_mode"] == "BUFFERED"


def test_extproc_container_is_the_same_in_every_shape():
    base = container(one(kustomize("base"), "Deployment", "llm-app")["spec"]["template"]["spec"], "nadir-extproc")
    eg = kustomize("overlays/envoy-gateway")
    shared = container(one(eg, "Deployment", "nadir-extproc")["spec"]["template"]["spec"], "nadir-extproc")
    # Gateway mode adds exactly the mTLS port and the certificate mount (issue 14).
    mtls_port = {"name": "grpc", "containerPort": 50051, "protocol": "TCP"}
    tls_mount = {"name": "nadir-tls", "mountPath": "/etc/nadir-tls", "readOnly": True}
    assert mtls_port in shared["ports"] and tls_mount in shared["volumeMounts"]
    shared = {**shared, "ports": [p for p in shared["ports"] if p != mtls_port],
              "volumeMounts": [m for m in shared["volumeMounts"] if m != tls_mount]}
    assert {k: v for k, v in base.items() if k != "restartPolicy"} == shared
    egs = kustomize("overlays/envoy-gateway-sidecar")
    assert find(egs, "Deployment", "nadir-extproc") == []
    in_gateway = one(egs, "EnvoyProxy", "llm-gateway")["spec"]["provider"]["kubernetes"]["envoyDeployment"]["initContainers"][0]
    norm = lambda c: {**c, "ports": [{**p, "name": p["name"].removeprefix("nadir-")} for p in c["ports"]], "securityContext": {k: v for k, v in c["securityContext"].items() if k != "runAsNonRoot"},
                      "volumeMounts": [{**m, "name": m["name"].replace("nadir-tmp", "tmp")} for m in c["volumeMounts"]]}
    assert norm(in_gateway) == base
    backend = one(egs, "Backend", "nadir-extproc-local")["spec"]["endpoints"][0]["unix"]["path"]
    assert backend == load_settings(K8S / "base" / "settings.yaml", env={}).uds
    policy = one(egs, "EnvoyExtensionPolicy", "nadir-extproc")["spec"]["extProc"][0]["backendRefs"]
    assert policy == [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "nadir-extproc-local"}]


def test_gateway_pod_additions_are_valid_core_v1(tmp_path):
    # EnvoyProxy embeds core/v1 Containers and Volumes: validate them as a Pod with the k8s schemas.
    proxy = one(kustomize("overlays/envoy-gateway-sidecar"), "EnvoyProxy", "llm-gateway")
    dep = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]
    envoy = {"name": "envoy", "image": "envoyproxy/envoy:v1.40.0", "volumeMounts": dep["container"]["volumeMounts"]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gateway-pod-additions"},
           "spec": {"initContainers": dep["initContainers"], "containers": [envoy], "volumes": dep["pod"]["volumes"]}}
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    for version in K8S_VERSIONS:
        rc, out = kubernetes_validate(path, version)
        assert rc == 0 and "passed for resource pod/gateway-pod-additions" in out, out
    mounted = {m["name"] for c in dep["initContainers"] + [envoy] for m in c["volumeMounts"]}
    assert mounted == {v["name"] for v in dep["pod"]["volumes"]}


def test_istio_overlay_hands_the_proxy_role_to_istio():
    docs = kustomize("overlays/istio")
    dep = one(docs, "Deployment", "llm-app")
    spec = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["nadir-extproc"]
    assert dep["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert find(docs, "ConfigMap", "nadir-envoy") == []
    assert "envoy-config" not in {v["name"] for v in spec["volumes"]}
    env = {e["name"]: e["value"] for e in container(spec, "app")["env"]}
    assert env["OPENAI_BASE_URL"] == "http://api.openai.com/v1"  # plain HTTP; the mesh adds TLS
    se = one(docs, "ServiceEntry", "llm-providers")["spec"]
    http = next(p for p in se["ports"] if p["number"] == 80)
    assert (http["protocol"], http["targetPort"]) == ("HTTP", 443)
    for dr in find(docs, "DestinationRule"):
        tls = dr["spec"]["trafficPolicy"]["portLevelSettings"][0]
        assert tls["port"]["number"] == 80 and tls["tls"] == {"mode": "SIMPLE", "sni": dr["spec"]["host"]}
    assert {dr["spec"]["host"] for dr in find(docs, "DestinationRule")} == set(se["hosts"])
    ef = one(docs, "EnvoyFilter", "nadir-extproc")
    vhosts = {p["match"]["routeConfiguration"]["vhost"]["name"] for p in ef["spec"]["configPatches"] if p["applyTo"] == "VIRTUAL_HOST"}
    assert vhosts == {f"{h}:80" for h in se["hosts"]}
    assert all(p["match"]["context"] == "SIDECAR_OUTBOUND" for p in ef["spec"]["configPatches"])
