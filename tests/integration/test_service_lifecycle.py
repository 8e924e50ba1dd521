"""The service as a process: health, Unix socket, graceful SIGTERM, Envoy with the ext_proc down,
and every Envoy config in the repo checked by ``envoy --mode validate``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nadir_extproc.pb import external_processor_pb2 as ep, external_processor_pb2_grpc as ep_grpc
from nadir_extproc.pb import base_pb2
from nadir_extproc.stack import REPO, Stack, envoy_binary, free_port, render_envoy_config
from tests.integration.conftest import raw_post, upstream_requests

KEY = "sk-test-not-a-real-key"


def _start_service(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    p = subprocess.Popen(
        [sys.executable, "-m", "nadir_extproc.cli", "serve", "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "serve.log", "w"),
        text=True,
        env={**os.environ, **(env or {})},
    )
    line = p.stdout.readline()
    assert "listening" in line, (tmp_path / "serve.log").read_text()
    return p, port


def _headers_msg(path: str) -> ep.ProcessingRequest:
    hm = base_pb2.HeaderMap(
        headers=[
            base_pb2.HeaderValue(key=":method", raw_value=b"POST"),
            base_pb2.HeaderValue(key=":path", raw_value=path.encode()),
            base_pb2.HeaderValue(key="content-type", raw_value=b"application/json"),
        ]
    )
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm, end_of_stream=False))


def test_envoy_configs_in_repo_validate(tmp_path):
    configs = sorted((REPO / "envoy").glob("*.yaml"))
    assert configs
    # envoy/gateway.yaml reads its mTLS files from /etc/envoy/tls/ (a Secret in a pod): validate it
    # with throwaway ones there instead (Envoy opens the files while validating).
    from tests.security.certs import CA

    pem = CA(tmp_path).issue("tls", ["nadir-extproc-gateway"], server=False)
    (tmp_path / "ca.crt").write_bytes(pem.ca.read_bytes())
    for cfg in configs:
        text = cfg.read_text()
        if "/etc/envoy/tls/" in text:
            cfg = tmp_path / cfg.name
            cfg.write_text(text.replace("/etc/envoy/tls/", f"{tmp_path}/"))
        r = subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(cfg)], capture_output=True, text=True)
        assert r.returncode == 0, f"{cfg}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
        assert "OK" in r.stdout + r.stderr


def test_rendered_stack_config_validates(tmp_path):
    cfg = render_envoy_config(listen_port=1, admin_port=2, extproc_port=3, upstream_port=4, extproc_uds=str(tmp_path / "x.sock"))
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_health_tcp_and_unix_socket_and_graceful_sigterm(tmp_path):
    sock = tmp_path / "extproc.sock"
    p, port = _start_service(tmp_path, "--uds", str(sock))
    try:
        for target in (f"127.0.0.1:{port}", f"unix:{sock}"):
            with grpc.insecure_channel(target) as ch:
                h = health_pb2_grpc.HealthStub(ch)
                assert h.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
                svc = "envoy.service.ext_proc.v3.ExternalProcessor"
                assert h.Check(health_pb2.HealthCheckRequest(service=svc)).status == health_pb2.HealthCheckResponse.SERVING

        async def open_stream_survives_sigterm() -> list[ep.ProcessingResponse]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = ep_grpc.ExternalProcessorStub(ch)
                call = stub.Process()
                await call.write(_headers_msg("/v1/chat/completions"))
                first = await call.read()
                p.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)  # the server is draining now
                body = b'{"model":"auto","messages":[{"role":"user","content":"hi"}]}'
                await call.write(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
                second = await call.read()
                await call.done_writing()
                return [first, second]

        first, second = asyncio.run(open_stream_survives_sigterm())
        assert first.HasField("request_headers")
        mutated = json.loads(second.request_body.response.body_mutation.body)
        assert mutated["model"] == "gpt-4o-mini"
        assert p.wait(15) == 0
        # After the stop, new connections are refused.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError):
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
    finally:
        if p.poll() is None:
            p.kill()


def test_bad_config_file_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("paths:\n  /v1/chat/completions: klingon\n")
    r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown dialect 'klingon'" in r.stderr


def test_dead_ext_proc_fails_open_then_recovers():
    # failure_mode_allow: true -> with the ext_proc down the call goes through unprocessed.
    with Stack(start_extproc=False) as stack:
        oai = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
        raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert raw.http_response.status_code == 200
        assert "x-nadir-cost-usd" not in raw.headers
        assert stack.envoy_stats("ext_proc").get("http.llm.ext_proc.failure_mode_allowed", 0) >= 1
        # Start the ext_proc: the next requests are processed again.
        stack.start_extproc_process()
        deadline = time.monotonic() + 10
        while True:
            raw = oai.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
            if "x-nadir-routed-to" in raw.headers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert raw.headers["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18"
        assert json.loads(upstream_requests(stack)[-1]["body"])["model"] == "gpt-4o-mini"


def test_real_provider_upstreams_render_valid_tls_clusters(tmp_path):
    cfg = render_envoy_config(
        listen_port=1, admin_port=2, extproc_port=3, upstream_port=4,
        upstream_urls={"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com:443"},
    )
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert clusters["openai"]["transport_socket"]["typed_config"]["sni"] == "api.openai.com"
    assert clusters["anthropic"]["type"] == "LOGICAL_DNS"
    assert "transport_socket" not in clusters["google"]  # still the emulator
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([str(envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with pytest.raises(ValueError):
        render_envoy_config(listen_port=1, admin_port=2, extproc_port=3, upstream_port=4, upstream_urls={"openai": "https://x/api"})
