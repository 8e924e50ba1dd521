"""``python -m nadir_extproc.emulator``: ready line with the real port, serves, exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

import aiohttp
import pytest

READY = re.compile(r"^emulator listening on http://127\.0\.0\.1:(\d+)$")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_subprocess_ready_line_request_and_clean_exit(sig):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nadir_extproc.emulator", "--host", "127.0.0.1", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().rstrip("\n")
        match = READY.match(line)
        assert match, line
        port = int(match.group(1))
        assert port > 0
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}) as r:
                assert r.status == 200
                assert (await r.json())["model"] == "gpt-4o-mini-2024-07-18"
            async with http.get(f"http://127.0.0.1:{port}/__emulator/requests") as r:
                [rec] = await r.json()
                assert json.loads(rec["body_text"])["model"] == "gpt-4o-mini"
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
        assert (await proc.stderr.read()) == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
