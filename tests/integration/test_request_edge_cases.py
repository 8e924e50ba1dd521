"""Request-side edge cases on an LLM path, through the real Envoy 1.40 + nadir-extproc:
shared cases 36-cors-preflight-options-passthrough (a browser's CORS preflight is not ours to
touch) and 41-expect-100-continue-and-bodyless-post (an ``Expect: 100-continue`` upload is
buffered, rewritten and sent on; a POST without a body is forwarded and the provider's error
passed back, never held until the message timeout)."""

from __future__ import annotations

import json
import socket
import time

from tests.conftest import load_case
from tests.integration.conftest import clear_upstream, upstream_requests
from tests.integration.conftest import replay as replay_chunks
from tests.integration.test_provider_cases import replay


def _http(port: int, head: bytes, body: bytes = b"", expect_continue: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 exchange on a fresh connection (so ``Expect: 100-continue`` is honoured
    step by step): returns the final status, lower-case headers and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        if expect_continue:
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(4096)
            assert got.startswith(b"HTTP/1.1 100"), got[:80]
        s.sendall(body)
        data = b""
        while True:
            part = s.recv(65536)
            if not part:
                break
            data += part
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                hdrs = data[:head_end].decode("latin-1").split("\r\n")
                status = int(hdrs[0].split()[1])
                h = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in hdrs[1:])}
                rest = data[head_end + 4:]
                n = int(h.get("content-length", "-1"))
                if status in (204, 304):
                    return status, h, b""
                if n >= 0 and len(rest) >= n:
                    return status, h, rest[:n]
                if h.get("transfer-encoding", "").lower() == "chunked" and rest.endswith(b"0\r\n\r\n"):
                    return status, h, _dechunk(rest)
    raise AssertionError("connection closed before a whole response")


def _dechunk(raw: bytes) -> bytes:
    out, i = b"", 0
    while True:
        j = raw.index(b"\r\n", i)
        n = int(raw[i:j].split(b";")[0], 16)
        if n == 0:
            return out
        out += raw[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def _port(stack) -> int:
    return int(stack.base_url.rsplit(":", 1)[1])


def test_case36_cors_preflight_passes_through_untouched(stack, cases_dir):
    c = load_case(cases_dir, "36-cors-preflight-options-passthrough")
    assert "-X OPTIONS" in c["input"]["command"] and "no x-nadir-*" in c["product_observed"]["headers"]
    clear_upstream(stack)
    cors = {"access-control-allow-origin": "https://app.example", "access-control-allow-methods": "POST",
            "access-control-allow-headers": "authorization, content-type"}
    replay_chunks(stack, [], status=204, headers=cors)
    head = (b"OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
            b"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n"
            b"Content-Length: 0\r\n\r\n")
    status, h, _ = _http(_port(stack), head)
    assert status == 204
    assert not [k for k in h if k.startswith("x-nadir-")]
    assert {k: h.get(k) for k in cors} == cors  # the upstream's CORS answer, unchanged
    assert [r["method"] for r in upstream_requests(stack)] == ["OPTIONS"]


def test_case41_expect_100_continue_body_is_rewritten(stack, cases_dir):
    c = load_case(cases_dir, "41-expect-100-continue-and-bodyless-post")
    assert "Expect: 100-continue" in c["input"]["expect"]
    clear_upstream(stack)
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hello " * 40_000}]}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\nx-nadir-tier: weak\r\n\r\n")
    status, h, _ = _http(_port(stack), head, body, expect_continue=True)
    assert status == 200 and h.get("x-nadir-routed-to")
    sent = json.loads(upstream_requests(stack)[-1]["body"])
    assert sent["model"] != "auto" and sent["model"] == "gpt-4o-mini"  # the weak tier's model


def test_case41_bodyless_post_passes_the_provider_error_back(stack, cases_dir):
    c = load_case(cases_dir, "41-expect-100-continue-and-bodyless-post")
    assert "400" in c["input"]["upstream_reply_for_no_body"]
    err = {"error": {"message": "you must provide a model parameter", "type": "invalid_request_error", "code": None}}
    for head in (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"):
        replay(stack, json.dumps(err), status=400)
        t0 = time.monotonic()
        status, h, body = _http(_port(stack), head)
        assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
        assert h["x-nadir-unpriced-reason"] == "provider_error"
        assert time.monotonic() - t0 < 0.5  # never waits out the 0.5 s message timeout
