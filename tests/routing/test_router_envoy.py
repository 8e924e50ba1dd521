"""The ONNX router through a real Envoy 1.40: the official openai SDK asks for model="auto"; what
the provider emulator received shows which model the router chose."""

from __future__ import annotations

import json

import openai
import pytest

from nadir_extproc.stack import Stack
from tests.integration.conftest import clear_upstream, upstream_requests

KEY = "sk-test-not-a-real-key"
HARD = "Implement a lock-free multi-producer multi-consumer queue in C++ with correct memory ordering, and prove it is linearizable."
EASY = "hi"
# The rule router and the ONNX router disagree here: "step by step" is a rule marker (-> strong), while
# the model (v2.5) scores this everyday question weak (0.158). Which model it reaches shows who decided.
QUIZ = "Step by step, how do I tie a tie?"


def sent_model(stack: Stack, prompt: str, headers: dict[str, str] | None = None) -> str:
    clear_upstream(stack)
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY, max_retries=0)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": prompt}], extra_headers=headers)
    rows = upstream_requests(stack)
    assert len(rows) == 1, rows
    return json.loads(rows[0]["body"])["model"]


@pytest.fixture(scope="module")
def stack():
    with Stack() as s:
        yield s


def test_hard_prompt_goes_to_the_strong_model(stack):
    assert sent_model(stack, HARD) == "gpt-4o"


def test_easy_prompt_goes_to_the_weak_model(stack):
    assert sent_model(stack, EASY) == "gpt-4o-mini"


def test_the_onnx_router_decides_not_the_rules(stack):
    from nadir_extproc.routing.onnx_router import OnnxScorer
    from nadir_extproc.routing.policy import TierPolicy

    pol = TierPolicy()
    expect = pol.pick("openai", pol.tier_for_score(OnnxScorer().score(QUIZ))).model
    assert expect != "gpt-4o"  # the rule router's answer
    assert sent_model(stack, QUIZ) == expect


def test_client_pins_a_tier_with_a_header(stack):
    assert sent_model(stack, HARD, {"x-nadir-tier": "weak"}) == "gpt-4o-mini"
    assert sent_model(stack, EASY, {"x-nadir-tier": "strong"}) == "gpt-4o"


def test_corrupt_model_file_rules_answer_and_traffic_flows(tmp_path):
    bad = tmp_path / "router.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf graph")
    with Stack(extproc_env={"NADIR_ROUTER_MODEL": str(bad)}) as s:
        assert sent_model(s, QUIZ) == "gpt-4o"  # the rule router's reasoning marker
        assert sent_model(s, EASY) == "gpt-4o-mini"
        log = s.log("extproc")
    assert log.count("first router_model_unavailable") == 1
