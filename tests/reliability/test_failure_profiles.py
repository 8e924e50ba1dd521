"""Issue 18, failure profiles through the real Envoy 1.40 (envoy/envoy.yaml as shipped):

- fail-open: explicit models (and every non-``auto`` request) go through unprocessed when the
  ext_proc is down, stopped (slower than ``message_timeout``) or restarting;
- fail-closed for ``auto``: the Lua guard after the ext_proc answers a 503 in the API's own error
  shape naming the cause (never the provider's 404 for model ``auto``), buffered and streamed, for
  OpenAI, Anthropic and Gemini paths;
- killed mid-stream: the client keeps its 200 and the events already sent; killed while a
  buffered (JSON) response is on its way: the client gets it whole, unprocessed; later requests
  succeed once the ext_proc is back.

No timing assertions: "slow" is a SIGSTOPped ext_proc (every reply later than any timeout)."""

from __future__ import annotations

import json
import os
import signal
import time

import anthropic
import openai
import pytest

from nadir_extproc.stack import Stack
from tests.integration.conftest import raw_post, upstream_requests

KEY = "sk-test-not-a-real-key"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def stack():
    with Stack(extproc_env={"NADIR_ROUTER": "rules"}) as s:
        yield s


def clients(stack):
    return (openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0, timeout=60),
            anthropic.Anthropic(base_url=stack.base_url, api_key=KEY, max_retries=0, timeout=60))


def wait_processed(stack) -> None:
    """Until an auto request is routed again (the ext_proc is back)."""
    oai, _ = clients(stack)
    deadline = time.monotonic() + 60
    while True:
        try:
            raw = oai.chat.completions.with_raw_response.create(model="auto", messages=MSG)
            if raw.headers.get("x-nadir-routed-to"):
                return
        except openai.APIStatusError:
            pass
        assert time.monotonic() < deadline, "ext_proc did not come back"
        time.sleep(0.3)


def assert_fail_closed(stack, *, stream: bool) -> None:
    oai, ant = clients(stack)
    before = len(upstream_requests(stack))
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(model="auto", messages=MSG, stream=stream)
    assert e.value.status_code == 503
    assert e.value.code == "nadir_extproc_unavailable" and "nadir-extproc did not answer" in e.value.message
    assert e.value.response.headers["x-nadir-error"] == "extproc_unavailable"
    with pytest.raises(anthropic.InternalServerError) as e2:
        ant.messages.create(model="auto", max_tokens=5, messages=MSG, stream=stream)
    assert e2.value.status_code == 503 and e2.value.body["error"]["type"] == "api_error"
    status, _, body = raw_post(f"{stack.base_url}/v1beta/models/auto:"
                               + ("streamGenerateContent?alt=sse" if stream else "generateContent"),
                               b'{"contents":[{"parts":[{"text":"hi"}]}]}')
    assert status == 503 and json.loads(body)["error"]["status"] == "UNAVAILABLE"
    # None of them reached a provider (which would have answered 404 for model "auto").
    assert len(upstream_requests(stack)) == before


def assert_fail_open(stack, *, stream: bool) -> None:
    oai, ant = clients(stack)
    if stream:
        chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
        assert chunks
    else:
        raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        assert raw.http_response.status_code == 200 and "x-nadir-cost-usd" not in raw.headers  # unprocessed
    assert ant.messages.create(model="claude-3-5-haiku-latest", max_tokens=5, messages=MSG).content


@pytest.mark.parametrize("stream", [False, True])
def test_ext_proc_down_auto_fails_closed_explicit_models_fail_open(stack, stream):
    stack.stop_process("extproc")
    try:
        assert_fail_closed(stack, stream=stream)
        assert_fail_open(stack, stream=stream)
    finally:
        stack.start_extproc_process()
    wait_processed(stack)


@pytest.mark.parametrize("stream", [False, True])
def test_ext_proc_slower_than_message_timeout(stack, stream):
    pid = stack.procs["extproc"].pid
    before = stack.envoy_stats("ext_proc").get("http.llm.ext_proc.message_timeouts", 0)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert_fail_closed(stack, stream=stream)
        assert_fail_open(stack, stream=stream)
        assert stack.envoy_stats("ext_proc").get("http.llm.ext_proc.message_timeouts", 0) > before  # this test's own
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_processed(stack)


def test_ext_proc_restarting_then_processed_again(stack):
    stack.procs["extproc"].kill()  # kill -9
    stack.procs["extproc"].wait(10)
    stack.stop_process("extproc")
    assert_fail_closed(stack, stream=False)
    assert_fail_closed(stack, stream=True)
    stack.start_extproc_process()
    wait_processed(stack)
    oai, _ = clients(stack)
    raw = oai.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert raw.headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
    assert json.loads(upstream_requests(stack)[-1]["body"])["model"] == "gpt-4o-mini"


def test_killed_mid_stream_client_keeps_its_200_and_later_requests_succeed(stack):
    oai, _ = clients(stack)
    got: list[str] = []
    outcome = "complete"
    with oai.chat.completions.with_streaming_response.create(
        model="auto", messages=MSG, stream=True, extra_headers={"x-emulator-chunk-delay-ms": "300"}
    ) as resp:
        assert resp.http_response.status_code == 200
        assert resp.headers["x-nadir-routed-to"] == "gpt-4o-mini"
        try:
            for chunk in resp.parse():
                got.append(chunk.id)
                if len(got) == 1:
                    stack.procs["extproc"].kill()  # kill -9 while the stream is open
        except (openai.APIError, Exception) as e:  # noqa: BLE001 — the connection may be cut
            outcome = f"cut: {type(e).__name__}"
    assert got, "events sent before the kill reached the client"
    print(f"[killed mid-stream] {len(got)} events then {outcome}")
    # Measured: with failure_mode_allow the response side fails open too: Envoy drops the broken
    # gRPC stream and passes the rest of the events through (no in-band cost), to the end.
    assert outcome == "complete" and len(got) > 1
    stack.procs["extproc"].wait(10)
    stack.stop_process("extproc")
    stack.start_extproc_process()
    wait_processed(stack)


def test_killed_during_a_buffered_response_client_gets_it_whole(stack, provider_responses):
    """kill -9 while a BUFFERED (JSON) response is on its way: the response headers went through
    the ext_proc, the body is still coming (the upstream sends it in two halves 1.5 s apart). The
    client still gets the provider's 200 and its whole body, unprocessed (fail-open: no cost
    header); the request had been rewritten (auto -> gpt-4o-mini) before the kill; later requests
    are processed once the ext_proc is back."""
    import base64
    import threading
    import urllib.request

    body = (provider_responses / "01-openai-chat-basic.response.json").read_bytes()
    half = len(body) // 2
    spec = {"status": 200, "headers": {"content-type": "application/json"},
            "chunks_base64": [base64.b64encode(body[:half]).decode(), base64.b64encode(body[half:]).decode()], "delay_ms": 1500}
    req = urllib.request.Request(f"{stack.emulator_url}/__emulator/replay", data=json.dumps(spec).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).close()
    before = len(upstream_requests(stack))
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(r=raw_post(
        f"{stack.base_url}/v1/chat/completions", json.dumps({"model": "auto", "messages": MSG}).encode(),
        {"authorization": f"Bearer {KEY}"})))
    t.start()
    deadline = time.monotonic() + 10
    while len(upstream_requests(stack)) == before:  # the upstream has the request: headers next
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the response headers are through the ext_proc; the second half is 1 s away
    stack.procs["extproc"].kill()  # kill -9
    t.join(30)
    status, headers, got = result["r"]
    assert status == 200 and got == body
    assert "x-nadir-cost-usd" not in headers and "x-nadir-unpriced-reason" not in headers
    assert json.loads(upstream_requests(stack)[-1]["body"])["model"] == "gpt-4o-mini"
    stack.procs["extproc"].wait(10)
    stack.stop_process("extproc")
    stack.start_extproc_process()
    wait_processed(stack)


def _big_body() -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}).encode()


def test_envoys_own_413_is_request_too_large_not_provider_error(stack, tmp_path):
    # HTTP/1.1: Envoy's per_connection_buffer_limit_bytes (8 MiB) answers before the body phase.
    status, headers, _ = raw_post(f"{stack.base_url}/v1/chat/completions", _big_body())
    assert status == 413
    assert headers.get("x-nadir-unpriced-reason") == "request_too_large"


def test_http2_body_over_max_request_bytes_gets_our_413(stack, tmp_path):
    # HTTP/2 (h2c prior knowledge): Envoy's buffer limit does not cap it; our max_request_bytes does.
    import subprocess

    f = tmp_path / "big.json"
    f.write_bytes(_big_body())
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-o", str(tmp_path / "out"), "-D", "-", "-X", "POST",
         "-H", "content-type: application/json", "--data-binary", f"@{f}", f"{stack.base_url}/v1/chat/completions"],
        capture_output=True, text=True, timeout=120)
    head = out.stdout.lower()
    assert head.startswith("http/2 413"), out.stdout + out.stderr
    assert "x-nadir-unpriced-reason: request_too_large" in head
    err = json.loads((tmp_path / "out").read_bytes())["error"]
    assert err["code"] == "request_too_large" and str(len(_big_body())) in err["message"]
