"""Reservations at admission, settlement, expiry and exact totals — the same semantics in memory
and in a real Redis (``redis-server`` started by the tests) — plus the fallback to local totals
when Redis is down or slow, and the recovery.

Amounts are worked out by hand in each test; estimates are passed in directly (the estimate
itself is tested in ``test_estimate.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from nadir_extproc.budgets import Budgets
from nadir_extproc.config import BudgetRedisSettings, BudgetReservationSettings, BudgetRule
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.stats import COUNTS


def rule(**kw) -> BudgetRule:
    base = {"name": "qa-team", "scope": "team", "match": "qa", "window": "1h", "limit_usd": "0.0005", "action": "block"}
    return BudgetRule(**{**base, **kw})


def redis_cfg(url: str, **kw) -> BudgetRedisSettings:
    # A key prefix per test: the session's server is shared. A generous bound unless the test is
    # about the bound: a loaded CI box must not turn a slow answer into a fallback here.
    return BudgetRedisSettings(url=url, key_prefix=f"t-{uuid.uuid4().hex[:8]}:", **{"timeout_ms": 2000, **kw})


@pytest.fixture(params=["memory", "redis"])
def make(request):
    """``make(rules, ttl_s=…)`` -> ``Budgets`` in memory or on the session's Redis."""
    made = []

    def _make(rules, ttl_s: float = 600.0, **redis_kw) -> Budgets:
        res = BudgetReservationSettings(ttl_s=ttl_s)
        if request.param == "memory":
            b = Budgets(rules, reservations=res)
        else:
            srv = request.getfixturevalue("redis_server")
            b = Budgets(rules, reservations=res, redis=redis_cfg(srv.url, **redis_kw))
        made.append(b)
        return b

    yield _make  # Redis-backed ones are closed by each test on its own loop (``aclose``)


async def drain(b: Budgets) -> None:
    """Wait for the background Redis settlements, then close the client on this loop."""
    if b._tasks:
        await asyncio.wait(list(b._tasks), timeout=5)


QA = {"team": "qa"}


async def test_concurrent_admission_reserves_so_at_most_the_limit_is_admitted(make):
    # Case 35: limit 0.0005; each request may cost up to 0.0003 (estimate). Six at once:
    # 0 + 0.0003 <= 0.0005 admits the first; 0.0003 + 0.0003 > 0.0005 refuses the other five.
    b = make([rule()])
    got = await asyncio.gather(*(b.admit(QA, D("0.0003")) for _ in range(6)))
    actions = sorted(a.verdict.action for a in got)
    assert actions == ["block"] * 5 + ["ok"]
    ok = next(a for a in got if a.verdict.action == "ok")
    assert ok.verdict.remaining_usd == D("0.0002")  # 0.0005 - 0.0003, after its own reservation
    blocked = next(a for a in got if a.verdict.action == "block")
    assert blocked.reservation is None
    assert blocked.verdict.remaining_usd == D("0.0002")  # 0.0005 - 0.0003 reserved by the first
    assert blocked.verdict.message == (
        "nadir budget 'qa-team' exceeded: 0 USD spent and 0.0003 USD reserved by requests in flight of 0.0005 USD "
        "allowed per hour for this team; this request may cost up to 0.0003 USD")
    assert blocked.verdict.retry_after_s == 1  # only a reservation in flight is in the way
    # The admitted one is priced at 0.0009 (usage 2000 x 0.15/1e6 + 1000 x 0.60/1e6): settled.
    b.settle(ok.reservation, D("0.0009"))
    await drain(b)
    seventh = await b.admit(QA, D("0.0003"))
    assert seventh.verdict.action == "block"
    assert seventh.verdict.remaining_usd == D("-0.0004")  # 0.0005 - 0.0009
    assert seventh.verdict.message == (
        "nadir budget 'qa-team' exceeded: 0.0009 USD spent of 0.0005 USD allowed per hour for this team")
    # 0.0009 leaves the window with its bucket: a 1 h window has 60 s buckets, so 3600..3660 s.
    assert 3600 <= seventh.verdict.retry_after_s <= 3660
    if b.redis is not None:
        (st,) = await b.shared_totals(QA)
        assert (st.spent, st.reserved) == (D("0.0009"), D("0"))
        await b.aclose()


async def test_every_applicable_rule_or_none_is_reserved(make):
    # team rule allows 0.001, key rule 0.0004: an estimate of 0.0005 passes the key rule, so
    # nothing is reserved against the team rule either.
    b = make([rule(limit_usd="0.001"), rule(name="key", scope="key_id", match=None, limit_usd="0.0004")])
    s = {"team": "qa", "key_id": "k1"}
    a = await b.admit(s, D("0.0005"))
    assert (a.verdict.action, a.verdict.rule) == ("block", "key")
    assert a.verdict.retry_after_s is None  # the estimate alone is above the key's limit
    a = await b.admit({"team": "qa", "key_id": "k2"}, D("0.0003"))
    assert (a.verdict.action, a.verdict.remaining_usd) == ("ok", D("0.0001"))  # key: 0.0004 - 0.0003
    a2 = await b.admit({"team": "qa", "key_id": "k3"}, D("0.0003"))
    assert (a2.verdict.action, a2.verdict.remaining_usd) == ("ok", D("0.0001"))  # k3: 0.0004 - 0.0003; team 0.0004
    a3 = await b.admit({"team": "qa", "key_id": "k4"}, D("0.0005"))
    # team: 0.0006 reserved + 0.0005 > 0.001 -> refused by the team rule
    assert (a3.verdict.action, a3.verdict.rule) == ("block", "qa-team")
    if b.redis is not None:
        team, key = await b.shared_totals({"team": "qa", "key_id": "k1"})
        assert (team.reserved, key.reserved) == (D("0.0006"), D("0"))
        await b.aclose()


async def test_settle_releases_the_rest_and_an_abort_releases_everything(make):
    b = make([rule(limit_usd="0.001")])
    a1 = await b.admit(QA, D("0.0004"))
    a2 = await b.admit(QA, D("0.0004"))
    assert a2.verdict.remaining_usd == D("0.0002")  # 0.001 - 0.0004 - 0.0004
    b.settle(a1.reservation, D("0.00015"))  # priced below its estimate: the rest is released
    b.settle(a2.reservation, None)  # cut before any price: released
    b.settle(a2.reservation, D("1"))  # settled once only
    await drain(b)
    a3 = await b.admit(QA, D("0.0004"))
    assert a3.verdict.remaining_usd == D("0.00045")  # 0.001 - 0.00015 - 0.0004
    if b.redis is not None:
        (st,) = await b.shared_totals(QA)
        assert (st.spent, st.reserved) == (D("0.00015"), D("0.0004"))
        await b.aclose()


async def test_a_reservation_never_settled_expires(make):
    b = make([rule(limit_usd="0.001")], ttl_s=0.4)
    lost = await b.admit(QA, D("0.0008"))  # its request never finishes (ext_proc killed, stream lost)
    assert lost.verdict.action == "ok"
    assert (await b.admit(QA, D("0.0004"))).verdict.action == "block"  # 0.0008 + 0.0004 > 0.001
    if b.redis is None:
        b.local.clock = lambda: __import__("time").time() + 0.5  # memory store: move its clock
    else:
        await asyncio.sleep(0.5)  # Redis: its own clock
    a = await b.admit(QA, D("0.0004"))
    assert (a.verdict.action, a.verdict.remaining_usd) == ("ok", D("0.0006"))
    if b.redis is not None:
        await b.aclose()


async def test_exact_decimal_totals(make):
    # A rate of 0.0375 USD/MTok is 37.5 nano-USD per token: costs finer than a nano-USD, exact in
    # pico-USD, summed without any float.
    b = make([rule(limit_usd="1000", action="alert")])
    costs = [D("0.0000000375")] * 7 + [D("0.000123456789")] * 3 + [D("0.1")]
    for c in costs:
        a = await b.admit(QA, D("0"))
        b.settle(a.reservation, c)
    await drain(b)
    # 7 x 0.0000000375 = 0.0000002625; 3 x 0.000123456789 = 0.000370370367; + 0.1
    expected = D("0.100370632867")
    a = await b.admit(QA, D("0"))
    assert a.verdict.remaining_usd == D("1000") - expected
    if b.redis is not None:
        (st,) = await b.shared_totals(QA)
        assert st.spent == expected
        await b.aclose()


# ---------------------------------------------------------------------------- Redis down or slow
def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_unreachable_redis_falls_back_to_local_totals_counted_and_logged_once(caplog):
    rules = [rule(limit_usd="0.001"), rule(name="strict", scope="feature", match="pay", on_redis_down="refuse"),
             rule(name="lenient", scope="feature", match="chat", limit_usd="0", on_redis_down="admit")]
    b = Budgets(rules, redis=redis_cfg(dead_url(), timeout_ms=50, retry_interval_s=0.2))
    before = COUNTS["budget_redis_fallback"]
    with caplog.at_level(logging.WARNING, logger="nadir_extproc"):
        a1 = await b.admit(QA, D("0.0006"))
        a2 = await b.admit(QA, D("0.0006"))  # local totals: 0.0006 reserved + 0.0006 > 0.001
        a3 = await b.admit({"feature": "pay"}, D("0"))
        a4 = await b.admit({"feature": "chat"}, D("0.5"))  # limit 0, but admits while Redis is down
    assert [a.verdict.action for a in (a1, a2, a3, a4)] == ["ok", "block", "block", "ok"]
    assert a1.reservation.where == "local"
    assert a3.verdict.message == ("nadir budget 'strict' cannot be checked (shared budget store unavailable) and this "
                                  "rule refuses requests until it is back")
    assert COUNTS["budget_redis_fallback"] == before + 4
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1
    b.settle(a1.reservation, D("0.0002"))
    assert (await b.admit(QA, D("0.0008"))).verdict.action == "ok"  # 0.0002 spent locally + 0.0008 = 0.001
    await b.aclose()


async def test_slow_redis_never_holds_a_request_longer_than_the_bound(own_redis):
    b = Budgets([rule(limit_usd="0.001")], redis=redis_cfg(own_redis.url, timeout_ms=300, retry_interval_s=0.2))
    await b.start()
    assert (await b.admit(QA, D("0.0001"))).reservation.where == "redis"
    own_redis.pause()  # stalled: accepts nothing, answers nothing, until resumed below
    # The stalled server would hold the request forever; admission returns (within the 300 ms
    # bound; the outer 10 s only keeps a broken build from hanging) and decides locally.
    a = await asyncio.wait_for(b.admit(QA, D("0.0001")), 10)
    assert a.reservation.where == "local" and a.verdict.action == "ok"
    errors = sum(v for k, v in COUNTS.items() if k.startswith("budget_redis_error"))
    a = await asyncio.wait_for(b.admit(QA, D("0.0001")), 10)
    assert a.reservation.where == "local"
    # while down, requests do not try Redis at all (only the background probe does)
    assert sum(v for k, v in COUNTS.items() if k.startswith("budget_redis_error")) <= errors + 1
    await asyncio.sleep(0.5)
    own_redis.resume()
    for _ in range(50):  # the probe finds it answering again
        if b.up:
            break
        await asyncio.sleep(0.1)
    assert b.up
    assert (await b.admit(QA, D("0.0001"))).reservation.where == "redis"
    await b.aclose()


async def test_redis_killed_then_restarted_recovers_and_is_seeded_from_the_ledger(own_redis, caplog):
    b = Budgets([rule(limit_usd="0.01")], redis=redis_cfg(own_redis.url, timeout_ms=1000, retry_interval_s=0.2))
    ledger: list[LedgerRow] = []

    def rows(since):
        return [r for r in ledger if r.ts >= since]

    b.ledger_rows = rows
    await b.start()
    a = await b.admit(QA, D("0.001"))
    assert a.reservation.where == "redis"
    b.settle(a.reservation, D("0.002"))
    ledger.append(LedgerRow(ts=datetime.now(timezone.utc), request_id="r1", tags={"team": "qa"}, cost_usd=D("0.002")))
    await drain(b)
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="nadir_extproc"):
        a = await b.admit(QA, D("0.001"))  # local totals: 0.002 spent
        assert (a.reservation.where, a.verdict.remaining_usd) == ("local", D("0.007"))  # 0.01 - 0.002 - 0.001
        b.settle(a.reservation, D("0.003"))
        ledger.append(LedgerRow(ts=datetime.now(timezone.utc), request_id="r2", tags={"team": "qa"}, cost_usd=D("0.003")))
        await b.admit(QA, D("0"))
        own_redis.start()  # empty: a cold store
        for _ in range(50):
            if b.up:
                break
            await asyncio.sleep(0.1)
    assert b.up
    msgs = [r.getMessage() for r in caplog.records]
    assert len([m for m in msgs if "Redis unavailable" in m]) == 1
    assert len([m for m in msgs if "Redis is back" in m]) == 1
    # seeded from the ledger: 0.002 + 0.003 spent
    (st,) = await b.shared_totals(QA)
    assert st.spent == D("0.005")
    a = await b.admit(QA, D("0.001"))
    assert (a.reservation.where, a.verdict.remaining_usd) == ("redis", D("0.004"))
    await b.aclose()


async def test_spend_settled_during_a_short_outage_is_written_when_redis_is_back(own_redis):
    b = Budgets([rule(limit_usd="0.01")], redis=redis_cfg(own_redis.url, timeout_ms=1000, retry_interval_s=0.2))
    await b.start()
    a = await b.admit(QA, D("0.001"))
    # Redis stalls (not restarted: its data survives), the settlement times out and is kept
    own_redis.pause()
    b.settle(a.reservation, D("0.004"))
    await drain(b)
    assert not b.up
    own_redis.resume()
    for _ in range(50):
        if b.up:
            break
        await asyncio.sleep(0.1)
    assert b.up
    (st,) = await b.shared_totals(QA)
    # the spend is there once; the reservation (its settle failed) expires with its TTL
    assert st.spent == D("0.004")
    await b.aclose()


async def test_a_burst_larger_than_the_connection_pool_waits_for_connections_not_for_a_fallback(redis_server):
    # 200 admissions at once over 4 connections: they queue for a connection (inside the bound)
    # instead of failing with "too many connections" and deciding locally. Limit 0.01, 0.0001 each:
    # exactly 100 fit.
    b = Budgets([rule(limit_usd="0.01")], redis=redis_cfg(redis_server.url, max_connections=4, timeout_ms=10000))
    got = await asyncio.gather(*(b.admit(QA, D("0.0001")) for _ in range(200)))
    assert {a.reservation.where for a in got if a.reservation} == {"redis"}
    assert [a.verdict.action for a in got].count("ok") == 100
    assert b.up
    (st,) = await b.shared_totals(QA)
    assert st.reserved == D("0.01")  # 100 x 0.0001
    await b.aclose()


async def test_cold_redis_is_seeded_from_the_hourly_rollups_of_the_ledger(redis_server, tmp_path):
    """A cold shared store is seeded like the local totals at start-up (``Budgets.seed_items``):
    a 30-day team rule (12 h buckets, whole hours) reads the ledger's hourly rollups and raw rows
    only for the partial first hour of its window; values by hand."""
    from datetime import timedelta

    from nadir_extproc.ledger.store import open_store

    now = datetime.now(timezone.utc)
    ledger = tmp_path / "ledger"
    s = open_store(sqlite_dir=ledger)
    s.insert([
        LedgerRow(ts=now - timedelta(days=2), request_id="a", tags={"team": "qa"}, cost_usd=D("0.001")),
        LedgerRow(ts=now - timedelta(days=2, minutes=1), request_id="b", tags={"team": "qa"}, cost_usd=D("0.0002")),
        LedgerRow(ts=now - timedelta(hours=1), request_id="c", tags={"team": "qa", "user": "u"}, cost_usd=D("0.00003")),
        LedgerRow(ts=now - timedelta(hours=1), request_id="d", tags={"team": "ads"}, cost_usd=D("0.5")),
        LedgerRow(ts=now - timedelta(days=31), request_id="e", tags={"team": "qa"}, cost_usd=D("7")),  # outside the window
    ])
    s.close()
    raw_reads = []

    def store():
        st = open_store(sqlite_dir=ledger, migrate=False)
        real = st.rows
        st.rows = lambda since=None, until=None: raw_reads.append((since, until)) or real(since, until)
        return st

    b = Budgets([rule(window="month", limit_usd="1")], redis=redis_cfg(redis_server.url))
    b.ledger_store = store
    await b.start()
    (st,) = await b.shared_totals(QA)
    assert st.spent == D("0.00123")  # 0.001 + 0.0002 + 0.00003; not ads' 0.5, not the 31-day-old 7
    ((since, until),) = raw_reads  # raw rows: only from the window's start to the next whole hour
    assert until is not None and until - since < timedelta(hours=1) and until.minute == until.second == 0
    await b.aclose()
