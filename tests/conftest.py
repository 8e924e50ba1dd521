"""Shared test fixtures: where the shared data lives (read in place, never copied into the repo)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NADIR_SHARED_DIR", REPO.parent / "shared"))
PROVIDER_RESPONSES = SHARED / "data" / "provider-responses"
CASES = SHARED / "cases"


@pytest.fixture(scope="session")
def provider_responses() -> Path:
    """Folder of recorded real provider interactions; skips the test when it is absent."""
    if not (PROVIDER_RESPONSES / "index.jsonl").is_file():
        pytest.skip(f"recorded provider responses not found at {PROVIDER_RESPONSES} (set NADIR_SHARED_DIR)")
    return PROVIDER_RESPONSES


@pytest.fixture(scope="session")
def provider_index(provider_responses: Path) -> list[dict]:
    """The rows of ``index.jsonl`` (one recorded interaction each)."""
    with open(provider_responses / "index.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """Folder of shared fault cases; skips the test when it is absent."""
    if not CASES.is_dir():
        pytest.skip(f"shared cases not found at {CASES} (set NADIR_SHARED_DIR)")
    return CASES


def load_case(cases_dir: Path, stem: str) -> dict:
    """The shared fault case ``<stem>.json`` (``stem`` with or without ``.json``): the one reader of
    case files (``tests/test_case_coverage.py`` checks that every case is loaded this way by some test)."""
    return json.loads((cases_dir / f"{stem.removesuffix('.json')}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def receiver():
    """A real OTLP gRPC receiver on a free loopback port (``tests/telemetry/otlp_receiver.py``) for
    the module's stack to export to; stopped after the module."""
    from tests.telemetry.otlp_receiver import OTLPReceiver

    with OTLPReceiver() as r:
        yield r


# ----------------------------------------------------------------------------- in-memory telemetry
@pytest.fixture
def mem():
    """A ``MemTelemetry`` with default settings, shut down after the test."""
    from tests.telemetry.memory import MemTelemetry

    t = MemTelemetry()
    yield t
    t.tel.shutdown()


@pytest.fixture
def mem_factory():
    """``make(**telemetry settings)`` -> a ``MemTelemetry``; all shut down after the test."""
    from tests.telemetry.memory import MemTelemetry

    made: list[MemTelemetry] = []

    def make(**cfg) -> MemTelemetry:
        t = MemTelemetry(**cfg)
        made.append(t)
        return t

    yield make
    for t in made:
        t.tel.shutdown()


# ----------------------------------------------------------------------------- markers
#: Fixtures that start real processes or servers: the Envoy + nadir-extproc + emulator stack,
#: PostgreSQL, redis-server, the in-process emulator on a loopback port, deploy upstreams, the OTLP receiver.
PROCESS_FIXTURES = frozenset({"stack", "redis_server", "own_redis", "upstreams", "pg_server", "pg_dsn", "emulator", "receiver"})
#: Test folders and files (under tests/) whose tests start processes or servers themselves
#: (subprocess, Envoy, ``envoy --mode validate``, kubectl, the CLI as a process, gRPC/HTTP/OTLP
#: servers on loopback ports, network namespaces).
PROCESS_PATHS = (
    "integration/", "compat/", "security/", "deploy/", "emulator/",
    "budgets/test_envoy.py", "budgets/test_redis_auth_tls.py", "budgets/test_reservations.py",
    "ledger/test_ledger_ops.py", "ledger/test_rollup.py", "ledger/test_store_report.py",
    "pricing/test_cost_cli.py", "pricing/test_provider_cases_cli.py", "pricing/test_served_tier_through_envoy.py",
    "routing/test_cli.py", "routing/test_router_envoy.py",
    "telemetry/test_export.py", "telemetry/test_through_envoy.py", "telemetry/test_trace_context.py",
    "telemetry/test_prometheus_dashboard.py", "reliability/test_secrets.py", "reliability/test_soak.py",
    "test_demo_upstream_down.py", "test_newcomer_commands.py", "test_piped_tables.py",
)
#: Parameter values that run a test against a real server (``request.getfixturevalue("pg_dsn")``
#: or ``"redis_server"`` inside a parametrized fixture, which ``fixturenames`` does not show).
PROCESS_PARAMS = frozenset({"postgres", "redis"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test ``process`` (starts real processes or servers) or ``pure`` (in memory and
    temp files only): ``make test-fast`` runs ``-m pure``; ``make test`` runs both. A test in an
    otherwise pure file that starts one says so itself with ``@pytest.mark.process``. A pure test
    that starts a process or binds a socket fails (``_refuse_processes_in_pure_tests`` below)."""
    root = Path(__file__).resolve().parent
    for item in items:
        try:
            rel = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
        except ValueError:
            rel = ""
        callspec = getattr(item, "callspec", None)
        params = {str(v) for v in callspec.params.values()} if callspec else set()
        proc = (item.get_closest_marker("process") is not None or bool(set(getattr(item, "fixturenames", ())) & PROCESS_FIXTURES)
                or rel.startswith(PROCESS_PATHS) or bool(params & PROCESS_PARAMS))
        item.add_marker(pytest.mark.process if proc else pytest.mark.pure)


#: Audit events (PEP 578) by which Python code starts a process or binds a socket (a server, or a
#: free-port probe for one). A ``pure`` test that raises one is mis-marked: it fails, naming it.
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                            "os.forkpty", "socket.bind"})
_running_pure: list[str] = []  # the node id of the pure test being set up or run (not its teardown,
#                                where the session's and module's servers are stopped)


def _refuse_processes_in_pure_tests(event: str, args: tuple) -> None:
    if _running_pure and event in PROCESS_EVENTS:
        raise RuntimeError(f"pure test {_running_pure[0]} raised {event} {str(args)[:200]}: it starts a process or a "
                           "server, so mark it process (PROCESS_FIXTURES / PROCESS_PATHS in tests/conftest.py)")


sys.addaudithook(_refuse_processes_in_pure_tests)


def _guarded(item: pytest.Item):
    if item.get_closest_marker("pure") is not None:
        _running_pure.append(item.nodeid)
    try:
        yield
    finally:
        _running_pure.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    yield from _guarded(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield from _guarded(item)
