"""The ONNX router's decisions and its fall-back to the rule router (missing/corrupt model,
inference error) — traffic never stops."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from nadir_extproc.routing.base import RouteRequest
from nadir_extproc.routing.features import buckets
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


def test_easy_and_hard_prompts(router):
    # Scores are those in model/reference_scores.json; default bands: < 0.35 weak, < 0.4 mid, else strong.
    easy = router.route(req("What's the capital of France?"))
    assert (easy.model, easy.tier, easy.reason, easy.router) == ("gpt-4o-mini", "weak", "score", "onnx")
    assert easy.score < 0.3
    hard = router.route(req("Why does this fail?\n```python\nprint(1/0)\n```"))
    assert (hard.model, hard.tier, hard.reason) == ("gpt-4o", "strong", "score")
    assert hard.score >= 0.4


def test_pinned_tier_wins_over_the_score(router):
    d = router.route(req("Why does this fail?\n```python\nprint(1/0)\n```", pinned_tier="weak"))
    assert (d.model, d.tier, d.reason) == ("gpt-4o-mini", "weak", "pinned")
    assert d.score >= 0.4  # the score is still reported
    # A tier the provider does not have is ignored.
    assert router.route(req("What's the capital of France?", pinned_tier="ultra")).reason == "score+pin_ignored"


def test_constraint_overrides_the_score():
    # A weak model without vision: the image moves the request to the strong model.
    pol = TierPolicy(tiers={"openai": {"weak": "gpt-4o-mini", "strong": "gpt-4o"}},
                     capabilities={"gpt-4o-mini": ModelCaps(128_000, vision=False)})
    r = load_router(pol)
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What's the capital of France?"},
                                                      {"type": "image_url", "image_url": {"url": "data:"}}]}]}
    d = r.route(req("What's the capital of France?", body=body))
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
    # A real graph whose weight for the n-gram "zq" is NaN: "zq" scores NaN (an inference error),
    # while the load-time trial run ("warm-up" has no "zq") passes.
    pytest.importorskip("sklearn", reason="the 'train' extra")
    from nadir_extproc.routing.features import DIM
    from nadir_extproc.routing.train import Transform, export_onnx

    coef = np.zeros(DIM + 6)
    coef[int(buckets(b"zq")[0])] = np.nan
    t = Transform(np.ones(DIM), np.zeros(6), np.ones(6))
    path = tmp_path / "nan.onnx"
    export_onnx(path, t, coef, 0.0, {"version": "router-test"})
    r = OnnxRouter(POLICY, OnnxScorer(path))
    assert r.route(req("hello")).score == 0.5  # sigmoid(0)
    before = COUNTS["router_inference_error"]
    d = r.route(req("zq"))
    assert (d.router, d.reason, d.model) == ("rules", "short_simple", "gpt-4o-mini")
    assert COUNTS["router_inference_error"] == before + 1


def test_rules_kind_skips_the_model():
    assert isinstance(load_router(POLICY, kind="rules"), RuleRouter)
