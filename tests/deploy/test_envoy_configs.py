"""Every Envoy config a deployment ships passes `envoy --mode validate` (the ConfigMap contents as
kustomize renders them, and istio-proxy's config with our EnvoyFilter applied), and the two that
carry traffic are run for real: the sidecar config over the Unix socket (every provider path,
streams included), and the Istio patch, which must process provider hosts only. The sidecar config
differs from envoy/envoy.yaml (what tests/integration runs) only where a test here enumerates."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import openai
import pytest
import yaml

from nadir_extproc.stack import envoy_binary, free_port
from tests.deploy.conftest import start_envoy, stop_process
from tests.deploy.k8s_tools import (BUILDS, REPO, apply_envoyfilter, diff_paths, eg_early_header_mutation, eg_http_filters, find, kustomize,
                                    one, point_cluster_at)
from tests.integration.conftest import raw_post

KEY = "sk-test-not-a-real-key"
HERE = Path(__file__).parent


def _validate(cfg: dict | str, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    r = subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OK" in r.stdout + r.stderr, f"{name}: {(r.stdout + r.stderr)[-3000:]}"


@pytest.mark.parametrize("build", BUILDS)
def test_envoy_configs_embedded_in_configmaps_validate(build, tmp_path):
    cms = [cm for cm in find(kustomize(build), "ConfigMap") if "envoy.yaml" in cm.get("data", {})]
    if build in ("overlays/istio", "overlays/envoy-gateway", "overlays/envoy-gateway-sidecar"):
        assert cms == []  # the mesh's / Gateway's Envoy is used there
        return
    assert cms
    for cm in cms:
        _validate(cm["data"]["envoy.yaml"], tmp_path, f"{cm['metadata']['name']}.yaml")


def _istio_config() -> dict:
    ef = one(kustomize("overlays/istio"), "EnvoyFilter", "nadir-extproc")
    return apply_envoyfilter(yaml.safe_load((HERE / "istio_bootstrap.yaml").read_text()), ef)


def test_istio_envoyfilter_assembled_into_a_bootstrap_validates(tmp_path):
    cfg = _istio_config()
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.ext_proc", "envoy.filters.http.lua", "envoy.filters.http.router"]
    _validate(cfg, tmp_path, "istio-proxy.json")
    # The check has teeth: a wrong field in the patch makes Envoy reject the bootstrap.
    broken = json.loads(json.dumps(cfg))
    hcm = broken["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"][0]["typed_config"]["processing_mode"]["request_body_mode"] = "BUFFER"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    r = subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


def _sidecar_on_loopback(up, listen: int, admin: int, health: int, collector: int) -> dict:
    """envoy/sidecar.yaml with ONLY the addresses that cannot exist here replaced: ports, the
    socket path, and the provider/collector clusters pointed at loopback without TLS."""
    original = yaml.safe_load((REPO / "envoy" / "sidecar.yaml").read_text())
    cfg = json.loads(json.dumps(original))
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    listeners = {l["name"]: l for l in cfg["static_resources"]["listeners"]}
    listeners["llm_egress"]["address"]["socket_address"]["port_value"] = listen
    listeners["health"]["address"]["socket_address"].update(address="127.0.0.1", port_value=health)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "nadir_extproc":
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]["path"] = up.extproc_sock
        elif c["name"] == "envoy_admin":
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = admin
        elif c["name"] == "otel_collector":
            point_cluster_at(c, "127.0.0.1", collector)
        else:
            point_cluster_at(c, "127.0.0.1", up.emulator_port)
    # Everything else (filters, routes, ext_proc settings, timeouts, limits) is the file as shipped.
    for p in diff_paths(original, cfg):
        if p.startswith("/static_resources/listeners"):
            assert p.endswith(("/address/socket_address/port_value", "/address/socket_address/address")), p
        elif p != "/admin/address/socket_address/port_value":
            assert p.startswith("/static_resources/clusters/"), p
            assert "/load_assignment/" in p or p.endswith(("/type", "/transport_socket", "/dns_lookup_family")), p
    return cfg


@pytest.fixture(scope="module")
def sidecar_envoy(upstreams, tmp_path_factory):
    """The real Envoy running envoy/sidecar.yaml (addresses replaced) in front of ``upstreams``;
    yields (listen port, admin port, health port)."""
    d = tmp_path_factory.mktemp("sidecar")
    listen, admin, health, collector = free_port(), free_port(), free_port(), free_port()
    path = d / "sidecar.json"
    path.write_text(json.dumps(_sidecar_on_loopback(upstreams, listen, admin, health, collector)))
    envoy = start_envoy(path, d / "envoy.log", admin)
    try:
        yield listen, admin, health
    finally:
        stop_process(envoy)


def test_sidecar_config_serves_llm_calls_over_the_unix_socket(upstreams, sidecar_envoy):
    listen, admin, health = sidecar_envoy
    with urllib.request.urlopen(f"http://127.0.0.1:{health}/ready", timeout=5) as r:
        assert r.status == 200  # the kubelet's startup/readiness probe
    with urllib.request.urlopen(f"http://127.0.0.1:{health}/stats/prometheus", timeout=5) as r:
        assert b"envoy_cluster_upstream_cx_total" in r.read()
    oai = openai.OpenAI(base_url=f"http://127.0.0.1:{listen}/v1", api_key=KEY, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert raw.http_response.status_code == 200
    # Routed by the ext_proc (ONNX router, k8s settings: a greeting scores low -> weak tier) and priced.
    assert raw.headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
    assert raw.headers["x-nadir-cost-usd"]
    # Only the Unix socket connects Envoy to nadir-extproc in this config.
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5) as r:
        clusters = r.read().decode()
    assert f"nadir_extproc::{upstreams.extproc_sock}::rq_total::" in clusters
    stats = urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=ext_proc", timeout=5).read().decode()
    assert "http.llm.ext_proc.streams_started: " in stats and "http.llm.ext_proc.streams_started: 0" not in stats


def _promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression refers to."""
    metrics = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr))
    labels = set(re.findall(r"[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", expr))
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels |= {g.strip() for g in group.split(",") if g.strip()}
    return metrics, labels


def test_dashboard_queries_only_metrics_and_labels_the_service_serves(upstreams, sidecar_envoy):
    listen = sidecar_envoy[0]
    url = f"http://127.0.0.1:{listen}/v1/chat/completions"
    body = lambda model: json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    tags = {"x-nadir-team": "search", "x-nadir-feature": "chat", "x-nadir-env": "prod", "authorization": f"Bearer {KEY}"}
    assert raw_post(url, body("auto"), tags)[0] == 200
    assert raw_post(url, body("gpt-4o"), tags)[0] == 200  # explicit model: shadow routing's opportunity counter
    assert raw_post(url, body("no-such-model"), tags)[0] == 404  # unpriced: provider_error
    served: dict[str, set[str]] = {}
    deadline = __import__("time").monotonic() + 10
    while not {"nadir_unpriced_requests_total", "nadir_llm_opportunity_USD_total"} <= set(served) and __import__("time").monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{upstreams.metrics_port}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
            if m and not line.startswith("#"):
                served.setdefault(m.group(1), set()).update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2) or ""))
    dash = json.loads((REPO / "k8s" / "grafana" / "nadir-extproc.json").read_text())
    refs = [(t["expr"], *_promql_names(t["expr"])) for p in dash["panels"] for t in p["targets"]]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", v["definition"]).groups()
            refs.append((v["definition"], {metric}, {label}))
    checked = set()
    for expr, metrics, labels in refs:
        assert metrics, expr
        for name in metrics:
            assert name in served, f"{name} (in {expr!r}) is not served; served: {sorted(n for n in served if n.startswith(('nadir', 'gen_ai')))}"
            missing = labels - served[name] - {"le"}
            assert not missing, f"{name} has no label(s) {missing} (in {expr!r})"
            checked.add(name)
    assert {"nadir_llm_cost_USD_total", "nadir_llm_savings_USD", "nadir_unpriced_requests_total", "nadir_router_decisions_total",
            "gen_ai_client_token_usage_sum", "nadir_extproc_processing_duration_seconds_bucket", "nadir_llm_opportunity_USD_total"} <= checked


def _start_istio(upstreams, tmp_path: Path, extproc_port: int) -> tuple[subprocess.Popen, str]:
    """The assembled istio-proxy config in a real Envoy, the ext_proc cluster at ``extproc_port``
    (was 127.0.0.1:50051), the provider clusters at the emulator; (process, chat URL)."""
    cfg = _istio_config()
    listen, admin = free_port(), free_port()
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "nadir_extproc":
            point_cluster_at(c, "127.0.0.1", extproc_port)
        else:
            point_cluster_at(c, "127.0.0.1", upstreams.emulator_port)
    path = tmp_path / "istio.json"
    path.write_text(json.dumps(cfg))
    return start_envoy(path, tmp_path / "envoy.log", admin), f"http://127.0.0.1:{listen}/v1/chat/completions"


def _models_seen(upstreams) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{upstreams.emulator_port}/__emulator/requests", timeout=5) as r:
        return [json.loads(__import__("base64").b64decode(row["body_base64"]) or b"{}").get("model") for row in json.loads(r.read())]


def test_istio_patch_processes_provider_hosts_only(upstreams, tmp_path):
    envoy, url = _start_istio(upstreams, tmp_path, upstreams.extproc_port)
    try:
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
        status, headers, _ = raw_post(url, body, {"host": "api.openai.com", "authorization": f"Bearer {KEY}"})
        assert status == 200
        assert headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
        # Another host on the same port: the filter stays disabled, nothing is rewritten or added.
        status, headers, _ = raw_post(url, body, {"host": "internal-service.example", "authorization": f"Bearer {KEY}"})
        assert not any(k.startswith("x-nadir-") for k in headers)
        assert _models_seen(upstreams)[-2:] == ["gpt-4o-mini", "auto"]
    finally:
        stop_process(envoy)


def test_istio_patch_fails_closed_for_auto_when_the_extproc_is_down(upstreams, tmp_path):
    """README "Reliability" through the Istio patch: the ext_proc is down (nothing listens on its
    port): ``model: auto`` to a provider host gets the 503 (OpenAI's error shape, named cause)
    and never reaches the provider; an explicit model passes unprocessed (fail-open); another host
    is untouched by the guard."""
    envoy, url = _start_istio(upstreams, tmp_path, free_port())  # a port nothing listens on
    try:
        before = len(_models_seen(upstreams))
        auto = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
        status, headers, body = raw_post(url, auto, {"host": "api.openai.com", "authorization": f"Bearer {KEY}"})
        assert status == 503 and headers["x-nadir-error"] == "extproc_unavailable" and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "nadir_extproc_unavailable"
        anthropic = json.dumps({"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).encode()
        status, headers, body = raw_post(url.replace("/chat/completions", "/messages"), anthropic,
                                         {"host": "api.anthropic.com", "x-api-key": KEY, "anthropic-version": "2023-06-01"})
        assert status == 503 and json.loads(body)["error"]["type"] == "api_error"
        assert len(_models_seen(upstreams)) == before  # the provider was not called
        explicit = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
        status, headers, _ = raw_post(url, explicit, {"host": "api.openai.com", "authorization": f"Bearer {KEY}"})
        assert status == 200 and "x-nadir-cost-usd" not in headers  # passed unprocessed
        status, headers, _ = raw_post(url, auto, {"host": "internal-service.example", "authorization": f"Bearer {KEY}"})
        assert status != 503 and "x-nadir-error" not in headers
        assert _models_seen(upstreams)[-2:] == ["gpt-4o-mini", "auto"]
        # A client's own x-nadir-provider (the header the guard reads as "the ext_proc answered")
        # was removed before the filters ran: still the 503, the provider not called.
        before = len(_models_seen(upstreams))
        status, headers, _ = raw_post(url, auto, {"host": "api.openai.com", "authorization": f"Bearer {KEY}", "x-nadir-provider": "openai"})
        assert status == 503 and headers["x-nadir-error"] == "extproc_unavailable"
        assert len(_models_seen(upstreams)) == before
    finally:
        stop_process(envoy)


def _lua_of(cfg: dict) -> str:
    """The fail-closed Lua of an Envoy config (its one Lua filter's source)."""
    srcs = [h["typed_config"]["default_source_code"]["inline_string"] for lst in cfg["static_resources"]["listeners"]
            for ch in lst["filter_chains"] for f in ch["filters"] for h in f["typed_config"].get("http_filters", [])
            if h["name"] == "envoy.filters.http.lua"]
    assert len(srcs) == 1
    return srcs[0]


def test_overlays_carry_the_fail_closed_guard_of_envoy_yaml():
    """The Istio and Envoy Gateway overlays run envoy/envoy.yaml's fail-closed Lua, byte for byte,
    after the ext_proc; Envoy Gateway needs EnvoyProxy filterOrder for that (its default order
    puts Lua first, which would answer 503 to every auto request before the ext_proc routed it)."""
    lua = _lua_of(yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text()))
    for f in ("gateway.yaml", "sidecar.yaml", "sidecar-tcp.yaml"):
        assert _lua_of(yaml.safe_load((REPO / "envoy" / f).read_text())) == lua, f
    assert _lua_of(_istio_config()) == lua
    ef = one(kustomize("overlays/istio"), "EnvoyFilter", "nadir-extproc")
    for p in ef["spec"]["configPatches"]:
        if p["applyTo"] == "VIRTUAL_HOST":  # switched on wherever the ext_proc is
            tpfc = p["patch"]["value"]["typed_per_filter_config"]
            assert tpfc["envoy.filters.http.lua"] == tpfc["envoy.filters.http.ext_proc"]
    for build in ("overlays/envoy-gateway", "overlays/envoy-gateway-sidecar"):
        docs = kustomize(build)
        policy = one(docs, "EnvoyExtensionPolicy", "nadir-extproc")
        assert policy["spec"]["lua"] == [{"type": "Inline", "inline": lua}], build
        order = [n.split("/")[0] for n in eg_http_filters(policy, one(docs, "EnvoyProxy", "llm-gateway"))]
        assert order == ["envoy.filters.http.ext_proc", "envoy.filters.http.lua", "envoy.filters.http.router"], build
        assert [n.split("/")[0] for n in eg_http_filters(policy, None)][:2] == ["envoy.filters.http.lua", "envoy.filters.http.ext_proc"]


def _start_eg(upstreams, tmp_path: Path, extproc_port: int, with_filter_order: bool) -> tuple[subprocess.Popen, str, int]:
    """What the Gateway's Envoy runs for the envoy-gateway overlay, as far as these filters go:
    envoy/gateway.yaml (the Gateway-equivalent config: its ext_proc filter is the policy's extProc
    entry, checked in test_manifests) with its HTTP filters replaced by Envoy Gateway's translation
    of the overlay's EnvoyExtensionPolicy -- the ext_proc filter, the policy's Lua as written, in
    the order Envoy Gateway sorts them (with or without the EnvoyProxy's filterOrder) -- and its
    early header mutation by the translation of the overlay's ClientTrafficPolicy. Addresses
    point at loopback (the ext_proc at ``extproc_port``, plain TCP); (process, chat URL, admin port)."""
    docs = kustomize("overlays/envoy-gateway")
    policy = one(docs, "EnvoyExtensionPolicy", "nadir-extproc")
    early = eg_early_header_mutation(one(docs, "ClientTrafficPolicy", "llm-gateway-buffer"))
    names = eg_http_filters(policy, one(docs, "EnvoyProxy", "llm-gateway") if with_filter_order else None)
    cfg = yaml.safe_load((REPO / "envoy" / "gateway.yaml").read_text())
    listen, admin = free_port(), free_port()
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    for lst in cfg["static_resources"]["listeners"]:
        lst["address"]["socket_address"].update(address="127.0.0.1", port_value=listen if lst["name"] == "llm_gateway" else free_port())
        if lst["name"] == "llm_gateway":
            hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
            hcm.pop("early_header_mutation_extensions", None)  # the overlay's own, translated, instead
            if early:
                hcm["early_header_mutation_extensions"] = early
            shipped = {h["name"]: h for h in hcm["http_filters"]}
            lua = {"@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                   "default_source_code": {"inline_string": policy["spec"]["lua"][0]["inline"]}}
            hcm["http_filters"] = [{"name": n, "typed_config": lua if n.startswith("envoy.filters.http.lua")
                                    else shipped[n.split("/")[0]]["typed_config"]} for n in names]
            # per-route switches name the filter by its type; Envoy Gateway's names carry a suffix
            for vh in hcm["route_config"]["virtual_hosts"]:
                for r in vh["routes"]:
                    r.pop("typed_per_filter_config", None)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "nadir_extproc":
            point_cluster_at(c, "127.0.0.1", extproc_port)
        elif c["name"] == "envoy_admin":
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = admin
        else:
            point_cluster_at(c, "127.0.0.1", upstreams.emulator_port if c["name"] != "otel_collector" else free_port())
    path = tmp_path / f"eg-{extproc_port}-{with_filter_order}.json"
    path.write_text(json.dumps(cfg))
    return start_envoy(path, tmp_path / f"envoy-{extproc_port}.log", admin), f"http://127.0.0.1:{listen}/v1/chat/completions", admin


def test_envoy_gateway_policy_fails_closed_for_auto_only_in_filter_order(upstreams, tmp_path):
    """The envoy-gateway overlay's policy through a real Envoy: with the ext_proc up, ``auto`` is
    routed; down, ``auto`` gets the 503 and an explicit model passes; and without the EnvoyProxy's
    filterOrder (Lua first) even a live ext_proc could not save ``auto`` from the 503."""
    auto = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
    explicit = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    hdrs = {"authorization": f"Bearer {KEY}", "x-nadir-tier": "weak"}
    envoy, url, _ = _start_eg(upstreams, tmp_path, upstreams.extproc_port, with_filter_order=True)
    try:
        status, headers, _ = raw_post(url, auto, hdrs)
        assert status == 200 and headers["x-nadir-routed-to"].startswith("gpt-4o-mini")
        assert _models_seen(upstreams)[-1] == "gpt-4o-mini"
    finally:
        stop_process(envoy)
    envoy, url, _ = _start_eg(upstreams, tmp_path, free_port(), with_filter_order=True)  # nothing listens there
    try:
        before = len(_models_seen(upstreams))
        status, headers, body = raw_post(url, auto, hdrs)
        assert status == 503 and headers["x-nadir-error"] == "extproc_unavailable" and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "nadir_extproc_unavailable"
        assert len(_models_seen(upstreams)) == before
        status, headers, _ = raw_post(url, explicit, hdrs)
        assert status == 200 and "x-nadir-cost-usd" not in headers and _models_seen(upstreams)[-1] == "gpt-4o-mini"
    finally:
        stop_process(envoy)
    envoy, url, _ = _start_eg(upstreams, tmp_path, upstreams.extproc_port, with_filter_order=False)
    try:
        status, _, body = raw_post(url, auto, hdrs)
        # (the guard's reply then crosses the ext_proc's response phase, which strips x-nadir-*
        # headers it did not set: the body names the cause)
        assert status == 503 and json.loads(body)["error"]["code"] == "nadir_extproc_unavailable"
    finally:
        stop_process(envoy)


# --- a client's x-nadir-provider never routes ------------------------------------------------------
# The header is the ext_proc's (set with clear_route_cache; the fail-closed guard reads it as "the
# ext_proc answered"). Every config we ship removes a client's copy before route selection and
# before any filter (Envoy's early header mutation); tests/security/test_provider_header.py proves
# it through envoy/envoy.yaml, the tests below through the other configs that carry traffic.
_EARLY = [{"name": "envoy.http.early_header_mutation.header_mutation",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                            "mutations": [{"remove": "x-nadir-provider"}]}}]


def _ext_proc_hcms(cfg: dict) -> list[dict]:
    """The connection managers of ``cfg`` that run the ext_proc filter."""
    return [f["typed_config"] for lst in cfg["static_resources"]["listeners"] for ch in lst["filter_chains"] for f in ch["filters"]
            if any(h["name"].startswith("envoy.filters.http.ext_proc") for h in f["typed_config"].get("http_filters", []))]


def test_every_shipped_config_removes_a_client_provider_header_before_routing():
    for f in ("envoy.yaml", "sidecar.yaml", "sidecar-tcp.yaml", "gateway.yaml"):
        hcms = _ext_proc_hcms(yaml.safe_load((REPO / "envoy" / f).read_text()))
        assert hcms and all(h.get("early_header_mutation_extensions") == _EARLY for h in hcms), f
    hcms = _ext_proc_hcms(_istio_config())
    assert hcms and all(h.get("early_header_mutation_extensions") == _EARLY for h in hcms)
    for build in ("overlays/envoy-gateway", "overlays/envoy-gateway-sidecar"):
        docs = kustomize(build)
        ctps = find(docs, "ClientTrafficPolicy")
        assert [c["spec"]["targetRefs"] for c in ctps] == [[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "llm-gateway"}]]
        assert eg_early_header_mutation(ctps[0]) == _EARLY, build


def _cluster_requests(admin: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=upstream_rq_total", timeout=5) as r:
        rows = dict(ln.split(": ", 1) for ln in r.read().decode().splitlines() if ": " in ln)
    return {c: int(rows.get(f"cluster.{c}.upstream_rq_total", "0")) for c in ("openai", "anthropic")}


def _served_by(admin: int, send) -> tuple[tuple[int, dict[str, str], bytes], dict[str, int]]:
    """``send()``'s answer and which provider clusters served it (Envoy's counter deltas)."""
    before = _cluster_requests(admin)
    out = send()
    after = _cluster_requests(admin)
    return out, {c: after[c] - before[c] for c in after if after[c] != before[c]}


_AUTO = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
_EXPLICIT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


def test_sidecar_config_a_client_provider_header_neither_routes_nor_passes_the_guard(upstreams, tmp_path):
    """envoy/sidecar.yaml with the ext_proc down (its socket path leads nowhere)."""
    listen, admin, health, collector = free_port(), free_port(), free_port(), free_port()
    cfg = _sidecar_on_loopback(upstreams, listen, admin, health, collector)
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "nadir_extproc":
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]["path"] = str(tmp_path / "none.sock")
    path = tmp_path / "sidecar-down.json"
    path.write_text(json.dumps(cfg))
    envoy = start_envoy(path, tmp_path / "envoy.log", admin)
    try:
        url = f"http://127.0.0.1:{listen}/v1/chat/completions"
        (status, h, _), used = _served_by(admin, lambda: raw_post(url, _AUTO, {"authorization": f"Bearer {KEY}", "x-nadir-provider": "openai"}))
        assert status == 503 and h["x-nadir-error"] == "extproc_unavailable" and used == {}
        (status, h, _), used = _served_by(admin, lambda: raw_post(url, _EXPLICIT, {"authorization": f"Bearer {KEY}", "x-nadir-provider": "anthropic"}))
        assert status == 200 and used == {"openai": 1} and "x-nadir-cost-usd" not in h
    finally:
        stop_process(envoy)


def test_envoy_gateway_a_client_provider_header_neither_routes_nor_passes_the_guard(upstreams, tmp_path):
    """The envoy-gateway overlay (its ClientTrafficPolicy's early header removal, translated):
    ext_proc down, a client's header neither lets ``auto`` past the guard nor picks the cluster;
    ext_proc up, its own header routes ``auto`` (200, rewritten) past the guard."""
    hdrs = {"authorization": f"Bearer {KEY}"}
    envoy, url, admin = _start_eg(upstreams, tmp_path, free_port(), with_filter_order=True)  # nothing listens there
    try:
        (status, h, _), used = _served_by(admin, lambda: raw_post(url, _AUTO, {**hdrs, "x-nadir-provider": "openai"}))
        assert status == 503 and h["x-nadir-error"] == "extproc_unavailable" and used == {}
        (status, _, _), used = _served_by(admin, lambda: raw_post(url, _EXPLICIT, {**hdrs, "x-nadir-provider": "anthropic"}))
        assert status == 200 and used == {"openai": 1}
    finally:
        stop_process(envoy)
    envoy, url, admin = _start_eg(upstreams, tmp_path, upstreams.extproc_port, with_filter_order=True)
    try:
        (status, h, _), used = _served_by(admin, lambda: raw_post(url, _AUTO, {**hdrs, "x-nadir-tier": "weak", "x-nadir-provider": "anthropic"}))
        assert status == 200 and used == {"openai": 1} and h["x-nadir-routed-to"].startswith("gpt-4o-mini")
        assert _models_seen(upstreams)[-1] == "gpt-4o-mini"
    finally:
        stop_process(envoy)


# --- the sidecar config vs the config the integration suite runs -----------------------------------
# tests/integration runs envoy/envoy.yaml (nadir_extproc.stack renders it with loopback ports); the
# ConfigMap carries envoy/sidecar.yaml. They are two files, so "byte-identical" cannot hold between
# them; what holds, and is checked here, is: the ConfigMap is sidecar.yaml byte for byte
# (test_manifests), sidecar.yaml itself runs in a real Envoy with SDK traffic on every provider path
# (above and below), and sidecar.yaml differs from envoy.yaml only where enumerated here.
_TRACING_CLUSTER = "/filter_chains/0/filters/0/typed_config/tracing/provider/typed_config/grpc_service/envoy_grpc/cluster_name"
_UPSTREAM_ADDRESSING = {  # how a provider is reached: real host over TLS in a pod, the emulator locally
    "/type", "/dns_lookup_family", "/transport_socket",
    "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/address",
    "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value",
}


def test_sidecar_differs_from_the_integration_suites_config_only_where_enumerated():
    local = yaml.safe_load((REPO / "envoy" / "envoy.yaml").read_text())
    side = yaml.safe_load((REPO / "envoy" / "sidecar.yaml").read_text())
    assert side["admin"] == local["admin"]
    assert set(side) == set(local) == {"admin", "static_resources"}
    ll = {x["name"]: x for x in local["static_resources"]["listeners"]}
    sl = {x["name"]: x for x in side["static_resources"]["listeners"]}
    assert (list(ll), list(sl)) == (["llm_ingress"], ["llm_egress", "health"])  # + the kubelet's probe listener
    # The LLM listener (filters, ext_proc settings, routes, limits, timeouts, tracing) is the same
    # object apart from its name and the name of the collector cluster its tracer sends to.
    assert diff_paths(ll["llm_ingress"], sl["llm_egress"]) == {"/name", _TRACING_CLUSTER}
    lc = {c["name"]: c for c in local["static_resources"]["clusters"]}
    sc = {c["name"]: c for c in side["static_resources"]["clusters"]}
    assert set(sc) - set(lc) == {"envoy_admin", "otel_collector"}  # health listener's stats; collector by DNS
    assert set(lc) - set(sc) == {"opentelemetry_collector"}  # the same collector, local address
    for name in ("openai", "anthropic", "google"):
        assert diff_paths(lc[name], sc[name]) <= _UPSTREAM_ADDRESSING, name
    ep = "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address"
    assert diff_paths(lc["nadir_extproc"], sc["nadir_extproc"]) == {f"{ep}/pipe", f"{ep}/socket_address"}  # UDS vs TCP
    col = diff_paths(lc["opentelemetry_collector"], sc["otel_collector"])
    assert col == {"/name", "/load_assignment/cluster_name", "/type", "/dns_lookup_family", f"{ep}/socket_address/address"}


def _post(listen: int, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return raw_post(f"http://127.0.0.1:{listen}{path}", json.dumps(body).encode(), {"authorization": f"Bearer {KEY}", **headers})


def _last_upstream(up) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{up.emulator_port}/__emulator/requests", timeout=5) as r:
        return json.loads(r.read())[-1]


def test_sidecar_config_anthropic_path(upstreams, sidecar_envoy):
    listen = sidecar_envoy[0]
    usage = json.dumps({"input": 1000, "cache_read": 2000, "output": 100})
    status, h, _ = _post(listen, "/v1/messages", {"model": "auto", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
                         {"x-nadir-tier": "weak", "x-emulator-usage": usage, "anthropic-version": "2023-06-01"})
    assert status == 200
    assert json.loads(_last_upstream(upstreams)["body_text"])["model"] == "claude-haiku-4-5"
    # claude-haiku-4-5 $1 in / $0.10 cache read / $5 out: 1000 + 200 + 500 millionths
    assert h["x-nadir-cost-usd"] == "0.0017"


def test_sidecar_config_gemini_model_in_the_path(upstreams, sidecar_envoy):
    listen = sidecar_envoy[0]
    usage = json.dumps({"input": 100, "output": 50, "reasoning": 20})
    status, h, _ = _post(listen, "/v1beta/models/auto:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                         {"x-nadir-tier": "strong", "x-emulator-usage": usage})
    assert status == 200
    assert _last_upstream(upstreams)["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    # gemini-2.5-pro $1.25 in / $10 out (thoughts billed as output): 125 + 500 millionths
    assert h["x-nadir-cost-usd"] == "0.000625"


def test_sidecar_config_streams_with_in_band_cost(upstreams, sidecar_envoy):
    listen = sidecar_envoy[0]
    usage = json.dumps({"input": 1000, "output": 100})
    status, h, body = _post(listen, "/v1/chat/completions",
                            {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                            {"x-nadir-tier": "weak", "x-emulator-usage": usage})
    assert status == 200 and h["content-type"].startswith("text/event-stream")
    assert h["x-nadir-routed-to"] == "gpt-4o-mini"
    # The cost arrives as an SSE comment right before the terminal event:
    # gpt-4o-mini $0.15 in / $0.60 out: 150 + 60 millionths.
    m = re.search(rb"((?:: x-nadir-[a-z-]+=[^\n]*\n)+)\ndata: \[DONE\]", body)
    assert m, body[-500:]
    assert b": x-nadir-cost-usd=0.00021\n" in m.group(1)
