"""Large ``model="auto"`` bodies through the real Envoy (shared case 37,
37-large-auto-body-rewrite-exceeds-message-timeout): a 5.94 MB body must reach the upstream with a
concrete model — only the model value changed, every other byte as sent, content-length fixed —
and Envoy must count no ext_proc message timeout (with ``failure_mode_allow`` a timeout would send
``"auto"`` upstream). No timing assertions: bench/ measures the rewrite time."""

from __future__ import annotations

import re

from tests.integration.conftest import clear_upstream, raw_post, upstream_requests
from tests.conftest import load_case


def test_case_37_six_mb_auto_body_is_rewritten_before_the_message_timeout(stack, cases_dir):
    tail = b'", "messages": [{"role": "user", "content": "' + b"lorem ipsum dolor " * 330_000 + b'"}]}'
    raw = b'{"model": "auto' + tail
    case = load_case(cases_dir, "37-large-auto-body-rewrite-exceeds-message-timeout")
    assert len(raw) == int(re.search(r"\(([\d,]+) bytes", case["input"]["body_5_94MB"]).group(1).replace(",", "")) == 5_940_064
    before = stack.envoy_stats("http.llm.ext_proc")
    clear_upstream(stack)
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions", raw,
                                  {"authorization": "Bearer sk-test", "x-emulator-usage": '{"input": 10, "output": 2}'})
    after = stack.envoy_stats("http.llm.ext_proc")
    assert status == 200
    (up,) = upstream_requests(stack)
    routed = headers["x-nadir-routed-to"]
    # The rule router sends a long prompt to the strong tier: OpenAI's strong model is gpt-4o.
    assert up["body"] == b'{"model": "gpt-4o' + tail
    assert up["hdrs"]["content-length"] == str(len(raw) - 4 + len(b"gpt-4o"))
    assert routed.startswith("gpt-4o")
    for k in ("message_timeouts", "failure_mode_allowed", "streams_failed"):
        assert after.get(f"http.llm.ext_proc.{k}", 0) == before.get(f"http.llm.ext_proc.{k}", 0), k
