"""A client's own ``x-nadir-provider`` header never influences routing (envoy/envoy.yaml as shipped,
through the real Envoy 1.40).

The header is the ext_proc's: it sets it, with ``clear_route_cache``, on every request whose model
it read, so that Envoy's route table picks the provider cluster; the fail-closed Lua guard reads
its presence as "the ext_proc answered". While the ext_proc was down (fail-open: nothing overwrote
it), a client copy did both jobs for the client: it picked the route (a Chat Completions call sent
to the ``anthropic`` cluster) and let ``model: auto`` past the guard to the provider. Envoy's early
header mutation now removes it before route selection and before any filter; the ext_proc's own
header still routes.

Which cluster served a request is read from Envoy's own counters
(``cluster.<name>.upstream_rq_total``); every provider cluster points at the one emulator here."""

from __future__ import annotations

import json

import pytest

from nadir_extproc.stack import Stack
from tests.integration.conftest import raw_post, upstream_requests, usage

pytestmark = pytest.mark.process

KEY = "sk-test-not-a-real-key"
CHAT_AUTO = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
CHAT_EXPLICIT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
MSG_AUTO = json.dumps({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
OAI = {"authorization": f"Bearer {KEY}"}
ANT = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
CLUSTERS = ("openai", "anthropic", "google")


@pytest.fixture(scope="module")
def stack():
    with Stack(extproc_env={"NADIR_ROUTER": "rules"}) as s:
        yield s


def served(stack: Stack) -> dict[str, int]:
    """Requests each provider cluster has sent upstream so far (Envoy's counters)."""
    st = stack.envoy_stats("upstream_rq_total")
    return {c: st.get(f"cluster.{c}.upstream_rq_total", 0) for c in CLUSTERS}


def post(stack: Stack, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, dict[str, int]]:
    """POST through Envoy; (status, headers, body, which clusters served it: the counter deltas)."""
    before = served(stack)
    status, h, b = raw_post(f"{stack.base_url}{path}", body, headers)
    after = served(stack)
    return status, h, b, {c: after[c] - before[c] for c in CLUSTERS if after[c] != before[c]}


def test_with_the_extproc_up_a_client_header_does_not_pick_the_route(stack):
    # An explicit Chat Completions call that says it is for Anthropic: the path's route (openai)
    # serves it, and the ext_proc prices it as OpenAI's: gpt-4o-mini $0.15 in / $0.60 out per 1M
    # tokens, 1000 in + 100 out = 0.00015 + 0.00006.
    status, h, _, used = post(stack, "/v1/chat/completions", CHAT_EXPLICIT,
                              {**OAI, **usage(input=1000, output=100), "x-nadir-provider": "anthropic"})
    assert status == 200 and used == {"openai": 1}
    assert h["x-nadir-cost-usd"] == "0.00021"
    # ... and a Messages call that says "google" goes to Anthropic.
    status, h, _, used = post(stack, "/v1/messages", MSG_AUTO, {**ANT, "x-nadir-provider": "google"})
    assert status == 200 and used == {"anthropic": 1} and h["x-nadir-routed-to"].startswith("claude-haiku-4-5")
    # The header never reaches a provider, whoever set it.
    assert all("x-nadir-provider" not in r["hdrs"] for r in upstream_requests(stack)[-2:])


def test_the_extprocs_own_header_still_routes_and_satisfies_the_guard(stack):
    # model "auto" passes the fail-closed guard only because the ext_proc's x-nadir-provider is
    # there (the client's was removed before the ext_proc ran): routed, rewritten, priced.
    for extra in ({}, {"x-nadir-provider": "anthropic"}):
        status, h, _, used = post(stack, "/v1/chat/completions", CHAT_AUTO, {**OAI, "x-nadir-tier": "weak", **extra})
        assert status == 200 and used == {"openai": 1}, extra
        assert h["x-nadir-routed-to"] == "gpt-4o-mini-2024-07-18" and "x-nadir-error" not in h
        assert json.loads(upstream_requests(stack)[-1]["body"])["model"] == "gpt-4o-mini"
    status, h, _, used = post(stack, "/v1/messages", MSG_AUTO, {**ANT, "x-nadir-tier": "strong"})
    assert status == 200 and used == {"anthropic": 1} and h["x-nadir-routed-to"].startswith("claude-sonnet-4-5")


@pytest.fixture
def extproc_down(stack):
    """The stack with its ext_proc stopped (Envoy fails open past it), restarted afterwards."""
    stack.stop_process("extproc")
    try:
        yield stack
    finally:
        stack.start_extproc_process()


def test_with_the_extproc_down_a_client_header_does_not_bypass_the_guard(extproc_down):
    stack = extproc_down
    before = len(upstream_requests(stack))
    # model "auto" with the header the guard trusts: still the 503, nothing reaches a provider.
    for path, body, hdrs, provider in (("/v1/chat/completions", CHAT_AUTO, OAI, "openai"),
                                       ("/v1/messages", MSG_AUTO, ANT, "anthropic"),
                                       ("/v1beta/models/auto:generateContent", b'{"contents":[{"parts":[{"text":"hi"}]}]}', {}, "google")):
        status, h, b, used = post(stack, path, body, {**hdrs, "x-nadir-provider": provider})
        assert status == 503 and h["x-nadir-error"] == "extproc_unavailable" and used == {}, path
    assert len(upstream_requests(stack)) == before


def test_with_the_extproc_down_a_client_header_does_not_pick_the_route(extproc_down):
    stack = extproc_down
    # An explicit model passes unprocessed (fail-open), on its path's route, not the header's.
    status, h, _, used = post(stack, "/v1/chat/completions", CHAT_EXPLICIT, {**OAI, "x-nadir-provider": "anthropic"})
    assert status == 200 and used == {"openai": 1} and "x-nadir-cost-usd" not in h
    status, h, _, used = post(stack, "/v1/messages", json.dumps({"model": "claude-haiku-4-5", "max_tokens": 5,
                              "messages": [{"role": "user", "content": "hi"}]}).encode(), {**ANT, "x-nadir-provider": "openai"})
    assert status == 200 and used == {"anthropic": 1}
    assert all("x-nadir-provider" not in r["hdrs"] for r in upstream_requests(stack)[-2:])
