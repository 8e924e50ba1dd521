"""The ONNX router's decisions and its fall-back to the rule router (missing/corrupt model,
inference error) — traffic never stops."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from nadir_extproc.routing.base import RouteRequest
from nadir_extproc.routing.features import DEFAULT_TOKENIZER_PATH, load_tokenizer
from nadir_extproc.routing.onnx_router import ModelError, OnnxRouter, OnnxScorer, load_router
from nadir_extproc.routing.policy import ModelCaps, TierPolicy
from nadir_extproc.routing.rules import RuleRouter
from nadir_extproc.stats import COUNTS

POLICY = TierPolicy()


@pytest.fixture(scope="module")
def router() -> OnnxRouter:
    r = load_router(POLICY)
    assert isinstance(r, OnnxRouter)
    return r


def req(prompt: str, provider: str = "openai", **kw) -> RouteRequest:
    return RouteRequest(provider=provider, dialect="openai_chat", prompt=prompt, **kw)


def test_decision_follows_the_score_bands(router):
    # Whatever the score, the tier is the policy's band for it and the model that tier's model.
    for prompt in ("What's the capital of France?", "Why does this fail?\n```python\nprint(1/0)\n```",
                   "Prove that the square root of 2 is irrational."):
        d = router.route(req(prompt))
        assert d.router == "onnx" and d.reason == "score"
        assert d.score == router.scorer.score(prompt)
        assert d.tier == POLICY.tier_for_score(d.score)
        assert d.model == POLICY.tiers["openai"][d.tier]


# Issue 15's demo targets (nadir_extproc/demo.py): chit-chat weak; proofs, debugging and
# algorithm prompts strong. The shipped model (router v2.5: a hidden layer of 32 ReLU units on the
# wordllama features; hand-written templates incl. short unit conversions, nadir_extproc/routing/
# train.py, templates.py) sends all 14 chit-chat prompts weak on every provider, and 6 of the 7 hard
# ones strong with the OpenAI trio (docs/router-eval/report.md, "demo prompt" table). The miss: the
# SQL join "Why is this slow?" scores 0.481, in the mid band (mid 0.211378, strong 0.583837); on a
# two-tier provider the mid band goes to the strong model, so there all seven go strong. The
# hard-prompt target on that stricter reading (every hard prompt on the OpenAI trio) stays a strict
# xfail, so it fails loudly the day a model meets it; as the demo sends them (the SQL prompt to
# Anthropic), all seven reach the strong model: tests/routing/test_demo_routing_envoy.py.
CHIT_CHAT = ("Hi! What's the capital of France?", "Translate 'good morning' into Spanish.",
             "Give me three synonyms for 'happy'.", "Write a haiku about autumn leaves.", "What is 17 + 25?",
             "Name a fruit that is yellow.", "Say hello in Japanese.", "What's a good name for a golden retriever?",
             "Is a tomato a fruit or a vegetable? One sentence.", "Convert 5 miles to kilometres.",
             "List the planets of the solar system.", "Tell me a one-line joke about accountants.",
             "What colour is the sky on Mars?", "Write a limerick about cloud bills.")
HARD = ("Prove that the square root of 2 is irrational.",
        "Debug this:\n```python\ndef avg(xs): return sum(xs)/len(xs)\nprint(avg([]))\n```",
        "Analyze the time complexity of quicksort in the worst case and explain why.",
        "Derive the closed form of the sum 1 + 2 + ... + n.",
        "Design an algorithm to detect cycles in a directed graph and prove it correct.",
        "```sql\nSELECT * FROM orders o JOIN users u ON o.uid = u.id;\n```\nWhy is this slow?",
        "Optimize this bash loop: for f in $(ls); do cat $f | grep x; done")


def test_demo_prompts_are_the_demo_s():
    from nadir_extproc.demo import PROMPTS

    assert set(CHIT_CHAT) | set(HARD) <= {p for _, p in PROMPTS}


def test_demo_chit_chat_routes_weak_on_every_provider(router):
    bad = [(p, round(router.scorer.score(p), 3)) for p in CHIT_CHAT
           if any(router.route(req(p, prov)).tier != "weak" for prov in ("openai", "anthropic", "google"))]
    assert not bad


@pytest.mark.xfail(strict=True, reason="issue 15's demo target on its stricter reading (every hard prompt on the OpenAI trio): 1 of 7 (the SQL join, 'why is this slow?', which the demo sends to Anthropic) scores in the mid band (docs/router-eval/report.md)")
def test_demo_proofs_debugging_algorithms_route_strong(router):
    bad = [(p[:30], round(router.scorer.score(p), 3)) for p in HARD if router.route(req(p)).tier != "strong"]
    assert not bad


def test_demo_hard_target_partly_met_by_the_shipped_model(router):
    # Measured facts of router v2.5 (docs/router-eval/report.md), a floor against regressions: 6 of
    # the 7 hard prompts go strong with a mid tier (v2.4: 6, v2.3: 4, v2.2: 6, v2.1: 4, v2: 3) and
    # all 7 on a two-tier provider. The miss is the one named above the xfail.
    strong = [p for p in HARD if router.route(req(p)).tier == "strong"]
    assert len(strong) >= 6
    assert set(HARD) - set(strong) <= {"```sql\nSELECT * FROM orders o JOIN users u ON o.uid = u.id;\n```\nWhy is this slow?"}
    assert all(router.route(req(p, prov)).tier == "strong" for p in HARD for prov in ("anthropic", "google"))


def _kinds(name: str) -> list[dict]:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "router-eval" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name, auc_floor, easy_weak, hard_strong", [
    # Measured with the shipped model (docs/router-eval/report.md, "Prompts outside the data"): three
    # sets written by hand apart from the templates (docs/router-eval/README.md): kinds_val 100
    # prompts (60 easy / 40 hard), kinds_test 85 (50 / 35), kinds_final 98 (58 / 40). v2.5 measured:
    # kinds_val AUC 0.9988, 54 of 60 easy weak, 38 of 40 hard strong; kinds_test 0.9989, 48/50, 32/35
    # (v2.4: 0.9994, 47/50, 34/35; v2.2: 0.934, 32/50, 31/35); kinds_final 0.9922, 51/58, 35/40
    # (v2.4: 0.9892, 48/58, 35/40).
    ("kinds_val.jsonl", 0.995, 54, 38),
    ("kinds_test.jsonl", 0.995, 48, 32),
    ("kinds_final.jsonl", 0.99, 51, 35),
])
def test_kinds_sets_are_ranked_as_measured(router, name, auc_floor, easy_weak, hard_strong):
    rows = _kinds(name)
    scores = np.array([router.scorer.score(r["prompt"]) for r in rows])
    y = np.array([r["label"] for r in rows])
    # AUC by hand: the share of (hard, easy) pairs the score orders correctly, ties half.
    pos, neg = scores[y == 1], scores[y == 0]
    auc = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (pos.size * neg.size)
    tiers = [router.route(req(r["prompt"])).tier for r in rows]
    assert auc >= auc_floor
    assert sum(t == "weak" for t, lab in zip(tiers, y) if lab == 0) >= easy_weak
    assert sum(t == "strong" for t, lab in zip(tiers, y) if lab == 1) >= hard_strong


def test_what_the_shipped_model_does_route_weak_and_strong(router):
    # Measured facts of the shipped model under the calibrated thresholds (reference_scores.json):
    # a greeting goes weak everywhere, a hard systems-and-proof prompt goes strong.
    for provider in ("openai", "anthropic", "google"):
        assert router.route(req("hi", provider)).tier == "weak"
    hard = "Implement a lock-free multi-producer multi-consumer queue in C++ with correct memory ordering, and prove it is linearizable."
    assert router.route(req(hard)).tier == "strong"


def test_pinned_tier_wins_over_the_score(router):
    hard = "Implement a lock-free multi-producer multi-consumer queue in C++ with correct memory ordering, and prove it is linearizable."
    d = router.route(req(hard, pinned_tier="weak"))
    assert (d.model, d.tier, d.reason) == ("gpt-4o-mini", "weak", "pinned")
    assert d.score == router.scorer.score(hard)  # the score is still reported
    d = router.route(req("hi", pinned_tier="STRONG"))
    assert (d.model, d.tier, d.reason) == ("gpt-4o", "strong", "pinned")
    # A tier the provider does not have is ignored.
    assert router.route(req("What's the capital of France?", pinned_tier="ultra")).reason == "score+pin_ignored"


def test_constraint_overrides_the_score():
    # A weak model without vision: the image moves the request to the strong model.
    pol = TierPolicy(tiers={"openai": {"weak": "gpt-4o-mini", "strong": "gpt-4o"}},
                     capabilities={"gpt-4o-mini": ModelCaps(128_000, vision=False)})
    r = load_router(pol)
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                      {"type": "image_url", "image_url": {"url": "data:"}}]}]}
    assert r.route(req("hi")).model == "gpt-4o-mini"  # "hi" scores weak
    d = r.route(req("hi", body=body))
    assert (d.model, d.tier, d.reason) == ("gpt-4o", "strong", "score+vision")


def test_missing_model_falls_back_to_rules(tmp_path, caplog):
    before = COUNTS["router_model_unavailable"]
    with caplog.at_level(logging.WARNING, logger="nadir_extproc"):
        r = load_router(POLICY, tmp_path / "nope.onnx")
    assert isinstance(r, RuleRouter)
    assert COUNTS["router_model_unavailable"] == before + 1
    d = r.route(req("What's the capital of France?"))
    assert (d.model, d.router) == ("gpt-4o-mini", "rules")


@pytest.mark.parametrize("content", [b"", b"not an onnx graph at all", bytes(range(256)) * 40])
def test_corrupt_model_falls_back_to_rules(tmp_path, content):
    bad = tmp_path / "router.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelError):
        OnnxScorer(bad)
    before = COUNTS["router_model_unavailable"]
    r = load_router(POLICY, bad)
    assert isinstance(r, RuleRouter) and COUNTS["router_model_unavailable"] == before + 1
    assert r.route(req("fix:\n```js\nx()\n```")).reason == "code_fence"


def test_wrong_graph_is_rejected(tmp_path):
    onnx = pytest.importorskip("onnx", reason="the 'train' extra builds a foreign graph")
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    with pytest.raises(ModelError, match="inputs"):
        OnnxScorer(p)
    assert isinstance(load_router(POLICY, p), RuleRouter)


def test_inference_error_is_answered_by_the_rules(tmp_path):
    # A real graph whose table row for the token "▁zq" is NaN: a prompt with that token scores NaN
    # (an inference error), while the load-time trial run ("warm-up" has no such token) passes.
    pytest.importorskip("sklearn", reason="the 'train' extra")
    from nadir_extproc.routing.train import Fitted, export_onnx

    tok = load_tokenizer()
    bad_id = tok.encode("zq", add_special_tokens=False).ids[0]
    table = np.zeros((32000, 256), dtype=np.float16)
    table[:, 0] = 1.0
    table[bad_id, :] = np.nan
    m = Fitted(np.zeros(262), np.ones(262), np.zeros(262), 0.0, 1.0, 1.0)
    m.coef[0] = 1.0
    path = tmp_path / "nan.onnx"
    export_onnx(path, table, m, {"version": "router-v2-test"})
    r = OnnxRouter(POLICY, OnnxScorer(path, DEFAULT_TOKENIZER_PATH))
    assert r.route(req("hello")).score == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-6)  # v = (1, 0, ...): sigmoid(1)
    before = COUNTS["router_inference_error"]
    d = r.route(req("zq"))
    assert (d.router, d.reason, d.model) == ("rules", "short_simple", "gpt-4o-mini")
    assert COUNTS["router_inference_error"] == before + 1


def test_rules_kind_skips_the_model():
    assert isinstance(load_router(POLICY, kind="rules"), RuleRouter)
