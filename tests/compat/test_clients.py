"""Real client libraries, none written here, against the real local stack (Envoy 1.40 + ext_proc +
emulator): text intact, usage as the emulator reported it, no exception, and the cost where the
client exposes it (``tests/compat/matrix.py`` says what each case checks).

``make test`` runs the official SDKs of each dialect (Python ``openai``, ``anthropic``,
``google-genai``; Node ``openai``, ``@anthropic-ai/sdk``, ``@google/genai``); ``make compat`` runs
every client (``NADIR_COMPAT_ALL=1``). Clients live in their own environments, built on first use
and cached under ``.cache/compat`` (``tests/compat/env.py``). A failure through the sidecar that the
same client also has straight against the emulator is reported as such (not our fault) and must be
listed in ``KNOWN_WITHOUT_SIDECAR`` and the README table.
"""

from __future__ import annotations

import os

import pytest

from nadir_extproc.stack import Stack
from tests.compat import env, matrix

ALL = os.environ.get("NADIR_COMPAT_ALL") == "1"
#: (client runtime:name, case label) -> why: failures the client also has without the sidecar.
KNOWN_WITHOUT_SIDECAR: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def stack():
    with Stack() as s:
        yield s


def _id(c: matrix.Client) -> str:
    return f"{c.runtime}:{c.name}"


@pytest.mark.parametrize("client", matrix.CLIENTS, ids=_id)
def test_client(stack, client: matrix.Client):
    if not (client.ci or ALL):
        pytest.skip("not in the CI subset: run `make compat`")
    if client.runtime == "node" and env.node_bin() is None:
        pytest.skip("node is not installed (.ci/run installs Debian's nodejs and npm)")
    results = matrix.run(client, stack.base_url)
    assert len(results) == len(matrix.cases(client))
    failed = {matrix.label(r): matrix.problems(client, r) for r in results}
    failed = {k: v for k, v in failed.items() if v}
    if not failed:
        return
    # Does the same client fail the same way without the sidecar?
    direct = {matrix.label(r): matrix.problems(client, r, via_sidecar=False) for r in matrix.run(client, stack.emulator_url, direct=True)}
    ours = {k: v for k, v in failed.items() if not direct.get(k) or (_id(client), k) not in KNOWN_WITHOUT_SIDECAR}
    assert not ours, {"through the sidecar": ours, "straight to the emulator": {k: direct.get(k) for k in ours}}
