"""`nadir-extproc demo --upstream openai=URL` when that upstream answers no call (a wrong key, no
network): the table shows the failed calls and the command exits 1 with a one-line explanation,
never a traceback (found by a newcomer following the README's first hour without internet)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_demo_with_unreachable_real_upstream_exits_1_without_traceback(tmp_path):
    with socket.socket() as s:  # a loopback port nothing listens on: every OpenAI call fails
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NADIR_", "OPENAI_", "OTEL_"))}
    env.update(OTEL_SDK_DISABLED="true", OPENAI_API_KEY="sk-your-key", COLUMNS="200")
    r = subprocess.run(
        [str(BIN / "nadir-extproc"), "demo", "--upstream", f"openai=http://127.0.0.1:{port}",
         "--state-dir", str(tmp_path / "state")],
        env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "Latency probe failed" in out, out[-3000:]
    # the cause, once under the table: Envoy's own 503 body names it (not only the SDK's class name)
    assert re.search(r"\d+ call\(s\) failed: HTTP 503: upstream connect error", out), out[-3000:]
    assert "All processes stopped." in out and "Ledger rows kept in" in out, out[-3000:]
    # The opportunity table waits for every explicit call's row, the failed ones too: both Claude
    # requests (served by the emulator) are in it, not one (it stopped once the failures were in).
    row = next(x.split() for x in r.stdout.splitlines() if x.split()[:1] == ["claude-sonnet-4-5-20250929"])
    assert row[1] == "2", out[-3000:]
