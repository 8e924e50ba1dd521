"""Which ext_proc phases run, and what Envoy itself does on the request path (real Envoy)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.integration.conftest import clear_upstream, replay, upstream_requests


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    c = {"id": "chatcmpl-p", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
         "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    return b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n"


def test_sse_response_with_a_content_length_gets_its_in_band_cost(stack):
    """An SSE response that carries a content-length (a canned or buffering upstream, e.g. an
    Envoy direct_response): the in-band cost block changes the length, so the length must go
    (Envoy answers 500 on a mismatch); the client gets every event and the cost."""
    events = [_chunk({"role": "assistant", "content": "Hi"}), _chunk({}, "stop"),
              _chunk({}, usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}), b"data: [DONE]\n\n"]
    body = b"".join(events)
    replay(stack, [body], headers={"content-type": "text/event-stream", "content-length": str(len(body))})
    clear_upstream(stack)
    req = urllib.request.Request(f"{stack.base_url}/v1/chat/completions", method="POST",
                                 data=b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}',
                                 headers={"content-type": "application/json", "authorization": "Bearer sk-t"})
    with urllib.request.urlopen(req, timeout=20) as r:
        status, got = r.status, r.read()
    assert status == 200
    head, sep, tail = got.partition(b"\n: x-nadir-routed-to=")
    assert head + b"\n" == b"".join(events[:3]) and sep
    assert tail.endswith(b"\n\ndata: [DONE]\n\n")
    # gpt-4o-mini: 10 * 0.15 + 2 * 0.6 = 2.7 per 1M tokens
    assert b": x-nadir-cost-usd=0.0000027\n" in got


def test_non_llm_paths_skip_the_ext_proc_filter(stack):
    """docs/extproc-phases.md: routes that are not an LLM API carry
    ``typed_per_filter_config: {envoy.filters.http.ext_proc: {disabled: true}}``, so Envoy opens no
    gRPC stream for them; they are still proxied to the provider cluster."""
    before = stack.envoy_stats("http.llm.ext_proc.streams_started").get("http.llm.ext_proc.streams_started", 0)
    clear_upstream(stack)
    for path in ("/v1/models", "/v1/embeddings", "/v1/messages/count_tokens", "/v1beta/models"):
        req = urllib.request.Request(f"{stack.base_url}{path}", data=b"{}", method="POST", headers={"content-type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError:
            pass  # the emulator may not serve the path; what matters is who saw the request
    after = stack.envoy_stats("http.llm.ext_proc.streams_started").get("http.llm.ext_proc.streams_started", 0)
    assert after == before
    assert [r["path"] for r in upstream_requests(stack)] == ["/v1/models", "/v1/embeddings", "/v1/messages/count_tokens", "/v1beta/models"]
    # An LLM path still opens a stream.
    req = urllib.request.Request(f"{stack.base_url}/v1/chat/completions", method="POST",
                                 data=b'{"model":"gpt-4o-mini","messages":[]}', headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()
    assert stack.envoy_stats("http.llm.ext_proc.streams_started")["http.llm.ext_proc.streams_started"] == after + 1
