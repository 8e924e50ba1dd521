"""Run ``nadir-extproc serve`` as a child process on a settings mapping, for the port and mTLS tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml


@contextlib.contextmanager
def serving(settings: dict, d: Path, log: Path) -> Iterator[None]:
    """``nadir-extproc serve`` on ``settings`` (written to ``d/settings.yaml``; no ``NADIR_*``
    variables from this environment, no OTel export), its stderr in ``log``; returns once it printed
    its listening line (``AssertionError`` with the log otherwise); SIGTERM (then SIGKILL) on exit."""
    cfg = d / "settings.yaml"
    cfg.write_text(yaml.safe_dump(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NADIR_")}
    env.update(NADIR_CONFIG=str(cfg), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    p = subprocess.Popen([sys.executable, "-m", "nadir_extproc.cli", "serve"], stdout=subprocess.PIPE,
                         stderr=open(log, "w"), text=True, env=env)
    try:
        assert "listening" in p.stdout.readline(), log.read_text()
        yield
    finally:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
        p.stdout.close()
