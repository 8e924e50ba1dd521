"""A bounded soak through the real Envoy (loopback only): a fixed rate and request count of mixed
traffic — JSON and streamed, ``auto`` and explicit models, client cancellations mid-stream,
provider errors, bodies that are not JSON, budget blocks — then a ``kill -9`` and restart of the
ext_proc mid-run.

Reports (phase A, no kill): requests failed by us (an answer the kind does not allow) = 0; ledger
rows = requests sent; the ext_proc's RSS and open file descriptors from after warm-up to the end.
Phase B (kill -9 at its midpoint, restart at once): requests in the kill window fail only as the
failure profile says (``auto``: the 503; explicit models: pass unprocessed; open streams: complete
or cut), later ones succeed; ledger rows lost <= the documented bound: the requests that started in
the window (from the kill to the restarted process's ready line — the ext_proc never saw them or
died holding them) plus the rows its writer had queued but not yet written: the writer flushes a
batch once its first row is ``ledger.flush_interval_s`` old and looks at its queue every
``min(0.25 s, flush_interval_s)`` (``LedgerWriter.tick_s``), so at most the requests that ended in
the ``flush_interval_s + tick_s`` (plus 0.25 s for a batch's write) before the kill — counted from
the client's clock, about ``rate x 1.5 s`` at a steady rate.

Short mode runs in ``make test`` (tests/reliability/test_soak.py); the 10-minute mode:
``make soak`` (= ``python -m tests.reliability.soak --minutes 10``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from nadir_extproc.stack import Stack

KEY = "sk-soak-not-a-real-key"
RATE = 20.0  # requests per second, fixed
CONCURRENCY = 16
FLUSH_INTERVAL_S = 1.0  # ledger.flush_interval_s (default)
TICK_S = min(0.25, FLUSH_INTERVAL_S)  # LedgerWriter.tick_s: how often its thread looks at the queue
WRITE_S = 0.25  # allowance for one batch's INSERT + COMMIT on a loaded machine
SETTINGS = """\
budgets:
  - {name: soak-block, scope: team, match: blocked, window: 1h, limit_usd: 0, action: block}
"""
USAGE = {"x-emulator-usage": json.dumps({"input": 20, "output": 10})}
CHAT = {"messages": [{"role": "user", "content": "Say hi"}]}
KINDS = ["explicit", "explicit", "auto", "stream", "cancel", "provider_error", "bad_body", "anthropic", "blocked", "explicit"]
AUTO_KINDS = {"auto", "stream", "cancel", "anthropic"}


@dataclass
class Phase:
    sent: int = 0
    failed_by_us: list[str] = field(default_factory=list)
    profile_failures: int = 0  # answers the failure profile prescribes during the kill window
    by_kind: dict[str, int] = field(default_factory=dict)
    rss_kb: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    window: tuple[float, float] | None = None
    in_window: int = 0
    #: when each request outside the kill window ended (client clock), to count the rows a killed
    #: writer may still have held
    ends: list[float] = field(default_factory=list)


def _request(i: int, kind: str, rid: str) -> tuple[str, bytes, dict[str, str]]:
    h = {"content-type": "application/json", "authorization": f"Bearer {KEY}", "x-request-id": rid, **USAGE}
    if kind == "explicit":
        return "/v1/chat/completions", json.dumps({"model": "gpt-4o-mini", **CHAT}).encode(), h
    if kind == "auto":
        return "/v1/chat/completions", json.dumps({"model": "auto", **CHAT}).encode(), h
    if kind in ("stream", "cancel"):
        extra = {"x-emulator-chunk-delay-ms": "20"} if kind == "cancel" else {}
        return "/v1/chat/completions", json.dumps({"model": "auto", "stream": True, **CHAT}).encode(), {**h, **extra}
    if kind == "provider_error":
        return "/v1/chat/completions", json.dumps({"model": "gpt-4o-mini", **CHAT}).encode(), {**h, "x-emulator-status": "500"}
    if kind == "bad_body":
        return "/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": [', h
    if kind == "anthropic":
        return "/v1/messages", json.dumps({"model": "auto", "max_tokens": 16, **CHAT}).encode(), {**h, "x-api-key": KEY}
    if kind == "blocked":
        return "/v1/chat/completions", json.dumps({"model": "gpt-4o-mini", **CHAT}).encode(), {**h, "x-nadir-team": "blocked"}
    raise ValueError(kind)


def _allowed(kind: str, status: int, headers) -> bool:
    """What each kind may answer when the ext_proc is up."""
    if kind == "provider_error":
        return status == 500 and headers.get("x-nadir-unpriced-reason") == "provider_error"
    if kind == "bad_body":
        return 400 <= status < 500
    if kind == "blocked":
        return status == 429 and headers.get("x-nadir-budget-rule") == "soak-block"
    return status == 200


def _profile_allows(kind: str, status: int | None, headers) -> bool:
    """What the failure profile allows in the kill window (README "Reliability")."""
    if status is None:
        return kind in ("stream", "cancel")  # an open stream may be cut
    if status == 503 and headers.get("x-nadir-error") == "extproc_unavailable":
        return kind in AUTO_KINDS  # fail-closed for auto
    if kind == "blocked":
        return status in (200, 429)  # fail-open: no budget check while the ext_proc is down
    return _allowed(kind, status, headers) or (kind in ("explicit", "provider_error") and status in (200, 500))


async def _one(session: aiohttp.ClientSession, base: str, i: int, kind: str, rid: str, ph: Phase, kill_at: list[float]) -> None:
    path, body, h = _request(i, kind, rid)
    t0 = time.monotonic()
    status = None
    headers: dict[str, str] = {}
    try:
        async with session.post(base + path, data=body, headers=h, timeout=aiohttp.ClientTimeout(total=120)) as r:
            status, headers = r.status, {k.lower(): v for k, v in r.headers.items()}
            if kind == "cancel" and status == 200:
                await r.content.readline()  # first bytes, then hang up mid-stream
                r.close()
            else:
                await r.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        headers = {"error": type(e).__name__}
        status = None
    in_window = ph.window is not None and ph.window[0] <= t0 <= ph.window[1] or (
        bool(kill_at) and t0 <= kill_at[0] <= time.monotonic())
    if in_window:
        ph.in_window += 1
        if not _profile_allows(kind, status, headers):
            ph.failed_by_us.append(f"{rid} {kind} in kill window: {status} {headers.get('error', '')}")
        elif not (status is not None and _allowed(kind, status, headers)):
            ph.profile_failures += 1
    else:
        ph.ends.append(time.monotonic())
    if not in_window and (status is None or not _allowed(kind, status, headers)):
        ph.failed_by_us.append(f"{rid} {kind}: {status} {headers.get('error', '')} {headers.get('x-nadir-unpriced-reason', '')}")
    ph.by_kind[kind] = ph.by_kind.get(kind, 0) + 1


def _proc_sample(pid: int) -> tuple[int, int]:
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def run_phase(stack: Stack, prefix: str, count: int, *, kill: bool = False, warmup: float = 0.3) -> Phase:
    """Send ``count`` requests at ``RATE`` per second (at most ``CONCURRENCY`` open)."""
    ph = Phase()
    kill_at: list[float] = []
    sem = asyncio.Semaphore(CONCURRENCY)
    tasks = []
    restart: threading.Thread | None = None
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            if kill and i == count // 2:
                kill_at.append(time.monotonic())
                os.kill(stack.procs["extproc"].pid, signal.SIGKILL)
                stack.procs["extproc"].wait(10)
                stack.stop_process("extproc")

                def _restart() -> None:
                    stack.start_extproc_process()
                    ph.window = (kill_at[0], time.monotonic())

                ph.window = (kill_at[0], math.inf)
                restart = threading.Thread(target=_restart)
                restart.start()
            if not kill and i >= int(count * warmup) and i % max(1, count // 20) == 0:
                ph.rss_kb.append(_proc_sample(stack.procs["extproc"].pid)[0])
                ph.fds.append(_proc_sample(stack.procs["extproc"].pid)[1])
            kind = KINDS[i % len(KINDS)]

            async def go(i=i, kind=kind):
                async with sem:
                    await _one(session, stack.base_url, i, kind, f"{prefix}-{i}", ph, kill_at)

            tasks.append(asyncio.create_task(go()))
            ph.sent += 1
        await asyncio.gather(*tasks)
    if restart is not None:
        restart.join(60)
    if not kill:
        await asyncio.sleep(1.0)  # streams and cancellations settle
        rss, fds = _proc_sample(stack.procs["extproc"].pid)
        ph.rss_kb.append(rss)
        ph.fds.append(fds)
    return ph


def ledger_rows(stack: Stack, prefix: str) -> int:
    db = next((stack.dir / "state").rglob("ledger.sqlite3"))
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(DISTINCT request_id) FROM nadir_requests WHERE request_id LIKE ?",
                         (prefix + "-%",)).fetchone()[0]


def soak(count_a: int, count_b: int, log_dir: Path) -> dict:
    """Phase A (``count_a`` requests, no kill) then phase B (``count_b``, kill -9 at its midpoint).
    Returns the report (see the module docstring); stops every process it started."""
    cfg = log_dir / "soak-settings.yaml"
    cfg.write_text(SETTINGS)
    with Stack(extproc_env={"NADIR_ROUTER": "rules", "NADIR_CONFIG": str(cfg)}, log_dir=log_dir) as stack:
        t0 = time.monotonic()
        a = asyncio.run(run_phase(stack, "soakA", count_a))
        t_a = time.monotonic() - t0
        b = asyncio.run(run_phase(stack, "soakB", count_b, kill=True))
        stack.stop_process("extproc")  # SIGTERM: the writer flushes what it holds
        rows_a, rows_b = ledger_rows(stack, "soakA"), ledger_rows(stack, "soakB")
    rss0, rss1 = a.rss_kb[0], a.rss_kb[-1]
    # rows the writer may have held at the kill: requests that ended within one flush interval plus
    # one queue tick plus a batch's write time (WRITE_S) before it, counted from the client's clock
    kill_t = b.window[0] if b.window else math.inf
    held = sum(1 for t in b.ends if kill_t - (FLUSH_INTERVAL_S + TICK_S + WRITE_S) <= t <= kill_t)
    bound = b.in_window + held
    return {
        "rate_per_s": RATE, "concurrency": CONCURRENCY,
        "a": {"sent": a.sent, "seconds": round(t_a, 1), "failed_by_us": len(a.failed_by_us), "failures": a.failed_by_us[:10],
              "ledger_rows": rows_a, "rss_kb_after_warmup": rss0, "rss_kb_end": rss1, "rss_max_kb": max(a.rss_kb),
              "rss_change_pct": round(100 * (rss1 - rss0) / rss0, 1), "fds_after_warmup": a.fds[0], "fds_end": a.fds[-1],
              "fds_max": max(a.fds), "by_kind": a.by_kind},
        "b": {"sent": b.sent, "failed_by_us": len(b.failed_by_us), "failures": b.failed_by_us[:10],
              "in_kill_window": b.in_window, "failed_as_profile_says": b.profile_failures,
              "kill_window_s": round(b.window[1] - b.window[0], 2) if b.window else None,
              "ledger_rows": rows_b, "ledger_lost": b.sent - rows_b, "writer_may_hold": held, "loss_bound": bound},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="phase A length at the fixed rate (phase B: 1 more minute)")
    ap.add_argument("--out", type=Path, help="write the report (JSON) here too")
    args = ap.parse_args()
    count_a = int(args.minutes * 60 * RATE * 0.9)
    count_b = max(100, int(args.minutes * 60 * RATE * 0.1))
    with tempfile.TemporaryDirectory(prefix="nadir-soak-") as d:
        report = soak(count_a, count_b, Path(d))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
