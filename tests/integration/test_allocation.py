"""Tags, key ids, the ledger and budgets through the real stack (Envoy 1.40 + nadir-extproc +
emulator), with the official SDKs as clients.

Every priced request here is gpt-4o-mini (the weak tier for a short prompt) with usage fixed by the
emulator's ``x-emulator-usage`` header at 1000 input + 500 output tokens:
1000 x 0.15/1e6 + 500 x 0.60/1e6 = 0.00015 + 0.0003 = 0.00045 USD (baseline gpt-4o: 0.0075, saved 0.00705).
Anthropic requests (claude-haiku-4-5, 1.00 / 5.00 per 1M): 100 x 1e-6 + 20 x 5e-6 = 0.0002 USD.

Every test is self-contained and runs in any order: it has its own budget rule keys (team, session,
cost-center or trace no other test sends) and its own ``x-nadir-tag-case`` value, and it checks the
ledger rows of that case only (the module's stack flushes the ledger every 0.1 s). The SIGTERM test
and the Envoy access-log test stop a process, so each starts a stack of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import openai
import pytest

from nadir_extproc.stack import Stack
from tests.integration.conftest import clear_upstream, ledger_rows, raw_post, upstream_requests

MARKER = "sk-MARKER-4b1d7e0a-must-never-be-stored"
USAGE = {"x-emulator-usage": json.dumps({"input": 1000, "output": 500})}
ASK = [{"role": "user", "content": "hi"}]  # scores in the weak band of the shipped router
#: The trace of the runaway-trace rule (a client-chosen W3C trace id).
RUNAWAY_TRACE = "5e1f0c2a9b8d47e3a6c1f00d2b3c4d5e"

# No reservation estimate here: these tests pin the check-then-record rules (a request that
# crosses a limit goes through, the next is blocked). Reservations: tests/budgets.
CONFIG = """
log_level: DEBUG
tags:
  allow: [case, cost-center]
ledger:
  flush_interval_s: {flush}
  batch_size: 10000
budget_reservations: {{bytes_per_token: 0, output_tokens: {{default: 0}}}}
budgets:
  - {{name: capped, scope: team, match: capped, window: 1h, limit_usd: 0.0004, action: block}}
  - {{name: capped-gemini, scope: team, match: capped-gemini, window: 1h, limit_usd: 0.0004, action: block}}
  - {{name: runaway, scope: session, window: 5m, limit_usd: 0.001, action: block}}
  - {{name: watch, scope: team, match: watched, window: 1h, limit_usd: 0.001, action: alert}}
  - {{name: monthly, scope: cost-center, match: cc-month, window: month, limit_usd: 0.0009, action: block}}
  - {{name: runaway-trace, scope: trace, match: 5e1f0c2a9b8d47e3a6c1f00d2b3c4d5e, window: 10m, limit_usd: 0.001, action: block}}
"""


def allocation_stack(d: Path, flush_interval_s: float) -> tuple[Stack, Path]:
    """A stack (not started) whose ext_proc reads ``CONFIG``; its ledger and key secret in ``d/state``."""
    (d / "settings.yaml").write_text(CONFIG.format(flush=flush_interval_s))
    state = d / "state"
    return Stack(extproc_env={"NADIR_CONFIG": str(d / "settings.yaml"), "NADIR_STATE_DIR": str(state)}), state


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    stack, state = allocation_stack(tmp_path_factory.mktemp("allocation"), flush_interval_s=0.1)
    with stack:
        yield stack, state


def oai(stack, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=MARKER, max_retries=retries)


def chat(client, **headers):
    return client.chat.completions.with_raw_response.create(model="auto", messages=ASK, extra_headers={**USAGE, **headers})


def case_rows(state: Path, case: str, n: int, timeout_s: float = 15) -> list[dict]:
    """The ledger rows tagged ``case``, oldest first, once ``n`` of them are written (the writer
    flushes every 0.1 s here); fails when there are not exactly ``n``."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [r for r in ledger_rows(state) if json.loads(r["tags"]).get("case") == case]
        if len(rows) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(rows) == n, f"case {case!r}: {len(rows)} ledger rows, expected {n}"
    return rows


def test_block_returns_the_providers_429_and_the_sdks_raise_rate_limit_errors(env):
    stack, state = env
    clear_upstream(stack)
    before = stack.envoy_stats("ext_proc").get("http.llm.ext_proc.immediate_responses_sent", 0)
    raw = chat(oai(stack), **{"x-nadir-team": "capped", "x-nadir-tag-case": "block"})
    assert raw.headers["x-nadir-cost-usd"] == "0.00045"
    assert raw.headers["x-nadir-budget-remaining"] == "0.0004"  # nothing spent yet
    # spent 0.00045 >= 0.0004: the next call is answered by us. Default SDK retries (2) are
    # switched off by x-should-retry: false, so exactly one 429 per call.
    with pytest.raises(openai.RateLimitError) as ei:
        chat(oai(stack, retries=2), **{"x-nadir-team": "capped", "x-nadir-tag-case": "block"})
    e = ei.value
    assert e.status_code == 429
    assert e.body == {
        "message": "nadir budget 'capped' exceeded: 0.00045 USD spent of 0.0004 USD allowed per hour for this team",
        "type": "rate_limit_exceeded", "param": None, "code": "budget_exceeded",
    }
    assert e.response.headers["x-nadir-budget-rule"] == "capped"
    assert e.response.headers["x-nadir-budget-remaining"] == "-0.00005"  # 0.0004 - 0.00045

    claude = anthropic.Anthropic(base_url=stack.base_url, api_key=MARKER, max_retries=2)
    with pytest.raises(anthropic.RateLimitError) as ai:
        claude.messages.create(model="auto", max_tokens=16, messages=ASK,
                               extra_headers={"x-nadir-team": "capped", "x-nadir-tag-case": "block"})
    assert ai.value.status_code == 429
    assert ai.value.body == {"type": "error", "error": {
        "type": "rate_limit_error",
        "message": "nadir budget 'capped' exceeded: 0.00045 USD spent of 0.0004 USD allowed per hour for this team",
    }}
    assert len(upstream_requests(stack)) == 1  # the blocked calls never reached the provider
    after = stack.envoy_stats("ext_proc")["http.llm.ext_proc.immediate_responses_sent"]
    assert after - before == 2
    # The ledger: the priced call, then the two refusals (status blocked, HTTP 429, cost 0).
    assert [(r["dialect"], r["status"], r["http_status"], r["cost_usd"], r["tag_team"]) for r in case_rows(state, "block", 3)] == [
        ("openai_chat", "ok", 200, "0.00045", "capped"),
        ("openai_chat", "blocked", 429, "0", "capped"),
        ("anthropic_messages", "blocked", 429, "0", "capped"),
    ]


def test_runaway_session_is_stopped_within_one_request_of_crossing(env):
    stack, state = env
    client = oai(stack)
    # 0.001 USD per 5 minutes; each step 0.00045: spent before steps 1..4 = 0, 0.00045, 0.0009, 0.00135
    outcomes = []
    for _ in range(5):
        try:
            chat(client, **{"x-nadir-session": "agent-loop-1", "x-nadir-tag-case": "runaway"})
            outcomes.append("ok")
        except openai.RateLimitError:
            outcomes.append("429")
    assert outcomes == ["ok", "ok", "ok", "429", "429"]
    # another session is fine
    assert chat(client, **{"x-nadir-session": "agent-loop-2", "x-nadir-tag-case": "runaway"}).headers["x-nadir-budget-remaining"] == "0.001"
    assert [(r["tag_session"], r["status"], r["cost_usd"]) for r in case_rows(state, "runaway", 6)] == [
        ("agent-loop-1", "ok", "0.00045"), ("agent-loop-1", "ok", "0.00045"), ("agent-loop-1", "ok", "0.00045"),
        ("agent-loop-1", "blocked", "0"), ("agent-loop-1", "blocked", "0"), ("agent-loop-2", "ok", "0.00045"),
    ]


def test_alert_reports_remaining_budget_and_lets_traffic_through(env):
    stack, state = env
    client = oai(stack)
    remaining = [chat(client, **{"x-nadir-team": "watched", "x-nadir-tag-case": "alert"}).headers["x-nadir-budget-remaining"] for _ in range(4)]
    # 0.001 - 0, - 0.00045, - 0.0009, - 0.00135
    assert remaining == ["0.001", "0.00055", "0.0001", "-0.00035"]
    assert stack.log("extproc").count("budget alert: rule watch") == 1
    # alert never blocks: four priced rows
    assert [(r["status"], r["cost_usd"]) for r in case_rows(state, "alert", 4)] == [("ok", "0.00045")] * 4


def test_tag_headers_do_not_go_upstream(env):
    stack, state = env
    clear_upstream(stack)
    chat(oai(stack), **{"x-nadir-team": "growth", "x-nadir-feature": "search", "x-nadir-tag-cost-center": "cc-1",
                        "x-nadir-tag-not-allowed": "x", "x-nadir-tag-case": "tags"})
    (up,) = upstream_requests(stack)
    assert [k for k in up["hdrs"] if k.startswith("x-nadir")] == []
    assert up["hdrs"]["authorization"] == f"Bearer {MARKER}"  # the provider still gets its key
    # ...but the ledger has them (the allowed ones), and the key as its keyed-hash id only
    (t,) = case_rows(state, "tags", 1)
    assert json.loads(t["tags"]) == {"team": "growth", "feature": "search", "cost-center": "cc-1", "case": "tags"}
    assert (t["tag_team"], t["tag_feature"], t["served_model"], t["cost_usd"], t["saved_usd"]) == (
        "growth", "search", "gpt-4o-mini-2024-07-18", "0.00045", "0.00705")
    secret = (state / "key_id.secret").read_bytes()
    assert t["key_id"] == hmac.new(secret, MARKER.encode(), hashlib.sha256).hexdigest()[:16]


def test_gemini_block_is_googles_own_429(env):
    stack, state = env
    h = {"x-nadir-team": "capped-gemini", "x-nadir-tag-case": "gemini-block"}
    chat(oai(stack), **h)  # 0.00045 spent of 0.0004: the team is over its limit
    status, headers, body = raw_post(
        f"{stack.base_url}/v1beta/models/auto:generateContent",
        json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode(),
        {"x-goog-api-key": MARKER, **h},
    )
    assert status == 429
    assert json.loads(body) == {"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "nadir budget 'capped-gemini' exceeded: 0.00045 USD spent of 0.0004 USD allowed per hour for this team",
    }}
    assert headers["x-nadir-budget-rule"] == "capped-gemini"
    assert [(r["dialect"], r["status"], r["http_status"], r["cost_usd"]) for r in case_rows(state, "gemini-block", 2)] == [
        ("openai_chat", "ok", 200, "0.00045"), ("gemini", "blocked", 429, "0")]


def test_month_window_blocks_once_its_limit_is_reached(env):
    stack, state = env
    client = oai(stack)
    h = {"x-nadir-tag-cost-center": "cc-month", "x-nadir-tag-case": "monthly"}
    # 0.0009 USD per 30 days; each call 0.00045: remaining before calls 1, 2 = 0.0009, 0.00045
    assert [chat(client, **h).headers["x-nadir-budget-remaining"] for _ in range(2)] == ["0.0009", "0.00045"]
    with pytest.raises(openai.RateLimitError) as ei:
        chat(client, **h)
    assert ei.value.body["message"] == (
        "nadir budget 'monthly' exceeded: 0.0009 USD spent of 0.0009 USD allowed per 30 days for this cost-center")
    assert [(r["status"], r["cost_usd"]) for r in case_rows(state, "monthly", 3)] == [
        ("ok", "0.00045"), ("ok", "0.00045"), ("blocked", "0")]


def test_runaway_trace_of_streamed_calls_is_stopped_within_one_request_of_crossing(env):
    stack, state = env
    client = oai(stack)
    h = {**USAGE, "traceparent": f"00-{RUNAWAY_TRACE}-00f067aa0ba902b7-01", "x-nadir-tag-case": "runaway-trace"}
    # 0.001 USD per 10 minutes for this trace; each streamed step 0.00045 (priced from the stream's
    # final usage): spent before steps 1..4 = 0, 0.00045, 0.0009, 0.00135 -> the 4th is refused.
    outcomes = []
    for _ in range(4):
        try:
            for _chunk in client.chat.completions.create(model="auto", messages=ASK, stream=True, extra_headers=h):
                pass
            outcomes.append("ok")
        except openai.RateLimitError:
            outcomes.append("429")
    assert outcomes == ["ok", "ok", "ok", "429"]
    rows = case_rows(state, "runaway-trace", 4)
    assert [(r["status"], r["stream"], r["cost_usd"]) for r in rows] == [
        ("ok", 1, "0.00045"), ("ok", 1, "0.00045"), ("ok", 1, "0.00045"), ("blocked", 0, "0")]
    assert {r["trace_id"] for r in rows} == {RUNAWAY_TRACE}


def test_completed_stream_is_ok_and_cut_stream_is_cut_in_the_ledger(env):
    stack, state = env
    client = oai(stack)
    for _chunk in client.chat.completions.create(model="auto", messages=ASK, stream=True,
                                                 extra_headers={**USAGE, "x-nadir-tag-case": "stream-ok"}):
        pass
    stream = client.chat.completions.create(model="auto", messages=ASK, stream=True, extra_headers={
        **USAGE, "x-nadir-tag-case": "stream-cut", "x-emulator-chunk-delay-ms": "300"})
    next(iter(stream))
    stream.close()  # the client goes away after the first event
    # Outcome.result -> ledger status: ok -> ok (1000 x 0.15/1e6 + 500 x 0.60/1e6), cut ->
    # cut_stream, priced on what was known: no usage had arrived, so unpriced "no_usage".
    (ok,) = case_rows(state, "stream-ok", 1)
    assert (ok["status"], ok["stream"], ok["cost_usd"], ok["uncached_input_tokens"], ok["output_tokens"]) == ("ok", 1, "0.00045", 1000, 500)
    (cut,) = case_rows(state, "stream-cut", 1)
    assert (cut["status"], cut["stream"], cut["cost_usd"], cut["unpriced_reason"]) == ("cut_stream", 1, None, "no_usage")


def test_ledger_rows_survive_sigterm_with_tags_and_key_ids_and_the_key_is_nowhere(tmp_path):
    # A stack of its own whose ledger is written only at SIGTERM (flush interval 1 h, batch
    # 10 000), so the rows found after stopping the ext_proc were flushed by the shutdown path.
    stack, state = allocation_stack(tmp_path, flush_interval_s=3600)
    with stack:
        claude = anthropic.Anthropic(base_url=stack.base_url, api_key=MARKER, max_retries=0)
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=16, messages=ASK, metadata={"user_id": "end-user-42"},
            extra_headers={"x-nadir-env": "prod", "x-nadir-tag-case": "sigterm",
                           "x-emulator-usage": json.dumps({"input": 100, "output": 20})},
        )
        capped = {"x-nadir-team": "capped", "x-nadir-tag-case": "capped"}
        chat(oai(stack), **capped)  # 0.00045 spent of the team's 0.0004: the next one is refused
        with pytest.raises(openai.RateLimitError):
            chat(oai(stack), **capped)
        for _chunk in oai(stack).chat.completions.create(model="auto", messages=ASK, stream=True,
                                                         extra_headers={**USAGE, "x-nadir-tag-case": "stream"}):
            pass
        assert ledger_rows(state) == []  # nothing written yet: the flush interval is an hour
        assert stack.stop_process("extproc") == 0  # SIGTERM: graceful stop flushes the ledger

        rows = ledger_rows(state)
        secret = (state / "key_id.secret").read_bytes()
        kid = hmac.new(secret, MARKER.encode(), hashlib.sha256).hexdigest()[:16]
        assert [(json.loads(r["tags"])["case"], r["provider"], r["status"], r["stream"], r["cost_usd"]) for r in rows] == [
            ("sigterm", "anthropic", "ok", 0, "0.0002"),
            ("capped", "openai", "ok", 0, "0.00045"),
            ("capped", "openai", "blocked", 0, "0"),
            ("stream", "openai", "ok", 1, "0.00045"),
        ]
        assert {r["key_id"] for r in rows} == {kid}
        s = rows[0]
        assert json.loads(s["tags"]) == {"env": "prod", "case": "sigterm", "user": "end-user-42"}
        assert (s["tag_env"], s["tag_user"], s["uncached_input_tokens"], s["output_tokens"]) == ("prod", "end-user-42", 100, 20)

        # The report over the same ledger: 0.0002 + 0.00045 + 0 + 0.00045 = 0.0011.
        out = subprocess.run(
            [sys.executable, "-m", "nadir_extproc.cli", "report", "--sqlite-dir", str(state / "ledger"), "--by", "tag:case", "--format", "json", "--top", "0"],
            capture_output=True, text=True, check=True,
        ).stdout
        doc = json.loads(out)
        assert {g["tag:case"]: (g["requests"], g["cost_usd"]) for g in doc["groups"]} == {
            "sigterm": (1, "0.0002"), "capped": (2, "0.00045"), "stream": (1, "0.00045")}
        assert doc["total"]["cost_usd"] == "0.0011"

        # The raw key is in no file we wrote (ledger + WAL, secret, logs) nor in the report.
        assert MARKER not in out
        for f in [*state.rglob("*"), stack.dir / "extproc.log", stack.dir / "envoy.log"]:
            if f.is_file():
                assert MARKER.encode() not in f.read_bytes(), f

        # Restarted, the budgets are seeded from the ledger: team "capped" is still over its limit.
        stack.start_extproc_process()
        with pytest.raises(openai.RateLimitError) as ei:
            chat(oai(stack), **{"x-nadir-team": "capped", "x-nadir-tag-case": "after-restart"})
        assert ei.value.response.headers["x-nadir-budget-remaining"] == "-0.00005"  # 0.0004 - 0.00045


def test_a_key_in_the_query_string_is_not_in_envoys_log():
    with Stack() as stack:  # its own: the test stops Envoy to read its flushed access log
        marker = "AIzaMARKER-query-key-0c7e"
        status, _, _ = raw_post(
            f"{stack.base_url}/v1beta/models/gemini-2.5-flash:generateContent?key={marker}",
            json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode(),
            {"x-emulator-usage": json.dumps({"input": 10, "output": 5})},
        )
        assert status == 200
        stack.stop_process("envoy")  # SIGTERM: Envoy flushes its buffered access log on the way out
        assert "POST /v1beta/models/" in stack.log("envoy")  # the request's access-log line is there
        assert marker not in stack.log("extproc")
        assert marker not in stack.log("envoy")
