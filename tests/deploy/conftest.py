"""Processes for the deployment tests that run real Envoy configs: the provider emulator and
nadir-extproc started with the Kubernetes settings file (k8s/base/settings.yaml). Loopback only;
every process is stopped at the end."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nadir_extproc.stack import free_port
from tests.deploy.k8s_tools import K8S


def _ready(proc: subprocess.Popen, pattern: str, what: str, timeout_s: float = 30) -> re.Match:
    rx, buf, deadline = re.compile(pattern), b"", time.monotonic() + timeout_s
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            buf += chunk
            m = rx.search(buf.decode("utf-8", "replace"))
            if m:
                return m
            if not chunk:
                break
        if proc.poll() is not None:
            break
    raise RuntimeError(f"{what} not ready (exit {proc.poll()}): {buf[-2000:]!r}")


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if p.stdout:
        p.stdout.close()


@dataclass
class Upstreams:
    """A running emulator and nadir-extproc (TCP port and Unix socket)."""

    emulator_port: int
    extproc_port: int
    extproc_sock: str
    dir: Path
    metrics_port: int


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    d = Path(tempfile.mkdtemp(prefix="nadir-k8s-"))  # short: Unix socket paths max 107 bytes
    procs: list[subprocess.Popen] = []
    try:
        emu = subprocess.Popen([sys.executable, "-m", "nadir_extproc.emulator", "--host", "127.0.0.1", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=open(d / "emulator.log", "w"), start_new_session=True)
        procs.append(emu)
        emu_port = int(_ready(emu, r"listening on http://127\.0\.0\.1:(\d+)", "emulator").group(1))
        port, sock = free_port(), str(d / "extproc.sock")
        metrics_port = free_port()
        # The k8s settings file, with only what cannot exist here replaced through the environment
        # (which the service reads over the file): addresses, the state directory, no OTLP export.
        env = {**os.environ, "NADIR_CONFIG": str(K8S / "base" / "settings.yaml"), "NADIR_LISTEN": f"127.0.0.1:{port}",
               "NADIR_HEALTH_LISTEN": f"127.0.0.1:{free_port()}",  # the probes' port (0.0.0.0:50052 in a pod)
               "NADIR_UDS": sock, "NADIR_STATE_DIR": str(d / "state"), "NADIR_PROMETHEUS_PORT": str(metrics_port),
               "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
        ext = subprocess.Popen([sys.executable, "-m", "nadir_extproc.cli", "serve"], stdout=subprocess.PIPE,
                               stderr=open(d / "extproc.log", "w"), env=env, start_new_session=True)
        procs.append(ext)
        _ready(ext, r"nadir-extproc listening on", "nadir-extproc")
        yield Upstreams(emu_port, port, sock, d, metrics_port)
    finally:
        for p in reversed(procs):
            _stop(p)
        shutil.rmtree(d, ignore_errors=True)


def start_envoy(config_path: Path, log: Path, admin_port: int) -> subprocess.Popen:
    """Start the real Envoy on ``config_path`` and wait until its admin /ready says LIVE."""
    import urllib.request

    from nadir_extproc.stack import envoy_binary

    p = subprocess.Popen([str(envoy_binary()), "-c", str(config_path), "--use-dynamic-base-id", "--concurrency", "1", "-l", "warning"],
                         stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"envoy exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
                if r.status == 200:
                    return p
        except OSError:
            time.sleep(0.05)
    _stop(p)
    raise RuntimeError("envoy not ready in time")


stop_process = _stop
