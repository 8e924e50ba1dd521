"""The budget store in the manifests: every shape reads an external Redis from the Secret
nadir-redis; the observability overlay runs its own Redis and points the ext_procs at it."""

from __future__ import annotations

from nadir_extproc.config import load_settings
from tests.deploy.k8s_tools import K8S, container, find, kustomize, one


def _env(docs, dep: str = "llm-app") -> dict[str, dict]:
    c = container(one(docs, "Deployment", dep)["spec"]["template"]["spec"], "nadir-extproc")
    return {e["name"]: e for e in c["env"]}


def test_base_takes_an_external_redis_from_the_secret_optionally():
    env = _env(kustomize("base"))
    assert env["NADIR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "nadir-redis", "key": "url", "optional": True}
    assert env["NADIR_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "nadir-redis", "key": "password", "optional": True}
    # Without the Secret: in-memory totals (the settings file names no Redis).
    assert load_settings(K8S / "base" / "settings.yaml", env={}).budget_redis.url is None
    s = load_settings(K8S / "base" / "settings.yaml", env={"NADIR_REDIS_URL": "rediss://redis.example:6380/0", "NADIR_REDIS_PASSWORD": "pw"})
    assert s.budget_redis.url == "rediss://redis.example:6380/0" and s.budget_redis.password.get_secret_value() == "pw"
    assert "pw" not in repr(s)


def test_observability_overlay_runs_redis_and_points_the_ext_procs_at_it():
    docs = kustomize("overlays/observability")
    env = _env(docs)
    assert env["NADIR_REDIS_URL"] == {"name": "NADIR_REDIS_URL", "value": "redis://redis:6379/0"}
    assert env["NADIR_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "nadir-redis"
    svc = one(docs, "Service", "redis")
    assert svc["spec"]["ports"][0]["port"] == 6379
    redis = one(docs, "Deployment", "redis")
    assert svc["spec"]["selector"] == redis["spec"]["selector"]["matchLabels"]
    c = container(redis["spec"]["template"]["spec"], "redis")
    assert "--save ''" in c["args"][0] and "--requirepass" in c["args"][0]
    assert c["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "nadir-redis", "key": "password", "optional": True}


def test_only_the_extproc_pods_may_reach_the_overlays_redis():
    """A NetworkPolicy selects the Redis pod and lets in the pods that run nadir-extproc, on the
    Redis port, and no other pod of the build (Prometheus, Grafana, Jaeger, the collector)."""
    from tests.deploy.test_trust_manifests import _extproc_pods

    docs = kustomize("overlays/observability")
    redis_labels = one(docs, "Deployment", "redis")["spec"]["template"]["metadata"]["labels"]
    mine = [p for p in find(docs, "NetworkPolicy") if p["spec"]["podSelector"]["matchLabels"].items() <= redis_labels.items()]
    assert len(mine) == 1 and mine[0]["spec"]["policyTypes"] == ["Ingress"]
    rules = mine[0]["spec"]["ingress"]
    extproc = [labels for labels, _, _ in _extproc_pods(docs)]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in find(docs, "Deployment")}
    assert len(pods) >= 6  # llm-app, redis, prometheus, grafana, jaeger, otel-collector

    def admitted(labels: dict) -> bool:
        return any(f["podSelector"]["matchLabels"].items() <= labels.items() for r in rules for f in r["from"])

    for name, labels in pods.items():
        assert admitted(labels) == (labels in extproc), (name, labels)
    for r in rules:
        assert "from" in r and r["ports"] == [{"port": "redis", "protocol": "TCP"}]
        assert all(f.keys() == {"podSelector"} for f in r["from"])  # this namespace's pods, no ipBlock
