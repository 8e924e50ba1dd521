"""Default score thresholds and everyday chat prompts.

The benchmark labels (MMLU/GSM8K) barely cover chat-style prompts, which the model scores higher than
multiple-choice ones. ``docs/router-eval/chat_prompts.jsonl`` holds 20 easy and 20 hard chat prompts
labelled by hand (rule in ``docs/router-eval/README.md``); the default mid threshold (0.35) is the
highest 0.05 step that sends none of the hard ones to the weak tier.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nadir_extproc.routing.evaluate import MID_SWEEP, chat_summary, read_chat_set
from nadir_extproc.routing.onnx_router import OnnxScorer
from nadir_extproc.routing.policy import DEFAULT_THRESHOLDS, TierPolicy, load_policy

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "docs" / "router-eval" / "chat_prompts.jsonl"


def test_default_bands():
    assert DEFAULT_THRESHOLDS == {"weak": 0.0, "mid": 0.35, "strong": 0.4}
    p = TierPolicy()
    assert [p.tier_for_score(x) for x in (0.0, 0.3, 0.349, 0.35, 0.399, 0.4, 1.0)] == [
        "weak", "weak", "weak", "mid", "mid", "strong", "strong"]
    # No mid model for anthropic: the mid band goes to its strong model.
    assert p.pick("anthropic", p.tier_for_score(0.35)).model == "claude-sonnet-4-5"
    assert p.pick("anthropic", p.tier_for_score(0.34)).model == "claude-haiku-4-5"


def test_shipped_example_policy_uses_the_default_thresholds():
    pol = load_policy(REPO / "nadir_extproc" / "routing" / "policies" / "current-trio.yaml")
    assert pol.thresholds == DEFAULT_THRESHOLDS


def test_chat_set_is_balanced_and_labelled():
    rows = read_chat_set(CHAT)
    assert len(rows) == 40 and sum(r["label"] for r in rows) == 20
    assert len({r["prompt"] for r in rows}) == 40
    assert all(r.get("kind") for r in rows)


def test_read_chat_set_names_a_bad_line(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"prompt": "hi", "label": 0}) + "\n" + json.dumps({"prompt": "x", "label": "hard"}) + "\n")
    with pytest.raises(ValueError, match=r"c.jsonl:2"):
        read_chat_set(f)


def test_chat_summary_by_hand():
    rows = [{"prompt": "a", "label": 0}, {"prompt": "b", "label": 0}, {"prompt": "c", "label": 1}]
    scores = np.array([0.1, 0.36, 0.5])
    out = chat_summary(rows, scores, TierPolicy(), {"set": np.array([0.2, 0.3, 0.36, 0.45])})
    # 0.1 weak; 0.36 mid (openai's gpt-4.1-mini) / strong (anthropic has no mid); 0.5 strong.
    assert out["by_provider"]["openai"] == {"easy": {"weak": 1, "mid": 1}, "hard": {"strong": 1}}
    assert out["by_provider"]["anthropic"] == {"easy": {"weak": 1, "strong": 1}, "hard": {"strong": 1}}
    assert out["auc"] == 1.0  # the hard prompt outscores both easy ones
    sweep = {r["mid"]: r for r in out["mid_sweep"]}
    assert tuple(sweep) == MID_SWEEP
    assert (sweep[0.35]["easy_weak"], sweep[0.35]["hard_weak"], sweep[0.35]["set"]) == (1, 0, 0.5)  # 0.36, 0.45 of 4
    assert (sweep[0.4]["easy_weak"], sweep[0.4]["hard_weak"], sweep[0.4]["set"]) == (2, 0, 0.25)


def test_shipped_model_and_defaults_route_chat_prompts():
    # Quality floor for the shipped model + default policy on the hand-labelled chat set: no hard
    # prompt reaches the weak tier of any provider, and most easy ones do (14 of 20 when measured).
    rows = read_chat_set(CHAT)
    scores = OnnxScorer().score_many([r["prompt"] for r in rows])
    out = chat_summary(rows, scores, TierPolicy())
    for prov in ("openai", "anthropic"):
        assert out["by_provider"][prov]["hard"].get("weak", 0) == 0, prov
        assert out["by_provider"][prov]["easy"].get("weak", 0) >= 14, prov
    assert out["auc"] > 0.85
