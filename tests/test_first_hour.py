"""The README's "Your first hour" block, run as written (issue 19): the commands are read from the
README so the walk-through cannot drift. The local emulator stands in for api.openai.com (no
internet): every URL of it in the block is pointed at the emulator, except the `cost --url`, which
only names the provider (no request is made)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def first_hour_commands() -> list[str]:
    """The shell lines of the README's first-hour block (continuations joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your first hour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture()
def emulator():
    p = subprocess.Popen([sys.executable, "-m", "nadir_extproc.emulator", "--host", "127.0.0.1", "--port", "0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", p.stdout.readline())
        assert m, "emulator did not start"
        yield m.group(1)
    finally:
        p.terminate()
        p.wait(30)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed (.ci/run installs it)")
def test_first_hour_walkthrough(tmp_path, emulator):
    lines = first_hour_commands()
    assert any(" demo" in x for x in lines) and any(" cost " in x for x in lines) and any(" report" in x for x in lines)
    script = ["set -euo pipefail"]
    for line in lines:
        if "nadir-extproc cost" not in line:
            line = line.replace("https://api.openai.com", emulator)
        line = line.replace(".venv/bin/", f"{BIN}/")
        script.append(line)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NADIR_", "OPENAI_", "OTEL_"))}
    env["OTEL_SDK_DISABLED"] = "true"
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "Traceback" not in r.stderr
    # 2. the second demo sent its OpenAI traffic to "the real API" (here: the emulator we started),
    # with the key from the environment; its Anthropic traffic stayed on its own emulator
    with urllib.request.urlopen(f"{emulator}/__emulator/requests", timeout=30) as resp:
        seen = json.loads(resp.read())
    paths = [row["path"].split("?")[0] for row in seen]
    # the demo's sample requests (its input list) + 30 latency probes through Envoy, + the curl
    from nadir_extproc.demo import EXPLICIT, PROMPTS

    chat = sum(d.startswith("openai_chat") for d, _ in PROMPTS)
    responses = sum(d.startswith("openai_responses") for d, _ in PROMPTS)
    assert (chat, responses) == (11, 5)  # 24 prompts: 11 Chat, 5 Responses, 8 Messages
    explicit_chat = sum(d == "openai_chat" for d, _, _ in EXPLICIT)
    assert (explicit_chat, len(EXPLICIT)) == (4, 6)  # explicit-model requests (shadow routing): 4 Chat, 2 Messages
    chat += explicit_chat
    assert paths.count("/v1/chat/completions") == chat + 30 + 1 and paths.count("/v1/responses") == responses, paths
    assert "/v1/messages" not in paths
    assert all(dict((k.lower(), v) for k, v in row["headers"]).get("authorization") == "Bearer sk-your-key" for row in seen)
    # 3. cost of the saved response: hand-computed at gpt-4o-mini's list rates (0.15 / 0.60 USD per MTok)
    body = json.loads((tmp_path / "response.json").read_text())
    u = body["usage"]
    want = (Decimal(u["prompt_tokens"]) * Decimal("0.15") + Decimal(u["completion_tokens"]) * Decimal("0.60")) / 1_000_000
    total = re.search(r"^total\s+(\S+)", out, re.M)
    assert total and Decimal(total.group(1)) == want, out
    # 4. the report reads both demo runs' rows: 24 sample requests + 6 explicit-model ones + 30 latency probes each
    state = tmp_path / ".nadir-state"
    assert (state / "ledger").is_dir()
    rep = subprocess.run([str(BIN / "nadir-extproc"), "report", "--by", "model", "--format", "json"],
                         env={**env, "NADIR_STATE_DIR": str(state)}, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert sum(g["requests"] for g in data["groups"]) == 2 * 60, data
    # the table report: one total row, every model name whole (the longest names the demo's traffic
    # reaches; with router v2.4 the square-root-of-2 proof and the CFO summary score in the mid band,
    # so the OpenAI mid model appears too)
    assert len(re.findall(r"\btotal\b", out.split("nadir-extproc report", 1)[-1])) >= 1
    for model in ("gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"):
        assert model in out, out[-4000:]
    # 5. the opportunity report over both runs, with the router's quality beside it
    assert "What routing would save by model" in out and "Router quality at its thresholds" in out, out[-4000:]
    rep = subprocess.run([str(BIN / "nadir-extproc"), "report", "--opportunity", "--format", "json"],
                         env={**env, "NADIR_STATE_DIR": str(state)}, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["total"]["shadow_requests"] == 2 * 6, rep.stdout  # every explicit request was scored
