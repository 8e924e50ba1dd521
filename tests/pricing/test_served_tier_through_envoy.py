"""The served service tier is priced on the request path: real Envoy 1.40 + nadir-extproc, the
emulator replaying the provider's bytes (a JSON body, and the recorded flex stream 21).

Rates (USD per MTok, OpenAI "Flex processing"; catalogue variant effective 2026-10-12, so these
tests price at today's date): gpt-5 standard $1.25 in / $10 out, flex $0.625 / $5.
"""

from __future__ import annotations

import json
import re

import pytest

from nadir_extproc.stack import Stack
from tests.integration.conftest import raw_post, replay

COMMENT = re.compile(rb"(?:: x-nadir-[a-z-]+=[^\r\n]*\r?\n)+\r?\n")


@pytest.fixture(scope="module")
def stack():
    with Stack(extproc_env={"NADIR_ROUTER": "rules"}) as s:
        yield s


def test_json_response_served_on_flex_is_priced_at_flex(stack):
    body = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-5-2025-08-07", "service_tier": "flex",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    replay(stack, [json.dumps(body).encode()], "application/json", delay_ms=1)
    status, h, _ = raw_post(f"{stack.base_url}/v1/chat/completions",
                            json.dumps({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert status == 200
    # flex: 1000 x 0.625 + 100 x 5 = 625 + 500 millionths (standard would be 1250 + 1000 = 0.00225)
    assert h["x-nadir-cost-usd"] == "0.001125"
    assert h["x-nadir-cost-saved"] == "0"  # the client chose the model


def test_recorded_flex_stream_is_priced_at_flex(stack, provider_responses):
    data = (provider_responses / "21-openai-responses-stream-gpt-5-usage.response.sse").read_bytes()
    replay(stack, [data[i:i + 700] for i in range(0, len(data), 700)], "text/event-stream; charset=utf-8", delay_ms=1)
    req = json.loads((provider_responses / "21-openai-responses-stream-gpt-5-usage.request.json").read_text())
    status, _, out = raw_post(f"{stack.base_url}/v1/responses", json.dumps(req).encode())
    assert status == 200
    blocks = COMMENT.findall(out)
    assert len(blocks) == 1
    fields = dict(line[2:].decode().partition("=")[::2] for line in blocks[0].splitlines() if line.startswith(b": "))
    # The stream says "service_tier":"flex": 53 x 0.625 + 469 x 5 = 33.125 + 2345 millionths.
    assert fields["x-nadir-cost-usd"] == "0.002378125"
