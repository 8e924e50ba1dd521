"""A second host on this machine for the port-trust tests: a network namespace joined to ours by a
veth pair, like another pod reaching this pod's IP. Only addresses created here are used
(198.18.0.0/15, the range RFC 2544 reserves for benchmarking, never routed), and everything is
removed on exit. Needs root and ``ip`` (iproute2); ``ForeignHost.unavailable()`` says why not.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


class ForeignHost:
    """``with ForeignHost() as h:`` -- ``h.our_addr`` is this machine's address as the foreign host
    sees it (the "pod IP"); ``h.run(code)`` runs Python in the foreign namespace and returns the
    JSON it prints. Names and addresses are random per instance, so parallel test runs coexist."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000:04d}{random.randrange(16**4):04x}"
        self.ns = f"nadir-{tag}"
        self.link, self.peer = f"nx{tag}a", f"nx{tag}b"  # interface names: at most 15 characters
        net = random.randrange(2**15) * 4  # a random /30 inside 198.18.0.0/15
        base = (198 << 24) | (18 << 16) | net
        self.our_addr = ".".join(str((base + 1) >> s & 255) for s in (24, 16, 8, 0))
        self.their_addr = ".".join(str((base + 2) >> s & 255) for s in (24, 16, 8, 0))

    @staticmethod
    def unavailable() -> str | None:
        """Why a namespace cannot be made here (``None`` when it can)."""
        if shutil.which("ip") is None:
            return "iproute2 `ip` not installed"
        if os.geteuid() != 0:
            return "creating a network namespace needs root (CI runs as root)"
        return None

    def __enter__(self) -> "ForeignHost":
        try:
            _ip("netns", "add", self.ns)
            _ip("link", "add", self.link, "type", "veth", "peer", "name", self.peer)
            _ip("link", "set", self.peer, "netns", self.ns)
            _ip("addr", "add", f"{self.our_addr}/30", "dev", self.link)
            _ip("link", "set", self.link, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.their_addr}/30", "dev", self.peer)
            _ip("-n", self.ns, "link", "set", self.peer, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:
            self.__exit__(None, None, None)
            raise RuntimeError(f"cannot create network namespace: {e.stderr.strip()}") from e
        return self

    def __exit__(self, *exc: Any) -> None:
        _ip("link", "del", self.link, check=False)  # removes the peer too
        _ip("netns", "del", self.ns, check=False)

    def run(self, code: str, timeout_s: float = 60) -> Any:
        """Run ``code`` with this interpreter inside the namespace; its last stdout line is JSON."""
        r = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=timeout_s, cwd=REPO)
        assert r.returncode == 0, f"foreign client failed ({r.returncode}): {r.stderr[-3000:]}"
        return json.loads(r.stdout.strip().splitlines()[-1])
