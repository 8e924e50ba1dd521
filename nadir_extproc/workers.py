"""``nadir-extproc serve --workers N``: N ext_proc processes sharing one TCP port (``SO_REUSEPORT``).

One Python process runs one event loop on one core; a pod with more cores runs more processes.
The supervisor (this module) prepares what the workers share — the key-id secret and the ledger
schema — so they do not race to create them, then starts N ``nadir-extproc serve`` children
with ``NADIR_REUSEPORT=1`` (each binds the same port; the kernel spreads new connections over
them) and ``NADIR_WORKER_INDEX=i``. It prints one ready line when every worker is listening,
forwards SIGTERM/SIGINT (each worker stops gracefully) and SIGHUP (each worker reloads its
settings, price file and router policy: ``nadir_extproc.reload``; the supervisor itself keeps
running), and restarts a worker that dies (after 1 s; counted in the log). Exit code 0 after a
requested stop.

Limits (docs/deploy.md): the kernel balances *connections*, not requests, and Envoy keeps one
HTTP/2 connection to the ext_proc per Envoy worker thread, so run Envoy with at least as many
worker threads as ext_proc workers; in-memory budget totals are per worker (use Redis budgets);
a Prometheus endpoint is served per worker on ``prometheus_port + i``; a Unix socket (``uds``)
cannot be shared and is refused.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

log = logging.getLogger("nadir_extproc")

_READY = re.compile(r"nadir-extproc listening on (\S+):(\d+)")


def _reserve_port(host: str, port: int) -> socket.socket | None:
    """For ``port`` 0: bind a ``SO_REUSEPORT`` socket to pick a free port that the workers then
    share (kept bound, not listening, until they are up). ``None`` for a fixed port."""
    if port:
        return None
    fam = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host.strip("[]"), 0))
    return s


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the supervisor dies, even by SIGKILL (Linux
    ``prctl(PR_SET_PDEATHSIG)``), so no worker outlives its pod's main process. SIGHUP is ignored
    until the worker installs its reload handler (an ignored signal stays ignored across exec):
    a SIGHUP forwarded while a worker starts must not kill it (it reads the files at start anyway)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


def _prepare_shared_state(settings: Any) -> None:
    """Create once, before the workers start, what they would otherwise race to create."""
    from nadir_extproc import ledger
    from nadir_extproc.tags import identity_from_settings

    identity_from_settings(settings)  # creates the key-id secret (0600) on first start
    if settings.ledger.enabled:
        store = ledger.open_store(sqlite_dir=None if settings.ledger.postgres_dsn else ledger.sqlite_dir(settings),
                                  postgres_dsn=settings.ledger.postgres_dsn)  # migrates the schema
        store.close()


class Supervisor:
    """Starts and watches ``n`` worker processes (see the module docstring)."""

    def __init__(self, settings: Any, n: int, args: list[str]) -> None:
        self.settings = settings
        self.n = n
        self.args = args  # `serve` arguments passed on to each worker (without --workers)
        self.procs: list[subprocess.Popen | None] = [None] * n
        self.stopping = False
        host, _, port = settings.listen.rpartition(":")
        self.host = host
        self._reserved = _reserve_port(host, int(port))
        self.port = self._reserved.getsockname()[1] if self._reserved else int(port)

    def _spawn(self, i: int) -> subprocess.Popen:
        env = {**os.environ, "NADIR_REUSEPORT": "1", "NADIR_WORKER_INDEX": str(i), "NADIR_WORKERS": "1",
               "NADIR_LISTEN": f"{self.host}:{self.port}"}
        p = subprocess.Popen([sys.executable, "-m", "nadir_extproc.cli", "serve", *self.args], env=env,
                             stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        self.procs[i] = p
        return p

    def _await_ready(self, p: subprocess.Popen, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {p.pid} exited before listening (code {p.wait()})")
            if _READY.search(line):
                # Keep draining its stdout so that a later print never blocks the worker.
                threading.Thread(target=lambda f=p.stdout: [None for _ in f], daemon=True).start()
                return
        raise RuntimeError(f"worker {p.pid} not listening after {timeout_s:.0f}s")

    def run(self) -> int:
        """Start the workers, print the ready line, supervise until SIGTERM/SIGINT; exit code."""
        _prepare_shared_state(self.settings)
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            self.stopping = True
            stop.set()

        def on_hup(_signum: int, _frame: Any) -> None:
            # Hot reload is per process (each worker holds its own settings): pass it on.
            for p in self.procs:
                if p is not None and p.poll() is None:
                    try:
                        p.send_signal(signal.SIGHUP)
                    except ProcessLookupError:
                        pass

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hup)
        try:
            for i in range(self.n):
                self._await_ready(self._spawn(i))
        except RuntimeError:
            self._stop_all()
            raise
        if self._reserved is not None:
            self._reserved.close()
        print(f"nadir-extproc listening on {self.host}:{self.port} ({self.n} workers, pids "
              f"{' '.join(str(p.pid) for p in self.procs if p)})", flush=True)
        while not stop.wait(0.5):
            for i, p in enumerate(self.procs):
                if p is not None and p.poll() is not None and not self.stopping:
                    log.error("worker %d (pid %d) exited with code %s; restarting it in 1 s", i, p.pid, p.returncode)
                    time.sleep(1)
                    try:
                        self._await_ready(self._spawn(i))
                    except RuntimeError as e:
                        log.error("worker %d: %s", i, e)
        self._stop_all()
        return 0

    def _stop_all(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_period_s + 5
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
