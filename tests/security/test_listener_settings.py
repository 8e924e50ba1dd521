"""Listener settings (issue 14): a configuration that would serve ExternalProcessor in plain text
to the network is an error naming the setting, at load time and when the service starts; the
addresses that are loopback are told apart from those that are not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nadir_extproc.config import ConfigError, load_settings
from nadir_extproc.listeners import ListenerError, Listeners, client_allowed, is_loopback


@pytest.mark.parametrize("addr,loop", [
    ("127.0.0.1:50051", True), ("127.9.9.9:1", True), ("localhost:50051", True), ("[::1]:50051", True),
    ("0.0.0.0:50051", False), ("[::]:50051", False), ("10.1.2.3:50051", False), ("nadir-extproc:50051", False),
    ("[::ffff:10.0.0.1]:1", False),
])
def test_loopback_addresses(addr, loop):
    assert is_loopback(addr) is loop


def test_plain_text_network_listen_is_a_settings_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(env={"NADIR_LISTEN": "0.0.0.0:50051"})
    assert "listen '0.0.0.0:50051' is not a loopback address" in str(e.value)
    assert "health_listen" in str(e.value) and "tls" in str(e.value)  # the message names the fixes
    # Allowed: loopback + a health-only port; TLS on the network; the explicit opt-out.
    s = load_settings(env={"NADIR_LISTEN": "127.0.0.1:1", "NADIR_HEALTH_LISTEN": "0.0.0.0:2"})
    assert (s.listen, s.health_listen) == ("127.0.0.1:1", "0.0.0.0:2")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("listen: 0.0.0.0:1\ntls: {cert_file: a, key_file: b, client_ca_file: c}\n")
    assert load_settings(cfg, env={}).tls.client_ca_file == "c"
    cfg.write_text("listen: 0.0.0.0:1\nallow_plaintext_listen: true\n")
    assert load_settings(cfg, env={}).allow_plaintext_listen is True
    # TLS without client verification is not a mode.
    cfg.write_text("listen: 0.0.0.0:1\ntls: {cert_file: a, key_file: b}\n")
    with pytest.raises(ConfigError, match="client_ca_file"):
        load_settings(cfg, env={})
    cfg.write_text("listen: 127.0.0.1:7\nhealth_listen: 0.0.0.0:7\n")
    with pytest.raises(ConfigError, match="same port"):
        load_settings(cfg, env={})


def test_cli_override_cannot_bypass_the_check(tmp_path):
    # `serve --listen` updates the settings after validation; the listeners check again.
    r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve", "--listen", "0.0.0.0:0"],
                       capture_output=True, text=True, timeout=60, env={"NADIR_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert r.stderr.startswith("error: listen '0.0.0.0:0' is not a loopback address")


async def test_unreadable_tls_files_name_the_setting(tmp_path):  # async: grpc.aio.server() needs a loop
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"listen: 0.0.0.0:0\ntls: {{cert_file: {tmp_path}/nope.crt, key_file: {tmp_path}/k, client_ca_file: {tmp_path}/c}}\n")
    s = load_settings(cfg, env={})
    import grpc

    with pytest.raises(ListenerError, match=r"tls.cert_file: cannot read .*nope.crt"):
        Listeners(s, health=None).bind(grpc.aio.server())


def test_client_identity_rule():
    tls = {"transport_security_type": [b"ssl"], "x509_subject_alternative_name": [b"nadir-extproc-gateway"]}
    assert client_allowed(tls, ["nadir-extproc-gateway"])
    assert not client_allowed({**tls, "x509_subject_alternative_name": [b"other"]}, ["nadir-extproc-gateway"])
    assert not client_allowed({"transport_security_type": [b"ssl"]}, ["nadir-extproc-gateway"])  # no SAN at all
    assert client_allowed({**tls, "x509_subject_alternative_name": [b"other"]}, [])  # no name rule: the CA decides
    assert client_allowed({"transport_security_type": [b"insecure"]}, ["x"])  # Unix socket / loopback


def test_workers_share_the_health_only_port(tmp_path):
    # `serve --workers 2`: both workers bind the same health_listen port (SO_REUSEPORT, as the
    # ext_proc port), so a fixed probe port still works.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from nadir_extproc.stack import free_port

    hport = free_port()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("NADIR_")}
    env.update(NADIR_LISTEN="127.0.0.1:0", NADIR_HEALTH_LISTEN=f"127.0.0.1:{hport}", NADIR_STATE_DIR=str(tmp_path),
               NADIR_WORKERS="2", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    p = subprocess.Popen([sys.executable, "-m", "nadir_extproc.cli", "serve"], stdout=subprocess.PIPE,
                         stderr=open(tmp_path / "serve.log", "w"), text=True, env=env)
    try:
        assert "2 workers" in p.stdout.readline(), (tmp_path / "serve.log").read_text()
        with grpc.insecure_channel(f"127.0.0.1:{hport}") as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        p.terminate()
        p.wait(30)


async def test_identity_check_keeps_either_servicer_style():
    # The servicer may be an async generator or a coroutine using context.read()/write(); the
    # wrapped handler must be the same kind, or gRPC would call it the wrong way.
    import inspect

    import grpc

    from nadir_extproc.listeners import ClientIdentityInterceptor

    async def gen(it, ctx):
        yield 1

    async def coro(it, ctx):
        return None

    for fn, isgen in ((gen, True), (coro, False)):
        handler = grpc.stream_stream_rpc_method_handler(fn)

        async def continuation(details, handler=handler):
            return handler

        details = type("Details", (), {"method": "/envoy.service.ext_proc.v3.ExternalProcessor/Process"})()
        wrapped = await ClientIdentityInterceptor(["x"]).intercept_service(continuation, details)
        assert inspect.isasyncgenfunction(wrapped.stream_stream) is isgen


@pytest.mark.parametrize("setting", ["listen", "health_listen"])
def test_busy_port_is_one_error_line_not_a_traceback(tmp_path, setting):
    # Found by a newcomer: `serve --listen` on a port already in use printed gRPC's traceback.
    import os
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "s.yaml"
        cfg.write_text(f"{setting}: 127.0.0.1:{port}\n" + ("listen: 127.0.0.1:0\n" if setting == "health_listen" else ""))
        env = {**os.environ, "NADIR_STATE_DIR": str(tmp_path / "state"), "OTEL_SDK_DISABLED": "true"}
        r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "─" not in r.stderr, r.stderr[-2000:]
    assert f"error: {setting}: cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("workers", [1, 2])
def test_busy_prometheus_port_is_one_error_line_also_under_workers(tmp_path, workers):
    # Worker i of `serve --workers N` serves /metrics on prometheus_port + i. With that port taken
    # the worker said "cannot start: Address already in use (check state_dir …)" and the supervisor
    # then printed a traceback; now the port is named and the supervisor's failure is one line.
    import os
    import socket

    from nadir_extproc.stack import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        prom = taken - (workers - 1)  # worker `workers - 1` meets the busy port
        env = {**os.environ, "NADIR_STATE_DIR": str(tmp_path / "state"), "OTEL_TRACES_EXPORTER": "none",
               "OTEL_METRICS_EXPORTER": "none", "NADIR_PROMETHEUS_PORT": str(prom), "NADIR_WORKERS": str(workers),
               "NADIR_LISTEN": f"127.0.0.1:{free_port()}"}
        r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve"], capture_output=True, text=True,
                           timeout=180, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "─" not in r.stderr, r.stderr[-2000:]
    assert f"error: telemetry.prometheus_port: cannot listen on 127.0.0.1:{taken}: the port is in use" in r.stderr, r.stderr[-2000:]
    if workers > 1:
        assert r.stderr.rstrip().splitlines()[-1].startswith("error: serve --workers 2: worker "), r.stderr[-2000:]
        assert "exited before listening (code 1)" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("setting,env_var", [("listen", "NADIR_LISTEN"), ("health_listen", "NADIR_HEALTH_LISTEN")])
@pytest.mark.parametrize("addr", ["garbage", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http"])
def test_an_address_that_is_not_host_port_says_so(setting, env_var, addr):
    """A malformed address is named as malformed (with the shape to write), not reported as a
    loopback or trust problem it is not."""
    with pytest.raises(ConfigError) as e:
        load_settings(env={env_var: addr})
    assert f"{setting} {addr!r} is not host:port (for example 127.0.0.1:50051 or [::1]:50051)" in str(e.value)
