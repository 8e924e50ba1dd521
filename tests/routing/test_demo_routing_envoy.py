"""Issue 15's demo target through a real Envoy 1.40, as the demo sends its prompts: each prompt of
``nadir_extproc.demo.PROMPTS`` that ``test_router`` names chit-chat or hard goes through the API the
demo uses for it (OpenAI Chat or Responses with the official ``openai`` SDK, Anthropic Messages
with the official ``anthropic`` SDK; streamed ones unstreamed, as the stream flag does not enter
routing) with ``model="auto"``, and the model the provider emulator received is that provider's
weak model (chit-chat) or strong model (proofs, debugging, algorithms) in the default tier map.

A stricter reading, each hard prompt on a provider with a mid tier (the OpenAI trio), is
``test_router.test_demo_proofs_debugging_algorithms_route_strong`` (a strict xfail: 6 of 7)."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from nadir_extproc.demo import PROMPTS
from nadir_extproc.stack import Stack
from tests.integration.conftest import clear_upstream, upstream_requests
from tests.routing.test_router import CHIT_CHAT, HARD

KEY = "sk-test-not-a-real-key"
# The default tier map (README, policy.DEFAULT_TIERS): OpenAI weak gpt-4o-mini / strong gpt-4o;
# Anthropic weak claude-haiku-4-5 / strong claude-sonnet-4-5.
WEAK = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
STRONG = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5"}


@pytest.fixture(scope="module")
def stack():
    with Stack() as s:
        yield s


def sent_model(stack: Stack, dialect: str, prompt: str) -> str:
    clear_upstream(stack)
    if dialect == "anthropic_messages":
        anthropic.Anthropic(base_url=stack.base_url, api_key=KEY, max_retries=0).messages.create(
            model="auto", max_tokens=64, messages=[{"role": "user", "content": prompt}])
    elif dialect == "openai_responses":
        openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0).responses.create(model="auto", input=prompt)
    else:
        openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model="auto", messages=[{"role": "user", "content": prompt}])
    rows = upstream_requests(stack)
    assert len(rows) == 1, rows
    return json.loads(rows[0]["body"])["model"]


def test_demo_prompts_reach_the_weak_and_strong_models_as_the_demo_sends_them(stack):
    seen, wrong = set(), []
    for dialect, prompt in PROMPTS:
        if prompt not in CHIT_CHAT and prompt not in HARD:
            continue
        d = dialect.removesuffix("+stream")
        provider = "anthropic" if d == "anthropic_messages" else "openai"
        want = (WEAK if prompt in CHIT_CHAT else STRONG)[provider]
        got = sent_model(stack, d, prompt)
        seen.add(prompt)
        if got != want:
            wrong.append((prompt[:40], d, got, want))
    assert seen == set(CHIT_CHAT) | set(HARD)  # all 14 chit-chat and 7 hard prompts were sent
    assert not wrong, wrong
