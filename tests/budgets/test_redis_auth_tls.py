"""Redis with a password and over TLS (``rediss://``): the same admission and settlement; a wrong
password is a store error like any other (local totals, counted)."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal as D
from pathlib import Path

import pytest

from nadir_extproc.budgets import Budgets
from nadir_extproc.config import BudgetRedisSettings, BudgetRule
from nadir_extproc.stack import free_port
from tests.budgets.conftest import RedisServer, running_redis

RULE = BudgetRule(name="r", scope="team", window="1h", limit_usd="0.001", action="block")


def _certs(d: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=nadir test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "san.ext")


@pytest.fixture
def tls_redis():
    def tls(srv: RedisServer) -> list[str]:
        _certs(srv.dir)
        srv.tls_port = free_port()
        return ["--tls-port", str(srv.tls_port), "--tls-cert-file", str(srv.dir / "server.pem"),
                "--tls-key-file", str(srv.dir / "server.key"), "--tls-ca-cert-file", str(srv.dir / "ca.pem"),
                "--tls-auth-clients", "no", "--requirepass", "s3cret-budget"]

    with running_redis(tls) as srv:
        yield srv


async def test_tls_and_password_from_a_file(tls_redis):
    pw = tls_redis.dir / "password"
    pw.write_text("s3cret-budget\n")
    cfg = BudgetRedisSettings(url=f"rediss://127.0.0.1:{tls_redis.tls_port}/0", tls_ca_file=str(tls_redis.dir / "ca.pem"),
                              password_file=str(pw), timeout_ms=2000)
    b = Budgets([RULE], redis=cfg)
    await b.start()
    assert b.up
    a = await b.admit({"team": "t"}, D("0.0004"))
    assert (a.reservation.where, a.verdict.remaining_usd) == ("redis", D("0.0006"))
    b.settle(a.reservation, D("0.00025"))
    await __import__("asyncio").wait(list(b._tasks), timeout=5)
    (st,) = await b.shared_totals({"team": "t"})
    assert (st.spent, st.reserved) == (D("0.00025"), D("0"))
    await b.aclose()


async def test_wrong_password_or_untrusted_certificate_falls_back_to_local_totals(tls_redis):
    bad_pw = Budgets([RULE], redis=BudgetRedisSettings(
        url=f"rediss://:wrong@127.0.0.1:{tls_redis.tls_port}/0", tls_ca_file=str(tls_redis.dir / "ca.pem"), timeout_ms=2000))
    await bad_pw.start()
    assert not bad_pw.up
    assert (await bad_pw.admit({"team": "t"}, D("0.0004"))).reservation.where == "local"
    await bad_pw.aclose()
    untrusted = Budgets([RULE], redis=BudgetRedisSettings(
        url=f"rediss://:s3cret-budget@127.0.0.1:{tls_redis.tls_port}/0", timeout_ms=2000))  # system CAs only
    await untrusted.start()
    assert not untrusted.up
    await untrusted.aclose()
