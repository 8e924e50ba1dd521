"""``nadir-extproc serve --workers 2`` behind the real Envoy: one port, two worker processes
(SO_REUSEPORT), a dead worker is replaced, SIGTERM stops all of them gracefully."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from nadir_extproc.stack import Stack
from tests.integration.conftest import raw_post


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def post_auto(stack: Stack) -> tuple[int, dict[str, str]]:
    # gpt-4o-mini (the rule router's weak tier for a short prompt): 10*0.15 + 2*0.6 = 2.7 per 1M
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions",
                                  b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}',
                                  {"x-emulator-usage": json.dumps({"input": 10, "output": 2})})
    return status, headers


@pytest.fixture()
def stack():
    with Stack(extproc_env={"NADIR_ROUTER": "rules", "NADIR_WORKERS": "2"}) as s:
        yield s


def test_two_workers_share_the_port_and_replace_a_dead_one(stack):
    sup = stack.procs["extproc"].pid
    workers = children(sup)
    assert len(workers) == 2
    for _ in range(10):
        status, h = post_auto(stack)
        assert status == 200 and h["x-nadir-routed-to"].startswith("gpt-4o-mini") and h["x-nadir-cost-usd"] == "0.0000027"
    # Kill one worker: the other keeps serving, the supervisor starts a replacement.
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = children(sup)
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.2)
    assert len(now) == 2 and workers[0] not in now and workers[1] in now
    ok = 0
    for _ in range(10):
        status, h = post_auto(stack)
        ok += status == 200 and h.get("x-nadir-cost-usd") == "0.0000027"
    assert ok == 10
    # SIGTERM to the supervisor stops every worker and exits 0.
    code = stack.stop_process("extproc")
    assert code == 0
    for w in now:
        assert not Path(f"/proc/{w}").exists() or "Z" in Path(f"/proc/{w}/stat").read_text().split(")")[1][:3]


def test_workers_refuse_a_shared_unix_socket(tmp_path):
    """A Unix socket cannot be shared by several processes (no SO_REUSEPORT): refused clearly."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("NADIR_")}
    env.update(NADIR_STATE_DIR=str(tmp_path), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve", "--workers", "2", "--uds", str(tmp_path / "x.sock"),
                        "--listen", "127.0.0.1:0"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--workers cannot share a Unix socket" in r.stderr
