"""Budgets through the real stack (Envoy 1.40 + nadir-extproc + emulator), in memory and on a real
``redis-server``: shared case 35, a fleet of three ext_procs behind their own Envoys sharing one
Redis, and Redis killed mid-run then restarted.

Prices (genai-prices 0.2.3): gpt-4o-mini 0.15 USD/MTok input, 0.60 USD/MTok output.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D
from pathlib import Path

import pytest

from nadir_extproc.stack import Stack
from tests.conftest import load_case
from tests.integration.conftest import ledger_rows, raw_post, replay

IN, OUT = D("0.15") / 10**6, D("0.60") / 10**6


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return raw_post(url, body, headers, timeout_s=30)


def write_config(d: Path, text: str) -> dict[str, str]:
    (d / "settings.yaml").write_text(text)
    return {"NADIR_CONFIG": str(d / "settings.yaml"), "NADIR_ROUTER": "rules"}


def redis_total(url: str, key: str) -> tuple[D, D]:
    """(spent, reserved) USD of one (rule, value) as Redis holds them (pico-USD integers)."""
    import redis

    c = redis.Redis.from_url(url)
    try:
        t, r = c.hmget(key, ["t", "r"])
    finally:
        c.close()
    return D(int(t or 0)).scaleb(-12), D(int(r or 0)).scaleb(-12)


def settled_total(url: str, key: str, expected: tuple[D, D], timeout_s: float = 10) -> tuple[D, D]:
    """``redis_total`` once it equals ``expected`` (settlements are written just after each
    response, off the request path), else the last value seen after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    got = redis_total(url, key)
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        got = redis_total(url, key)
    return got


# ---------------------------------------------------------------------------- case 35
CASE35_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
#: What the upstream answers after 1.5 s (case 35): usage 2000 input / 1000 output.
CASE35_REPLY = json.dumps({
    "id": "chatcmpl-case35", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None}, "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2000, "completion_tokens": 1000, "total_tokens": 3000},
}).encode()


@pytest.fixture(params=["memory", "redis"])
def case35_stack(request, tmp_path, cases_dir):
    cfg = load_case(cases_dir, "35-budget-concurrent-admission")["input"]["settings"] + "\n"
    assert cfg == "budgets: [{name: qa-team, scope: team, match: qa, window: 1h, limit_usd: 0.0005, action: block}]\n"
    if request.param == "redis":
        srv = request.getfixturevalue("redis_server")
        cfg += f"budget_redis: {{url: '{srv.url}', key_prefix: 'case35-{uuid.uuid4().hex[:8]}:', timeout_ms: 2000}}\n"
    with Stack(extproc_env=write_config(tmp_path, cfg)) as s:
        for _ in range(6):  # each provider call answers after 1.5 s (all six, should all be admitted)
            replay(s, [CASE35_REPLY[:40], CASE35_REPLY[40:]], delay_ms=1500)
        yield s


def test_case_35_concurrent_requests_admit_at_most_one_over_the_limit(case35_stack):
    """Shared case 35-budget-concurrent-admission: six concurrent requests against a 0.0005 USD
    rule, 1.5 s upstream latency, 0.0009 USD each: one admitted, five 429, then the seventh 429."""
    s = case35_stack
    url = f"{s.base_url}/v1/chat/completions"
    h = {"x-nadir-team": "qa"}
    # Reserved per request: ceil(67 bytes / 4) = 17 input tokens, no max_tokens -> the default 512
    # output tokens: 17 x 0.15/1e6 + 512 x 0.60/1e6 = 0.00000255 + 0.0003072 = 0.00030975 USD.
    assert len(CASE35_BODY) == 67
    est = 17 * IN + 512 * OUT
    assert est == D("0.00030975")
    barrier = threading.Barrier(6)

    def one(_):
        barrier.wait()
        return post(url, CASE35_BODY, h)

    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(one, range(6)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert (len(ok), len(refused)) == (1, 5)
    (status, headers, _), = ok
    cost = 2000 * IN + 1000 * OUT
    assert cost == D("0.0009")
    assert headers["x-nadir-cost-usd"] == "0.0009"
    assert headers["x-nadir-budget-remaining"] == "0.00019025"  # 0.0005 - 0.00030975 (its reservation)
    in_flight = ("nadir budget 'qa-team' exceeded: 0 USD spent and 0.00030975 USD reserved by requests in flight of "
                 "0.0005 USD allowed per hour for this team; this request may cost up to 0.00030975 USD")
    after = "nadir budget 'qa-team' exceeded: 0.0009 USD spent of 0.0005 USD allowed per hour for this team"
    for _, rh, body in refused:
        assert rh["x-nadir-budget-rule"] == "qa-team"
        # Refused while the first is in flight: 0.0005 - 0 spent - 0.00030975 reserved. (On a box
        # so loaded that a request reaches admission after the first finished: 0.0005 - 0.0009.)
        assert (rh["x-nadir-budget-remaining"], json.loads(body)["error"]["message"]) in (
            ("0.00019025", in_flight), ("-0.0004", after))
    # The seventh, after they finished: 0.0009 spent >= 0.0005.
    status, headers, body = post(url, CASE35_BODY, h)
    assert status == 429
    assert headers["x-nadir-budget-remaining"] == "-0.0004"  # 0.0005 - 0.0009
    assert json.loads(body)["error"]["message"] == (
        "nadir budget 'qa-team' exceeded: 0.0009 USD spent of 0.0005 USD allowed per hour for this team")
    with urllib.request.urlopen(f"{s.emulator_url}/__emulator/requests", timeout=5) as r:
        assert len(json.loads(r.read())) == 1  # only the admitted request reached the provider


# ---------------------------------------------------------------------------- a fleet on one Redis
FLEET_USAGE = json.dumps({"input": 10, "output": 100})


def test_three_ext_procs_behind_their_own_envoys_share_one_redis_rule_under_load(redis_server, tmp_path):
    prefix = f"fleet-{uuid.uuid4().hex[:8]}:"
    cfg = (
        "budgets: [{name: fleet, scope: team, match: fleet, window: 1h, limit_usd: 0.003, action: block}]\n"
        f"budget_redis: {{url: '{redis_server.url}', key_prefix: '{prefix}', timeout_ms: 2000}}\n"
    )
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 100, "stream": True,
                       "messages": [{"role": "user", "content": "Say hello to the fleet."}]}).encode()
    # Estimate: ceil(len / 4) input tokens + max_tokens 100 output tokens. Actual (emulator usage):
    # 10 x 0.15/1e6 + 100 x 0.60/1e6 = 0.0000015 + 0.00006 = 0.0000615 USD, below the estimate, so the
    # estimate error is 0 and the guarantee is: total spend <= limit.
    n_in = -(-len(body) // 4)
    est = n_in * IN + 100 * OUT
    cost = 10 * IN + 100 * OUT
    assert cost == D("0.0000615") and est >= cost
    limit = D("0.003")
    stacks = []
    try:
        for k in range(3):
            d = tmp_path / f"s{k}"
            d.mkdir()
            st = Stack(extproc_env=write_config(d, cfg))
            stacks.append(st)
            st.start()
        headers = {"x-nadir-team": "fleet", "x-emulator-usage": FLEET_USAGE, "x-emulator-chunk-delay-ms": "30"}

        def worker(st: Stack) -> list[int]:
            out = []
            for _ in range(10):
                status, _, _ = post(f"{st.base_url}/v1/chat/completions", body, headers)
                out.append(status)
            return out

        with ThreadPoolExecutor(18) as ex:  # 6 concurrent clients per Envoy
            futs = [ex.submit(worker, stacks[i % 3]) for i in range(18)]
            statuses = [s for f in futs for s in f.result()]
        assert set(statuses) <= {200, 429}
        admitted = statuses.count(200)
        spent, reserved = redis_total(redis_server.url, f"{prefix}fleet:3600:fleet:s")
        for _ in range(50):  # settlements are written right after each stream's last event
            if reserved == 0:
                break
            time.sleep(0.1)
            spent, reserved = redis_total(redis_server.url, f"{prefix}fleet:3600:fleet:s")
        # Every admitted request was priced at exactly 0.0000615 and settled once, exact to the digit.
        assert (spent, reserved) == (admitted * cost, 0)
        assert spent <= limit + max(D(0), cost - est)
        # ... and the budget was used, not refused wholesale: with everything settled a request is
        # admitted while spent + est <= 0.003, i.e. up to 48 of them (48 x 0.0000615 = 0.002952).
        assert int((limit - est) // cost) + 1 == 48
        assert 40 <= admitted <= 48
        # all three processes decided on the shared totals (none fell back to local totals)
        for st in stacks:
            assert "Redis unavailable" not in st.log("extproc")
    finally:
        for st in stacks:
            st.stop()


# ---------------------------------------------------------------------------- Redis killed mid-run
def test_redis_killed_mid_run_then_restarted(own_redis, tmp_path):
    prefix = f"kill-{uuid.uuid4().hex[:8]}:"
    cfg = (
        "ledger: {flush_interval_s: 0.1}\n"
        "budgets: [{name: team-day, scope: team, window: 1d, limit_usd: 1, action: block}]\n"
        f"budget_redis: {{url: '{own_redis.url}', key_prefix: '{prefix}', timeout_ms: 1000, retry_interval_s: 0.2}}\n"
    )
    body = b'{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}'
    h = {"x-nadir-team": "ops", "x-emulator-usage": json.dumps({"input": 1000, "output": 50})}
    cost = 1000 * IN + 50 * OUT  # 0.00015 + 0.00003 = 0.00018 USD
    key = f"{prefix}team-day:86400:ops:s"
    with Stack(extproc_env=write_config(tmp_path, cfg)) as s:
        url = f"{s.base_url}/v1/chat/completions"
        for _ in range(3):
            assert post(url, body, h)[1]["x-nadir-cost-usd"] == "0.00018"
        assert settled_total(own_redis.url, key, (3 * cost, 0)) == (3 * cost, 0)
        own_redis.kill()
        # Requests go on, decided on the process's local totals (its own 3 x 0.00018 spent so far).
        for k in range(4):
            status, rh, _ = post(url, body, h)
            assert status == 200 and rh["x-nadir-cost-usd"] == "0.00018"
        deadline = time.monotonic() + 20  # the ledger (flushed every 0.1 s) has all seven rows
        while len(ledger_rows(s.dir / "state")) < 7 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(ledger_rows(s.dir / "state")) == 7
        own_redis.start()  # back, empty: the first process to see it seeds it from the ledger
        deadline = time.monotonic() + 20
        while "Redis is back" not in s.log("extproc") and time.monotonic() < deadline:
            time.sleep(0.1)
        log = s.log("extproc")
        assert log.count("Redis unavailable") == 1 and log.count("Redis is back") == 1
        assert redis_total(own_redis.url, key) == (7 * cost, 0)  # 7 x 0.00018 = 0.00126
        assert post(url, body, h)[0] == 200
        assert settled_total(own_redis.url, key, (8 * cost, 0)) == (8 * cost, 0)


# ---------------------------------------------------------------------------- ext_proc killed
def test_reservation_of_a_request_whose_ext_proc_was_killed_expires(redis_server, tmp_path):
    prefix = f"lost-{uuid.uuid4().hex[:8]}:"
    cfg = (
        "budgets: [{name: lost, scope: team, match: lost, window: 1h, limit_usd: 0.001, action: block}]\n"
        "budget_reservations: {ttl_s: 15}\n"
        f"budget_redis: {{url: '{redis_server.url}', key_prefix: '{prefix}', timeout_ms: 2000}}\n"
    )
    body = b'{"model":"gpt-4o-mini","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
    # Estimate: ceil(len / 4) input tokens x 0.15/1e6 + 1000 x 0.60/1e6 (= 0.0006 of output).
    est = -(-len(body) // 4) * IN + 1000 * OUT
    key = f"{prefix}lost:3600:lost:s"
    h = {"x-nadir-team": "lost", "x-emulator-chunk-delay-ms": "400"}
    with Stack(extproc_env=write_config(tmp_path, cfg)) as s:
        req = urllib.request.Request(f"{s.base_url}/v1/chat/completions", data=body, method="POST",
                                     headers={"content-type": "application/json", **h})
        resp = urllib.request.urlopen(req, timeout=30)
        resp.readline()  # the stream has started: admitted, reserved
        admitted_at = time.monotonic()
        assert redis_total(redis_server.url, key) == (0, est)
        s.procs["extproc"].kill()  # SIGKILL: the request never settles
        s.procs["extproc"].wait(10)
        resp.close()
        s.procs.pop("extproc")
        s.start_extproc_process()
        # While the lost reservation holds, a second request of the same estimate does not fit:
        # est + est > 0.001.
        status, rh, _ = post(f"{s.base_url}/v1/chat/completions", body, {"x-nadir-team": "lost"})
        assert time.monotonic() - admitted_at < 15, "restart took longer than the TTL: the test proves nothing"
        assert status == 429 and rh["x-nadir-budget-remaining"] == str(D("0.001") - est)
        time.sleep(max(0.0, admitted_at + 15.5 - time.monotonic()))  # the reservation's TTL (Redis clock)
        status, rh, _ = post(f"{s.base_url}/v1/chat/completions", body.replace(b'"stream":true', b'"stream":false'),
                             {"x-nadir-team": "lost"})
        assert status == 200
        assert rh["x-nadir-budget-remaining"] == str(D("0.001") - est)  # the lost one is gone
