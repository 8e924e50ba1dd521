"""Shared cases 27-42 (provider breadth, billed items, stream and lifecycle faults) through the real
Envoy 1.40 + nadir-extproc, the emulator replaying the provider's exact bytes
(``/__emulator/replay``). Expected USD values are the cases' hand-worked ones (tokens x list rate,
genai-prices 0.2.3, priced at today's date), re-derived next to each assertion.

Cases: 29-responses-web-search-call-fee, 31-openai-chat-audio-tokens,
33-gemini-tool-use-prompt-tokens, 34-responses-background-retrieve-unpriced,
38-otel-provider-name-vertex; plus the stream faults of issue 12 (error-terminated stream, an empty
leading ``model``, a CRLF stream without a terminal event) and Anthropic price variants.
"""

from __future__ import annotations

import json
import secrets
import urllib.request

import pytest

from nadir_extproc.inband import parse_fields
from nadir_extproc.stack import Stack
from tests.conftest import load_case
from tests.integration.conftest import raw_post
from tests.integration.conftest import replay as replay_chunks


@pytest.fixture(scope="module")
def stack(receiver):
    env = {"NADIR_ROUTER": "rules", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with Stack(otlp_endpoint=receiver.endpoint, extproc_env=env) as s:
        yield s



def replay(stack: Stack, body: bytes | str | dict, ctype: str = "application/json", status: int = 200,
           chunk: int = 0) -> None:
    """The next upstream request gets exactly these bytes (re-chunked when ``chunk``)."""
    data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    replay_chunks(stack, [data[i:i + chunk] for i in range(0, len(data), chunk)] if chunk else [data], ctype, status=status, delay_ms=1)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method="GET", headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


def span_with(receiver, key: str, value: str, timeout_s: float = 20):
    return receiver.our_span(lambda s: s.attrs.get(key) == value, timeout_s)


@pytest.mark.parametrize(("stem", "path", "cost"), [
    # gpt-5: 8200 x 1.25 + 900 x 10 = 19250 millionths + 2 web_search_call x $10 / 1000
    ("29-responses-web-search-call-fee", "/v1/responses", "0.03925"),
    # gpt-audio: 80 x 2.5 + 420 x 32 + 120 x 10 + 780 x 64 = 64760 millionths
    ("31-openai-chat-audio-tokens", "/v1/chat/completions", "0.06476"),
    # gemini-3-flash-preview: (151 + 18329) x 0.5 + (1089 + 1120) x 3 = 15867 millionths (path: the case's URL)
    ("33-gemini-tool-use-prompt-tokens", None, "0.015867"),
])
def test_case_json_response_priced_through_envoy(stack, cases_dir, stem, path, cost):
    c = load_case(cases_dir, stem)
    replay(stack, c["input"]["response_body"])
    path = path or c["input"]["url"].split("googleapis.com", 1)[1]
    status, h, _ = raw_post(f"{stack.base_url}{path}", json.dumps(c["input"]["request_body"]).encode())
    assert status == 200
    assert h["x-nadir-cost-usd"] == c["expected"]["cost_usd"] == cost


def test_case29_web_search_calls_in_a_stream(stack, cases_dir):
    c = load_case(cases_dir, "29-responses-web-search-call-fee")
    body = c["input"]["response_body"]
    events = [
        ("response.created", {"type": "response.created", "response": {**body, "status": "in_progress", "output": [], "usage": None}}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 1, "item": body["output"][1]}),
        ("response.completed", {"type": "response.completed", "response": body}),
    ]
    sse = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    replay(stack, sse, "text/event-stream", chunk=300)
    req = {**c["input"]["request_body"], "stream": True}
    status, _, out = raw_post(f"{stack.base_url}/v1/responses", json.dumps(req).encode())
    assert status == 200
    assert parse_fields(out)["x-nadir-cost-usd"] == "0.03925"


def test_case34_background_response_priced_once_on_retrieval(stack, cases_dir, receiver):
    c = load_case(cases_dir, "34-responses-background-retrieve-unpriced")
    s1, s2 = c["input"]["step1"], c["input"]["step2"]
    rid = f"resp_bg_{secrets.token_hex(6)}"  # fresh per run: a retrieval of an id is priced once
    queued = {**s1["upstream_reply"], "id": rid}
    done = {**s2["upstream_reply"], "id": rid}
    replay(stack, queued)
    status, h, _ = raw_post(f"{stack.base_url}/v1/responses", json.dumps(s1["body"]).encode())
    assert status == 200
    assert h["x-nadir-unpriced-reason"] == "background_pending" and "x-nadir-cost-usd" not in h
    replay(stack, done)
    status, h, body = get(f"{stack.base_url}/v1/responses/{rid}")
    assert status == 200 and json.loads(body)["status"] == "completed"
    # gpt-5: 12000 x 1.25 + 30000 x 10 = 15000 + 300000 millionths
    assert h["x-nadir-cost-usd"] == c["expected"]["cost_usd"] == "0.315"
    span = receiver.our_span(lambda s: s.attrs.get("gen_ai.response.id") == rid and "nadir.cost.usd" in s.attrs)
    assert span.attrs["nadir.cost.usd"] == "0.315" and span.attrs["gen_ai.usage.output_tokens"] == 30000
    replay(stack, done)  # polled again: never billed twice
    status, h, _ = get(f"{stack.base_url}/v1/responses/{rid}")
    assert status == 200 and "x-nadir-cost-usd" not in h
    assert h["x-nadir-unpriced-reason"] == "already_priced"


def test_case38_otel_provider_name_per_endpoint(stack, cases_dir, provider_responses, receiver):
    c = load_case(cases_dir, "38-otel-provider-name-vertex")
    body = (provider_responses / "35-gemini-generate-thoughts.response.json").read_bytes()
    req = (provider_responses / "35-gemini-generate-thoughts.request.json").read_bytes()
    names = {}
    for key in ("vertex", "gemini_api"):
        user = f"u-{secrets.token_hex(6)}"
        replay(stack, body)
        status, h, _ = raw_post(f"{stack.base_url}{c['input'][key].split(' ', 1)[1]}", req, {"x-nadir-user": user})
        assert status == 200 and h["x-nadir-cost-usd"] == "0.0001102"  # 9 x 0.30 + 43 x 2.50
        names[key] = span_with(receiver, "nadir.tag.user", user).attrs["gen_ai.provider.name"]
    assert names == {"vertex": c["expected"]["vertex"], "gemini_api": c["expected"]["gemini_api"]} == {
        "vertex": "gcp.vertex_ai", "gemini_api": "gcp.gemini"}


def test_error_terminated_stream_is_not_priced(stack):
    # Anthropic: message_start reports usage, then `event: error` (overloaded) ends the stream.
    start = {"type": "message_start", "message": {
        "id": "msg_err_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [], "stop_reason": None, "usage": {"input_tokens": 1000, "output_tokens": 1}}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    sse = (f"event: message_start\ndata: {json.dumps(start)}\n\n"
           f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n"
           f"event: error\ndata: {json.dumps(err)}\n\n")
    replay(stack, sse, "text/event-stream")
    req = {"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    status, _, out = raw_post(f"{stack.base_url}/v1/messages", json.dumps(req).encode(), {"anthropic-version": "2023-06-01"})
    assert status == 200
    fields = parse_fields(out)
    assert "x-nadir-cost-usd" not in fields and fields["x-nadir-unpriced-reason"] == "stream_error"


def stream_chat(stack) -> tuple[int, bytes]:
    """A streamed gpt-4o-mini Chat Completions call (with include_usage) through Envoy: (status, body)."""
    req = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
           "messages": [{"role": "user", "content": "hi"}]}
    status, _, out = raw_post(f"{stack.base_url}/v1/chat/completions", json.dumps(req).encode())
    return status, out


def test_error_chunk_ends_a_chat_stream_unpriced(stack):
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
             "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
             "usage": {"prompt_tokens": 100, "completion_tokens": 5}}
    err = {"error": {"message": "The server had an error", "type": "server_error"}}
    sse = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(err)}\n\ndata: [DONE]\n\n"
    replay(stack, sse, "text/event-stream")
    status, out = stream_chat(stack)
    assert status == 200
    fields = parse_fields(out)
    assert "x-nadir-cost-usd" not in fields and fields["x-nadir-unpriced-reason"] == "stream_error"


def test_empty_leading_model_does_not_hide_the_served_model(stack):
    # Azure OpenAI opens a stream with a content-filter chunk whose model is "".
    filt = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
    first = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
             "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    use = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18", "choices": [],
           "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    sse = "".join(f"data: {json.dumps(x)}\n\n" for x in (filt, first, use)) + "data: [DONE]\n\n"
    replay(stack, sse, "text/event-stream")
    status, out = stream_chat(stack)
    fields = parse_fields(out)
    # gpt-4o-mini: 1000 x 0.15 + 100 x 0.60 = 210 millionths
    assert (status, fields["x-nadir-routed-to"], fields["x-nadir-cost-usd"]) == (200, "gpt-4o-mini-2024-07-18", "0.00021")


def test_crlf_stream_gets_a_crlf_inband_block(stack):
    # A CRLF stream that ends without `data: [DONE]`: the block at the end uses CRLF too.
    use = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18", "choices": [],
           "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    first = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
             "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    sse = f"data: {json.dumps(first)}\r\n\r\ndata: {json.dumps(use)}\r\n\r\n"
    replay(stack, sse, "text/event-stream")
    status, out = stream_chat(stack)
    assert status == 200
    block = out[out.index(b": x-nadir-"):]
    assert b"\n" not in block.replace(b"\r\n", b"") and block.endswith(b"\r\n\r\n")
    assert parse_fields(out)["x-nadir-cost-usd"] == "0.00021"


def test_anthropic_fast_mode_is_unpriced_not_standard(stack):
    body = {"id": "msg_fast", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "output_tokens": 100, "speed": "fast", "service_tier": "standard"}}
    replay(stack, body)
    req = {"model": "claude-opus-4-6", "max_tokens": 10, "speed": "fast", "messages": [{"role": "user", "content": "hi"}]}
    status, h, _ = raw_post(f"{stack.base_url}/v1/messages", json.dumps(req).encode(), {"anthropic-version": "2023-06-01"})
    assert status == 200
    assert "x-nadir-cost-usd" not in h and h["x-nadir-unpriced-reason"] == "unknown_price_variant"


def test_azure_deployment_path_priced_and_named(stack, receiver):
    body = {"id": "chatcmpl-az", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    replay(stack, body)
    user = f"u-{secrets.token_hex(6)}"
    status, h, _ = raw_post(f"{stack.base_url}/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
                            json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(), {"x-nadir-user": user})
    # Azure gpt-4o (genai-prices azure): 1000 x 2.50 + 100 x 10 = 3500 millionths
    assert (status, h["x-nadir-cost-usd"]) == (200, "0.0035")
    assert span_with(receiver, "nadir.tag.user", user).attrs["gen_ai.provider.name"] == "azure.ai.openai"


def test_claude_on_vertex_priced_and_named(stack, receiver):
    body = {"id": "msg_v1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "output_tokens": 100}}
    replay(stack, body)
    user = f"u-{secrets.token_hex(6)}"
    path = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    req = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    status, h, _ = raw_post(f"{stack.base_url}{path}", json.dumps(req).encode(), {"x-nadir-user": user})
    # claude-sonnet-4-5: 1000 x 3 + 100 x 15 = 4500 millionths
    assert (status, h["x-nadir-cost-usd"]) == (200, "0.0045")
    assert span_with(receiver, "nadir.tag.user", user).attrs["gen_ai.provider.name"] == "gcp.vertex_ai"


def test_silent_response_priced_at_the_requested_tier(stack):
    # gpt-5 flex $0.625 / $5 per MTok: the response does not say its tier, the request asked for flex.
    body = {"id": "chatcmpl-t", "object": "chat.completion", "model": "gpt-5-2025-08-07",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}}
    replay(stack, body)
    req = {"model": "gpt-5", "service_tier": "flex", "messages": [{"role": "user", "content": "hi"}]}
    status, h, _ = raw_post(f"{stack.base_url}/v1/chat/completions", json.dumps(req).encode())
    assert (status, h["x-nadir-cost-usd"]) == (200, "0.001125")  # 1000 x 0.625 + 100 x 5


# -- OpenAI-compatible providers behind their Envoy routes (route metadata nadir.provider) --------

def test_case27_xai_reasoning_on_top_of_completion_through_envoy(stack, cases_dir):
    c = load_case(cases_dir, "27-xai-reasoning-outside-completion-tokens")
    replay(stack, c["input"]["response_body"])
    status, h, _ = raw_post(f"{stack.base_url}/xai/v1/chat/completions", json.dumps(c["input"]["request_body"]).encode())
    # grok-3-mini $0.30 / $0.50: 40 x 0.3 + (25 + 500) x 0.5 = 274.5 millionths
    assert (status, h["x-nadir-cost-usd"]) == (200, c["expected"]["cost_usd"]) == (200, "0.0002745")


def test_case28_groq_stream_usage_under_x_groq_through_envoy(stack, cases_dir):
    c = load_case(cases_dir, "28-groq-usage-only-in-x-groq")
    replay(stack, c["input"]["response_sse"], "text/event-stream", chunk=200)
    status, _, out = raw_post(f"{stack.base_url}/groq/v1/chat/completions", json.dumps(c["input"]["request_body"]).encode())
    # llama-3.1-8b-instant $0.05 / $0.08: 230 x 0.05 + 190 x 0.08 = 26.7 millionths
    assert status == 200 and parse_fields(out)["x-nadir-cost-usd"] == c["expected"]["cost_usd"] == "0.0000267"


def test_case39_perplexity_request_fee_and_reported_cost_through_envoy(stack, cases_dir, receiver):
    c = load_case(cases_dir, "39-perplexity-request-fee")
    replay(stack, c["input"]["response_body"])
    user = f"u-{secrets.token_hex(6)}"
    status, h, _ = raw_post(f"{stack.base_url}/perplexity/chat/completions", json.dumps(c["input"]["request_body"]).encode(),
                            {"x-nadir-user": user})
    # sonar: 50 x 1 + 100 x 1 = 150 millionths + $5 / 1000 requests (search_context_size low)
    # = 0.00515 = Perplexity's own usage.cost.total_cost
    assert (status, h["x-nadir-cost-usd"]) == (200, "0.00515")
    span = span_with(receiver, "nadir.tag.user", user)
    assert (span.attrs["nadir.cost.reported_usd"], span.attrs["nadir.cost.catalogue_usd"]) == ("0.00515", "0.00515")
    assert span.attrs["gen_ai.provider.name"] == "perplexity"


def test_case42_groq_json_through_envoy(stack, provider_responses):
    replay(stack, (provider_responses / "41-groq-chat-basic.response.json").read_bytes())
    req = (provider_responses / "41-groq-chat-basic.request.json").read_bytes()
    status, h, _ = raw_post(f"{stack.base_url}/groq/v1/chat/completions", req)
    # llama-3.3-70b-versatile $0.59 / $0.79: 48 x 0.59 + 8 x 0.79 = 34.64 millionths
    assert (status, h["x-nadir-cost-usd"]) == (200, "0.00003464")


# -- every recorded interaction through Envoy --------------------------------------------------
#: Host -> the path prefix Envoy mounts that provider under (envoy/envoy.yaml).
_MOUNTS = {"api.groq.com": ("/openai/", "/groq/"), "openrouter.ai": ("/api/", "/openrouter/"),
           "api.z.ai": ("/api/paas/", "/zai/")}
#: Recordings the request path deliberately does not price, and why (the cost command prices the
#: Hugging Face one from its URL: genai-prices knows router.huggingface.co/<provider>/).
_NOT_ON_THE_REQUEST_PATH = {
    "11-openai-completions-stream-include-usage": "legacy /v1/completions is not an LLM path we price",
    "47-huggingface-router-stream": "Hugging Face's router has no Envoy route of ours (add one like /groq/)",
}
#: Where the request path's answer differs from the cost command's for the same recording.
_ENVOY_UNPRICED = {"44-ollama-local-chat": "unknown_model"}  # served by the default (openai) route


def _recording_ids() -> list[str]:
    from tests.pricing.test_cost_cli import PRICED, UNPRICED

    return sorted(set(PRICED) | set(UNPRICED))


@pytest.mark.parametrize("rid", _recording_ids())
def test_recording_through_envoy(rid, stack, receiver, provider_index, provider_responses):
    """Each recorded real interaction, replayed byte for byte behind Envoy: priced at the cost
    command's hand-worked value (tests/pricing/test_cost_cli.py), or unpriced with its reason."""
    from urllib.parse import urlsplit

    from tests.pricing.test_cost_cli import PRICED, UNPRICED

    row = next(r for r in provider_index if r["id"] == rid)
    parts = urlsplit(row["url"])
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    upstream, mount = _MOUNTS.get(parts.hostname, ("/", "/"))
    path = mount + path[len(upstream):]
    data = (provider_responses / row["response_file"]).read_bytes()
    replay(stack, data, row["response_content_type"], status=row["status"], chunk=512 if row["streaming"] else 0)
    req = provider_responses / row["request_file"]
    user = f"u-{secrets.token_hex(6)}"
    status, h, out = raw_post(f"{stack.base_url}{path}", req.read_bytes() if req.is_file() else b"{}", {"x-nadir-user": user})
    assert status == row["status"]
    if rid in _NOT_ON_THE_REQUEST_PATH:
        assert not [k for k in h if k.startswith("x-nadir-")] and b": x-nadir-" not in out
        return
    span = span_with(receiver, "nadir.tag.user", user)
    if rid in PRICED:
        assert span.attrs.get("nadir.cost.usd") == PRICED[rid], (rid, span.attrs.get("nadir.cost.unpriced_reason"))
    else:
        assert "nadir.cost.usd" not in span.attrs
        assert span.attrs["nadir.cost.unpriced_reason"] == _ENVOY_UNPRICED.get(rid, UNPRICED[rid])
