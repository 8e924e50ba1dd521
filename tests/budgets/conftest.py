"""A real ``redis-server`` (Debian's ``redis-server`` package; ``.ci/run`` installs it) on a free
loopback port in a temp folder, no persistence, started by the tests and stopped afterwards.
Without the binary these tests skip, saying why."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from nadir_extproc.stack import free_port


class RedisServer:
    """One ``redis-server`` process; ``kill()`` (SIGKILL) and ``start()`` again on the same port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="nadir-redis-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--daemonize", "no", *extra]
        self.proc = subprocess.Popen(args, stdout=open(self.dir / "redis.log", "a"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (with --requirepass: NOAUTH)
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server not ready in time")

    def pause(self) -> None:
        """SIGSTOP: the server stops answering (a stalled Redis); ``resume()`` continues it."""
        import os
        import signal

        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        import os
        import signal

        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def redis_binary() -> str:
    b = shutil.which("redis-server")
    if b is None:
        pytest.skip("redis-server not found (Debian: apt-get install redis-server; .ci/run installs it)")
    return b


@contextmanager
def running_redis(extra_args: Callable[[RedisServer], Sequence[str]] | None = None) -> Iterator[RedisServer]:
    """A started ``RedisServer`` (with ``extra_args(server)`` on its command line: TLS, a password),
    stopped and its folder removed on exit."""
    srv = RedisServer(redis_binary())
    srv.start(*(extra_args(srv) if extra_args else ()))
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    """A running ``RedisServer`` shared by the session (tests use their own key prefixes)."""
    with running_redis() as srv:
        yield srv


@pytest.fixture
def own_redis():
    """A ``RedisServer`` of this test alone (to kill and restart), started."""
    with running_redis() as srv:
        yield srv
