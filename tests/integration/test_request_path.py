"""The request path through a real Envoy: model="auto" rewritten, cost headers returned.

Clients are the official ``openai`` and ``anthropic`` SDKs with only the base URL changed. Usage is
fixed per request with the emulator's ``x-emulator-usage`` header so every cost below is hand
arithmetic: tokens x list rate (USD per million tokens), rates stated next to each test.
"""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import openai
import pytest

from tests.integration.conftest import clear_upstream, raw_post, upstream_requests
from tests.conftest import load_case

KEY = "sk-test-not-a-real-key"


def usage_header(**u: int) -> dict[str, str]:
    return {"x-emulator-usage": json.dumps(u)}


@pytest.fixture
def oai(stack):
    clear_upstream(stack)
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture
def claude(stack):
    clear_upstream(stack)
    return anthropic.Anthropic(base_url=stack.base_url, api_key=KEY, max_retries=0)


def _only_upstream(stack) -> dict:
    rows = upstream_requests(stack)
    assert len(rows) == 1, rows
    return rows[0]


def test_chat_auto_simple_prompt_routes_to_weak_model_and_prices_it(stack, oai):
    # Rates (USD / 1M tokens): gpt-4o-mini input 0.15, output 0.60; baseline gpt-4o 2.50 / 10.00.
    # cost  = 1000 * 0.15/1e6 + 500 * 0.60/1e6 = 0.00015 + 0.0003 = 0.00045
    # base  = 1000 * 2.50/1e6 + 500 * 10/1e6  = 0.0025 + 0.005   = 0.0075 -> saved 0.00705
    raw = oai.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "What's the capital of France?"}],
        extra_headers=usage_header(input=1000, output=500),
    )
    completion = raw.parse()
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert raw.headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
    assert raw.headers["x-nadir-cost-usd"] == "0.00045"
    assert raw.headers["x-nadir-cost-saved"] == "0.00705"
    assert Decimal(raw.headers["x-nadir-latency-ms"]) > 0
    up = _only_upstream(stack)
    sent = json.loads(up["body"])
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "user", "content": "What's the capital of France?"}]
    assert int(up["hdrs"]["content-length"]) == len(up["body"])
    assert "x-nadir-provider" not in up["hdrs"]


def test_chat_auto_code_prompt_routes_to_strong_model(stack, oai):
    # gpt-4o: 1000 * 2.50/1e6 + 500 * 10/1e6 = 0.0075; it *is* the baseline -> saved 0.
    raw = oai.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Why does this fail?\n```python\nprint(1/0)\n```"}],
        extra_headers=usage_header(input=1000, output=500),
    )
    assert raw.headers["x-nadir-routed-to"] == "gpt-4o-2024-08-06"
    assert raw.headers["x-nadir-cost-usd"] == "0.0075"
    assert raw.headers["x-nadir-cost-saved"] == "0"
    assert json.loads(_only_upstream(stack)["body"])["model"] == "gpt-4o"


def test_responses_auto_with_cache_and_reasoning(stack, oai):
    # "Derive" is a reasoning marker -> strong tier gpt-4o (2.50 in, 1.25 cached in, 10.00 out).
    # OpenAI counts input_tokens = 2000 uncached + 1000 cached = 3000; reasoning 100 is inside output 300.
    # cost = 2000*2.50/1e6 + 1000*1.25/1e6 + 300*10/1e6 = 0.005 + 0.00125 + 0.003 = 0.00925
    raw = oai.responses.with_raw_response.create(
        model="auto",
        input="Derive the closed form of 1 + 2 + ... + n.",
        extra_headers=usage_header(input=2000, cache_read=1000, output=300, reasoning=100),
    )
    r = raw.parse()
    assert r.usage.input_tokens == 3000 and r.usage.input_tokens_details.cached_tokens == 1000
    assert raw.headers["x-nadir-routed-to"] == "gpt-4o-2024-08-06"
    assert raw.headers["x-nadir-cost-usd"] == "0.00925"
    assert json.loads(_only_upstream(stack)["body"])["model"] == "gpt-4o"


def test_anthropic_auto_with_cache_read_and_write(stack, claude):
    # Short prompt -> weak tier claude-haiku-4-5: input 1.00, 5m cache write 1.25, cache read 0.10, output 5.00.
    # Anthropic input_tokens (100) excludes cache reads (1000) and writes (200):
    # cost = 100*1.00 + 1000*0.10 + 200*1.25 + 50*5.00 = 100 + 100 + 250 + 250 = 700 / 1e6 = 0.0007
    # baseline claude-sonnet-4-5 (3.00, 3.75, 0.30, 15.00): 300 + 300 + 750 + 750 = 2100 / 1e6 = 0.0021
    # saved = 0.0021 - 0.0007 = 0.0014
    raw = claude.messages.with_raw_response.create(
        model="auto",
        max_tokens=128,
        messages=[{"role": "user", "content": "Say hello in Japanese."}],
        extra_headers=usage_header(input=100, cache_read=1000, cache_write=200, output=50),
    )
    msg = raw.parse()
    assert msg.model == "claude-haiku-4-5-20251001"
    assert raw.headers["x-nadir-routed-to"] == "claude-haiku-4-5-20251001"
    assert raw.headers["x-nadir-cost-usd"] == "0.0007"
    assert raw.headers["x-nadir-cost-saved"] == "0.0014"
    up = _only_upstream(stack)
    assert json.loads(up["body"])["model"] == "claude-haiku-4-5"
    assert int(up["hdrs"]["content-length"]) == len(up["body"])


def test_explicit_model_passes_through_byte_identical_with_cost(stack, oai):
    # gpt-4o-mini chosen by the client: 400*0.15/1e6 + 100*0.60/1e6 = 0.00006 + 0.00006 = 0.00012; routing saved 0.
    body = b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi \\u00e9"}], "temperature": 0.20}'
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions", body, usage_header(input=400, output=100))
    assert status == 200
    assert headers["x-nadir-cost-usd"] == "0.00012"
    assert headers["x-nadir-cost-saved"] == "0"
    assert headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
    assert _only_upstream(stack)["body"] == body


def test_spoofed_upstream_nadir_headers_never_reach_the_client(stack, oai):
    # gpt-4o-mini: 10*0.15/1e6 + 10*0.60/1e6 = 0.0000015 + 0.000006 = 0.0000075
    spoof = {
        **usage_header(input=10, output=10),
        "x-emulator-header": "x-nadir-cost-usd: 0",
    }
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers=spoof
    )
    assert raw.headers.get_list("x-nadir-cost-usd") == ["0.0000075"]
    # A spoofed header we would never set ourselves is removed too.
    status, headers, _ = raw_post(
        f"{stack.base_url}/v1/chat/completions",
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
        {"x-emulator-header": "x-nadir-team: attacker"},
    )
    assert status == 200 and "x-nadir-team" not in headers


def test_gzip_response_is_priced_and_reaches_the_client_intact(stack, oai):
    # Shared case 10: gpt-4o-mini, 812 in / 95 out -> 812*0.15/1e6 + 95*0.60/1e6 = 0.0001218 + 0.000057 = 0.0001788
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={**usage_header(input=812, output=95), "x-emulator-gzip": "1", "accept-encoding": "gzip"},
    )
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.parse().usage.prompt_tokens == 812
    assert raw.headers["x-nadir-cost-usd"] == "0.0001788"


def test_unsupported_accept_encoding_is_narrowed_so_usage_stays_readable(stack, oai):
    oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers={"accept-encoding": "compress, br, zstd, gzip"}
    )
    # br and zstd are decoded for usage (httpcodec); compress (LZW) is not.
    assert _only_upstream(stack)["hdrs"]["accept-encoding"] == "br, zstd, gzip"


def test_provider_error_is_unpriced_never_zero(stack, oai):
    with pytest.raises(openai.InternalServerError) as exc:
        oai.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-emulator-status": "500"}
        )
    h = exc.value.response.headers
    assert "x-nadir-cost-usd" not in h
    assert h["x-nadir-unpriced-reason"] == "provider_error"
    assert h["x-nadir-routed-to"] == "gpt-4o-mini"


def test_unknown_model_is_the_providers_404_and_unpriced(stack, oai):
    with pytest.raises(openai.NotFoundError) as exc:
        oai.chat.completions.create(model="gpt-unknown-9", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.response.headers["x-nadir-unpriced-reason"] == "provider_error"
    assert "x-nadir-cost-usd" not in exc.value.response.headers


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json",
        b'{"messages": [{"role": "user", "content": "no model field"}]}',
        b'["model", "auto"]',
    ],
)
def test_unreadable_request_passes_through_untouched(stack, oai, body):
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions", body)
    assert status == 400  # the provider's own answer, not ours
    assert _only_upstream(stack)["body"] == body
    assert "x-nadir-cost-usd" not in headers


def test_one_mib_prompt_is_rewritten(stack, oai, cases_dir):
    # Shared case 09 (09-ext-proc-buffered-body-limit-413): a 1 MiB body must reach the ext_proc
    # (not a 413 from Envoy) and be rewritten.
    prompt = "x" * (1024 * 1024)
    case_limit = load_case(cases_dir, "09-ext-proc-buffered-body-limit-413")["input"]["envoy_listener"]["per_connection_buffer_limit_bytes"]
    assert len(prompt) > case_limit  # the case's 32 KiB listener would answer 413; envoy.yaml's 8 MiB does not
    raw = oai.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}], extra_headers=usage_header(input=5, output=5)
    )
    assert raw.http_response.status_code == 200
    up = _only_upstream(stack)
    # ~262K estimated tokens (1 MiB / 4) do not fit gpt-4o's 128K window: the context constraint
    # moves the request to gpt-4.1-mini (1M-token window) whatever the score said.
    assert json.loads(up["body"])["model"] == "gpt-4.1-mini"
    assert int(up["hdrs"]["content-length"]) == len(up["body"]) > 1024 * 1024


def test_streaming_passes_events_through_with_routed_header(stack, oai):
    with oai.chat.completions.with_streaming_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hi"}], stream=True
    ) as resp:
        assert resp.headers["x-nadir-routed-to"] == "gpt-4o-mini"
        chunks = list(resp.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(_only_upstream(stack)["body"])["model"] == "gpt-4o-mini"


def test_non_llm_path_is_not_processed(stack):
    status, headers, _ = raw_post(f"{stack.base_url}/v1/embeddings", b'{"model":"auto","input":"x"}')
    assert not [k for k in headers if k.startswith("x-nadir-")]
    assert json.loads(upstream_requests(stack)[-1]["body"])["model"] == "auto"


def test_gzip_request_body_with_auto_is_routed(stack, oai):
    import gzip as _gzip

    body = b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions", _gzip.compress(body),
                                  {"content-encoding": "gzip", **usage_header(input=10, output=10)})
    assert status == 200 and headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
    up = _only_upstream(stack)
    assert json.loads(up["body"])["model"] == "gpt-4o-mini" and "content-encoding" not in up["hdrs"]
    assert int(up["hdrs"]["content-length"]) == len(up["body"])


def test_duplicate_model_keys_are_all_rewritten(stack, oai):
    status, _, _ = raw_post(f"{stack.base_url}/v1/chat/completions",
                            b'{"model":"gpt-4o","model":"auto","messages":[{"role":"user","content":"hi"}]}')
    assert status == 200
    assert _only_upstream(stack)["body"] == b'{"model":"gpt-4o-mini","model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


def test_gemini_auto_in_the_path_is_rewritten_and_priced(stack):
    # Gemini puts the model in the URL: "auto" there is replaced in :path (re-routed to the google
    # cluster). Weak tier of the default policy for google is gemini-2.5-flash (0.30 in / 2.50 out):
    # 1000*0.30 + 200*2.50 = 300 + 500 = 800 -> 0.0008
    clear_upstream(stack)
    body = b'{"contents":[{"role":"user","parts":[{"text":"Say hi"}]}]}'
    status, headers, raw = raw_post(f"{stack.base_url}/v1beta/models/auto:generateContent", body,
                                    usage_header(input=1000, output=200))
    assert status == 200, raw
    up = _only_upstream(stack)
    assert up["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert up["body"] == body  # the body is untouched: the model lives in the path
    assert headers["x-nadir-routed-to"] == "gemini-2.5-flash"
    assert headers["x-nadir-cost-usd"] == "0.0008"
