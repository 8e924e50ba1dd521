"""Budgets: windowed totals, block/alert, runaway rules, seeding from the ledger, and the
processor's answers (429 in the provider's own error format, remaining-budget header, tag headers
removed, spend recorded as soon as a response is priced).

Clock values are UNIX seconds passed in by the test (no sleeping, no timing assertions).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from nadir_extproc.budgets import Budgets, scope_values, trace_id
from nadir_extproc.config import BudgetRule, ConfigError, Settings, load_settings
from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.pb import base_pb2, external_processor_pb2 as ep
from nadir_extproc.server import Context
from nadir_extproc.processor import RequestProcessor
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.stats import COUNTS
from nadir_extproc.tags import KeyIdentity


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def rule(**kw) -> BudgetRule:
    base = {"name": "r", "scope": "team", "window": "1h", "limit_usd": "0.001", "action": "block"}
    return BudgetRule(**{**base, **kw})


# ---------------------------------------------------------------------------- rules
def test_block_once_spend_reaches_the_limit_per_scope_value():
    b = Budgets([rule()], clock=Clock())
    ads, search = {"team": "ads"}, {"team": "search"}
    b.record(ads, D("0.0006"))
    v = b.check(ads)
    assert (v.action, v.remaining_usd) == ("ok", D("0.0004"))  # 0.001 - 0.0006
    b.record(ads, D("0.0004"))  # spent 0.001 = limit -> blocked
    v = b.check(ads)
    assert (v.action, v.rule, v.remaining_usd) == ("block", "r", D("0"))
    assert "0.001 USD spent of 0.001 USD" in v.message and "per hour for this team" in v.message
    assert b.check(search).action == "ok"  # every team has its own total
    assert b.check({"user": "x"}).remaining_usd is None  # no rule applies


def test_match_limits_a_rule_to_one_value():
    b = Budgets([rule(scope="key_id", match="k-1", limit_usd="0")], clock=Clock())
    assert b.check({"key_id": "k-1"}).action == "block"  # limit 0: nothing allowed
    assert b.check({"key_id": "k-2"}) .action == "ok"


def test_window_slides_and_retry_after_names_when_spend_expires():
    clock = Clock(1000.0)
    b = Budgets([rule(window="5m", limit_usd="0.002")], clock=clock)  # 60 buckets of 5 s
    b.record({"team": "a"}, D("0.002"))  # bucket 1000//5 = 200, leaves the window at (200+1)*5 + 300 = 1305
    v = b.check({"team": "a"})
    assert v.action == "block" and v.retry_after_s == 305
    clock.t = 1304.0
    assert b.check({"team": "a"}).action == "block"
    clock.t = 1305.0
    v = b.check({"team": "a"})
    assert (v.action, v.remaining_usd) == ("ok", D("0.002"))


def test_alert_logs_once_per_crossing_counts_and_reports_negative_remaining(caplog):
    b = Budgets([rule(action="alert", limit_usd="0.001")], clock=Clock())
    before = COUNTS["budget_alert"]
    b.record({"team": "a"}, D("0.0015"))
    with caplog.at_level(logging.WARNING, logger="nadir_extproc"):
        v1 = b.check({"team": "a"})
        v2 = b.check({"team": "a"})
    assert (v1.action, v1.remaining_usd) == ("alert", D("-0.0005"))
    assert v2.action == "alert"
    assert COUNTS["budget_alert"] == before + 2
    assert len([r for r in caplog.records if "budget alert" in r.getMessage()]) == 1


def test_least_remaining_over_several_rules_and_block_beats_alert():
    b = Budgets(
        [rule(name="team-day", window="1d", limit_usd="0.01", action="alert"), rule(name="key-hour", scope="key_id", limit_usd="0.003")],
        clock=Clock(),
    )
    s = {"team": "a", "key_id": "k"}
    b.record(s, D("0.002"))
    v = b.check(s)
    assert (v.action, v.rule, v.remaining_usd) == ("ok", "key-hour", D("0.001"))
    b.record(s, D("0.0095"))  # team 0.0115 >= 0.01 (alert), key 0.0115 >= 0.003 (block)
    v = b.check(s)
    assert (v.action, v.rule, v.remaining_usd) == ("block", "key-hour", D("-0.0085"))


def test_runaway_session_blocked_within_one_request_of_crossing():
    b = Budgets([rule(name="runaway", scope="session", window="5m", limit_usd="0.01")], clock=Clock())
    s = {"session": "agent-loop-1"}
    verdicts = []
    for _ in range(5):  # each agent step costs 0.004 USD: 0.004, 0.008, 0.012 (crossed) ...
        v = b.check(s)
        verdicts.append(v.action)
        if v.action == "ok":
            b.record(s, D("0.004"))
    assert verdicts == ["ok", "ok", "ok", "block", "block"]


def test_seed_from_ledger_rows_inside_the_window():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc).timestamp()
    b = Budgets([rule(scope="key_id", window="1h", limit_usd="0.01")], clock=Clock(now))

    def lr(minutes_ago: int, cost: str | None) -> LedgerRow:
        return LedgerRow(ts=datetime.fromtimestamp(now - 60 * minutes_ago, timezone.utc), request_id="r", key_id="k",
                         cost_usd=D(cost) if cost else None)

    used = b.seed([lr(90, "5"), lr(30, "0.004"), lr(10, "0.003"), lr(5, None)])
    assert used == 3  # the unpriced row adds nothing
    # the 90-minute-old row is outside the 1 h window: 0.01 - (0.004 + 0.003) = 0.003
    assert b.check({"key_id": "k"}).remaining_usd == D("0.003")


def test_trace_scope_from_traceparent():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_id({"traceparent": tp}) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}) is None
    assert trace_id({"traceparent": "garbage"}) is None
    assert scope_values({"team": "a"}, "k", "t") == {"team": "a", "key_id": "k", "trace": "t"}


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("2h", 7200), ("7d", 604800), ("month", 2592000), (600, 600)])
def test_window_forms(text, seconds):
    assert rule(window=text).window == seconds


def test_budget_config_from_yaml_keeps_the_limit_exact(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("budgets:\n  - {name: ads, scope: team, match: ads, window: 5m, limit_usd: 0.0004, action: block}\n")
    s = load_settings(f, env={})
    assert s.budgets[0].limit_usd == D("0.0004") and s.budgets[0].window == 300
    f.write_text("budgets:\n  - {name: ads, scope: team, window: 5x, limit_usd: 1}\n")
    with pytest.raises(ConfigError, match="window"):
        load_settings(f, env={})


# ---------------------------------------------------------------------------- processor
SECRET = b"test-secret"
MARKER = "sk-MARKER-budget-test-key"


def ctx(rules=(), clock=None, **tag_cfg) -> Context:
    s = Settings(tags=tag_cfg) if tag_cfg else Settings()
    pol = s.policy()
    return Context(
        settings=s, router=RuleRouter(pol), policy=pol, identity=KeyIdentity(SECRET, 16),
        budgets=Budgets(list(rules), clock=clock or Clock()) if rules else None,
    )


def hdrs(field: str, h: dict[str, str], eos: bool = False) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in h.items()])
    return ep.ProcessingRequest(**{field: ep.HttpHeaders(headers=hm, end_of_stream=eos)})


def body(field: str, data: bytes) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(**{field: ep.HttpBody(body=data, end_of_stream=True)})


def run(proc: RequestProcessor, req: ep.ProcessingRequest) -> ep.ProcessingResponse:
    """One phase as the server runs it (``handle_async``: admission after the request body)."""
    return asyncio.run(proc.handle_async(req))


def set_headers(hm) -> dict[str, str]:
    return {o.header.key: o.header.raw_value.decode() for o in hm.set_headers}


CHAT = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", "authorization": f"Bearer {MARKER}"}
MSGS = {":method": "POST", ":path": "/v1/messages", "content-type": "application/json", "x-api-key": MARKER}
CHAT_BODY = b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'
GEMINI = {":method": "POST", ":path": "/v1beta/models/auto:generateContent", "content-type": "application/json", "x-goog-api-key": MARKER}
GEMINI_BODY = b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'
MSGS_BODY = b'{"model":"auto","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"end-user-3"}}'


def test_tag_headers_are_removed_before_upstream_unless_forwarded():
    proc = RequestProcessor(ctx())
    r = proc.handle(hdrs("request_headers", {**CHAT, "x-nadir-team": "ads", "x-nadir-tag-zone": "z"}))
    assert sorted(r.request_headers.response.header_mutation.remove_headers) == ["x-nadir-tag-zone", "x-nadir-team"]
    assert proc.out.tags == {"team": "ads"}  # "zone" is not on the allow-list
    assert proc.out.key_id == __import__("hmac").new(SECRET, MARKER.encode(), "sha256").hexdigest()[:16]

    proc = RequestProcessor(ctx(forward=True))
    r = proc.handle(hdrs("request_headers", {**CHAT, "x-nadir-team": "ads"}))
    assert list(r.request_headers.response.header_mutation.remove_headers) == []
    assert proc.out.tags == {"team": "ads"}


@pytest.mark.parametrize(
    "req_headers, payload, expected",
    [
        (CHAT, CHAT_BODY, {"error": {"message": None, "type": "rate_limit_exceeded", "param": None, "code": "budget_exceeded"}}),
        (MSGS, MSGS_BODY, {"type": "error", "error": {"type": "rate_limit_error", "message": None}}),
        (GEMINI, GEMINI_BODY, {"error": {"code": 429, "message": None, "status": "RESOURCE_EXHAUSTED"}}),
    ],
)
def test_block_answers_429_in_the_providers_error_format(req_headers, payload, expected):
    c = ctx([rule(name="ads-hourly", limit_usd="0.001")])
    c.budgets.record({"team": "ads"}, D("0.0012"))
    proc = RequestProcessor(c)
    proc.handle(hdrs("request_headers", {**req_headers, "x-nadir-team": "ads"}))
    r = run(proc, body("request_body", payload))
    assert r.WhichOneof("response") == "immediate_response"
    ir = r.immediate_response
    assert ir.status.code == 429
    doc = json.loads(ir.body)
    msg = "nadir budget 'ads-hourly' exceeded: 0.0012 USD spent of 0.001 USD allowed per hour for this team"
    inner = doc["error"]
    assert inner.pop("message") == msg
    exp = json.loads(json.dumps(expected))
    exp["error"].pop("message")
    assert doc == exp
    h = set_headers(ir.headers)
    # remaining 0.001 - 0.0012; window frees at (bucket+1)*60 + 3600 from t=1_000_000: bucket 16666 -> 1_003_620 -> 3620 s
    exp_h = {"content-type": "application/json", "x-should-retry": "false", "x-nadir-budget-rule": "ads-hourly",
             "x-nadir-budget-remaining": "-0.0002", "retry-after": "3620"}
    if req_headers is GEMINI:
        # gemini-2.5-flash (weak tier), no maxOutputTokens: 512 x 2.50/1e6 = 0.00128 USD of output alone
        # is above the 0.001 limit, so waiting cannot help: no retry-after.
        del exp_h["retry-after"]
    assert h == exp_h
    assert proc.out.result == "blocked" and proc.out.status == 429


def test_remaining_header_and_spend_recorded_when_the_response_is_priced():
    # gpt-4o-mini: 1000 input x 0.15/1e6 + 500 output x 0.60/1e6 = 0.00045 USD
    # Reserved at admission (CHAT_BODY is 60 bytes -> 15 input tokens; no max_tokens -> the
    # default 512 output tokens): 15 x 0.15/1e6 + 512 x 0.60/1e6 = 0.00000225 + 0.0003072 = 0.00030945
    assert len(CHAT_BODY) == 60
    c = ctx([rule(name="ads", limit_usd="0.001", action="alert")])
    resp = json.dumps({"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}).encode()
    remaining = []
    for _ in range(3):
        proc = RequestProcessor(c)
        proc.handle(hdrs("request_headers", {**CHAT, "x-nadir-team": "ads"}))
        run(proc, body("request_body", CHAT_BODY))
        r = proc.handle(hdrs("response_headers", {":status": "200", "content-type": "application/json"}))
        remaining.append(set_headers(r.response_headers.response.header_mutation).get("x-nadir-budget-remaining"))
        r = proc.handle(body("response_body", resp))
        assert set_headers(r.response_body.response.header_mutation)["x-nadir-cost-usd"] == "0.00045"
        # recorded before the stream ends (finish): the next request already sees it
    # after this request's reservation: 0.001 - 0 - 0.00030945 ; 0.001 - 0.00045 - 0.00030945 ; 0.001 - 0.0009 - 0.00030945
    assert remaining == ["0.00069055", "0.00024055", "-0.00020945"]
    proc.finish()
    assert c.budgets.check({"team": "ads"}).remaining_usd == D("-0.00035")  # finish does not add it twice


def test_body_user_becomes_a_budget_scope():
    c = ctx([rule(scope="user", match="end-user-3", limit_usd="0")])
    proc = RequestProcessor(c)
    proc.handle(hdrs("request_headers", MSGS))
    r = run(proc, body("request_body", MSGS_BODY))
    assert r.WhichOneof("response") == "immediate_response"
    assert proc.out.tags == {"user": "end-user-3"}


def test_seed_from_store_reads_hourly_rollups_where_exact_and_equals_a_row_by_row_seed(tmp_path):
    """Start-up seeding from a ledger: a 30-day team rule (12 h buckets: every hour in one bucket)
    and a key_id one read the hourly rollups plus the partial first hour of raw rows; a 7-day
    key rule (2.8 h buckets split hours) and a user rule read raw rows. Every window's total and
    every bucket must equal seeding row by row."""
    import random

    from nadir_extproc.budgets.memory import MemoryStore
    from nadir_extproc.ledger.store import open_store

    now = datetime(2026, 3, 31, 14, 27, 13, tzinfo=timezone.utc).timestamp()
    rnd = random.Random(5)
    rows = [LedgerRow(ts=datetime.fromtimestamp(now - rnd.uniform(0, 35 * 86400), timezone.utc), request_id=f"r{i}",
                      key_id=rnd.choice(["k1", "k2", None]), cost_usd=rnd.choice([None, D(rnd.randrange(1, 10**7)).scaleb(-9)]),
                      tags={"team": rnd.choice(["a", "b"]), "user": rnd.choice(["u1", "u2"])}) for i in range(3000)]
    store = open_store(sqlite_dir=tmp_path)
    store.insert(rows)
    rules = [rule(name="team-month", scope="team", window="month", limit_usd="1000"),
             rule(name="key-2.5d", scope="key_id", window=216000, limit_usd="1000", match="k1"),
             rule(name="key-week", scope="key_id", window="7d", limit_usd="1000"),
             rule(name="user-day", scope="user", window="1d", limit_usd="1000")]
    calls = []
    real_rows = store.rows
    store.rows = lambda since=None, until=None: calls.append((since, until)) or real_rows(since, until)  # count raw reads
    fast = Budgets(rules, clock=Clock(now))
    fast.seed_from_store(store, now)
    slow = Budgets(rules, clock=Clock(now))
    slow.seed(real_rows(datetime.fromtimestamp(now - 30 * 86400, timezone.utc)))

    def state(m: MemoryStore):
        return {k: (w.total, w.bucket_list()) for k, w in m.windows.items() if w.total}

    assert state(fast.local) == state(slow.local)
    assert len(state(fast.local)) == 7  # 2 teams, k1, k1 + k2 weekly, 2 users
    # raw rows read: the 33 minutes before 15:00 for each rollup rule, and 7 days for the others
    edge = datetime(2026, 3, 1, 15, tzinfo=timezone.utc)
    assert (datetime.fromtimestamp(now - 30 * 86400, timezone.utc), edge) in calls
    assert (datetime.fromtimestamp(now - 7 * 86400, timezone.utc), None) in calls and len(calls) == 3
