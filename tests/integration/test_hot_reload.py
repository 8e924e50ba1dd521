"""Hot reload of the settings file, the price file and the router policy (issue 19), through the
real Envoy: a Kubernetes-style ConfigMap folder (files behind the ``..data`` symlink, updated by
swapping that symlink), an invalid update rejected with the old settings kept, SIGHUP, the reload
counters on /metrics and the price file's version in ``x-nadir-price-source``."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from nadir_extproc.stack import Stack, free_port

USAGE = {"x-emulator-usage": json.dumps({"input": 1000, "output": 500})}


def configmap_version(cm: Path, name: str, weak: str, discount_model: str, discount: int | str) -> None:
    """Write a new version of the ConfigMap folder ``cm`` the way the kubelet does: a new
    timestamped folder, then the ``..data`` symlink swapped to it atomically (rename)."""
    d = cm / f"..{name}"
    d.mkdir()
    (d / "settings.yaml").write_text(
        f"router: rules\nprice_file: {cm / 'prices.yaml'}\n"
        f"tiers:\n  openai: {{weak: {weak}, strong: gpt-4o}}\n", encoding="utf-8")
    (d / "prices.yaml").write_text(
        f"models:\n  - {{provider: openai, model: {discount_model}, discount_percent: {discount}}}\n", encoding="utf-8")
    tmp = cm / "..data_tmp"
    tmp.symlink_to(d.name)
    os.replace(tmp, cm / "..data")
    for f in ("settings.yaml", "prices.yaml"):
        if not (cm / f).is_symlink():
            (cm / f).symlink_to(f"..data/{f}")


def ask(stack: Stack) -> dict[str, str]:
    req = urllib.request.Request(
        f"{stack.base_url}/v1/chat/completions", method="POST",
        data=json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer sk-reload", "x-nadir-tier": "weak", **USAGE})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        return {k.lower(): v for k, v in r.headers.items()}


def until(stack: Stack, pred, timeout_s: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    h: dict[str, str] = {}
    while time.monotonic() < deadline:
        h = ask(stack)
        if pred(h):
            return h
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s} s; last headers {h}")


def events(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r'^nadir_events_total\{event="([^"]+)"[^}]*\} (\S+)$', text, re.M)}


def all_events(ports: list[int], name: str) -> list[float | None]:
    """The ``name`` counter of each worker's /metrics (one endpoint per worker process)."""
    return [events(p).get(name) for p in ports]


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive loopback ports that were all free a moment ago (worker i
    serves /metrics on prometheus_port + i: a lone free port's neighbour may be taken)."""
    import socket

    for _ in range(200):
        first = free_port()
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", first + i))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


@pytest.mark.parametrize("trigger", ["file", "sighup", "sighup_workers"])
def test_configmap_swap_reloads_and_a_bad_version_is_rejected(tmp_path, trigger):
    """``sighup_workers``: ``serve --workers 2``; the SIGHUP goes to the supervisor (what
    ``kill -HUP`` on the pod's main process does), which passes it on to both workers: each
    worker's own /metrics (``prometheus_port + i``) counts the reload."""
    cm = tmp_path / "cm"
    cm.mkdir()
    configmap_version(cm, "2026_11_30_01", weak="gpt-4o-mini", discount_model="gpt-4o-mini", discount=50)
    prom = free_port_run(2 if trigger == "sighup_workers" else 1)
    ports = [prom, prom + 1] if trigger == "sighup_workers" else [prom]
    env = {"NADIR_CONFIG": str(cm / "settings.yaml"), "NADIR_PROMETHEUS_PORT": str(prom),
           "NADIR_RELOAD_INTERVAL_S": "0.5" if trigger == "file" else "0",
           "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
    if trigger == "sighup_workers":
        env["NADIR_WORKERS"] = "2"

    def poke(stack: Stack) -> None:
        if trigger != "file":
            stack.procs["extproc"].send_signal(signal.SIGHUP)

    with Stack(extproc_env=env) as stack:
        # v1: gpt-4o-mini at half its list price: (1000 x 0.15 + 500 x 0.60) / 1e6 / 2
        h = ask(stack)
        assert h["x-nadir-routed-to"].startswith("gpt-4o-mini")
        assert Decimal(h["x-nadir-cost-usd"]) == Decimal("0.000225")
        v1 = h["x-nadir-price-source"]
        # the catalogue's rates, discounted by the file's version in force
        assert re.fullmatch(r"genai-prices \S+ - 50% \(price file prices\.yaml sha256:[0-9a-f]{12}\)", v1), v1

        # v2: the weak tier is gpt-4.1-mini, discounted 25 %: (1000 x 0.40 + 500 x 1.60) / 1e6 x 0.75
        configmap_version(cm, "2026_11_30_02", weak="gpt-4.1-mini", discount_model="gpt-4.1-mini", discount=25)
        poke(stack)
        h = until(stack, lambda h: h["x-nadir-routed-to"].startswith("gpt-4.1-mini"))
        assert Decimal(h["x-nadir-cost-usd"]) == Decimal("0.0009")
        v2 = h["x-nadir-price-source"]
        assert re.fullmatch(r"genai-prices \S+ - 25% \(price file prices\.yaml sha256:[0-9a-f]{12}\)", v2), v2
        deadline = time.monotonic() + 60
        while all_events(ports, "config_reload") != [1] * len(ports):  # every worker reloaded, once
            assert time.monotonic() < deadline, (all_events(ports, "config_reload"), stack.log("extproc")[-2000:])
            time.sleep(0.5)
        for _ in range(6):  # whichever worker answers
            h = ask(stack)
            assert h["x-nadir-routed-to"].startswith("gpt-4.1-mini") and Decimal(h["x-nadir-cost-usd"]) == Decimal("0.0009")

        # v3: a bad price file (a discount over 100 %) and a misspelt model: rejected, v2 stays
        configmap_version(cm, "2026_11_30_03", weak="gpt-4o-mni", discount_model="gpt-4o", discount=150)
        poke(stack)
        deadline = time.monotonic() + 90
        while all_events(ports, "config_reload_rejected") != [1] * len(ports):
            assert time.monotonic() < deadline, stack.log("extproc")[-2000:]
            time.sleep(0.5)
        h = ask(stack)
        assert h["x-nadir-routed-to"].startswith("gpt-4.1-mini") and h["x-nadir-price-source"] == v2
        assert Decimal(h["x-nadir-cost-usd"]) == Decimal("0.0009")
        log = stack.log("extproc")
        assert "rejected, the previous settings stay in force" in log and "prices.yaml" in log
        assert all_events(ports, "config_reload") == [1] * len(ports)
        # the process (the supervisor and its workers) kept serving throughout
        assert stack.procs["extproc"].poll() is None
