"""Default score thresholds (calibrated, model/calibration.json) and the hand-labelled chat set.

``docs/router-eval/chat_prompts.jsonl`` holds 20 easy and 20 hard chat prompts labelled by hand
(rule in ``docs/router-eval/README.md``); ``router eval`` reports how the shipped model routes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nadir_extproc.routing.evaluate import MID_SWEEP, chat_summary, read_chat_set
from nadir_extproc.routing.policy import DEFAULT_THRESHOLDS, TierPolicy, load_policy

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "docs" / "router-eval" / "chat_prompts.jsonl"


def test_default_thresholds_are_the_calibrated_ones():
    # policy.DEFAULT_THRESHOLDS carries model/calibration.json (written by `router train` from the
    # cross-validated arena-bench scores at the stated PGR targets).
    cal = json.loads((REPO / "nadir_extproc" / "routing" / "model" / "calibration.json").read_text(encoding="utf-8"))
    assert DEFAULT_THRESHOLDS == cal["thresholds"]
    assert cal["targets"] == {"mid": 0.8, "strong": 0.5}
    assert cal["achieved"]["mid"]["pgr"] >= 0.8 and cal["achieved"]["strong"]["pgr"] >= 0.5
    assert 0.0 == DEFAULT_THRESHOLDS["weak"] < DEFAULT_THRESHOLDS["mid"] <= DEFAULT_THRESHOLDS["strong"] < 1.0
    p = TierPolicy()
    mid, strong = DEFAULT_THRESHOLDS["mid"], DEFAULT_THRESHOLDS["strong"]
    assert [p.tier_for_score(x) for x in (0.0, mid - 1e-6, mid, strong - 1e-6, strong, 1.0)] == [
        "weak", "weak", "mid", "mid" if strong > mid else "strong", "strong", "strong"]
    # No mid model for anthropic: the mid band goes to its strong model.
    assert p.pick("anthropic", p.tier_for_score(mid)).model == "claude-sonnet-4-5"
    assert p.pick("anthropic", p.tier_for_score(mid - 1e-6)).model == "claude-haiku-4-5"


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
    pol = TierPolicy(thresholds={"weak": 0.0, "mid": 0.35, "strong": 0.4})
    out = chat_summary(rows, scores, pol, {"set": np.array([0.2, 0.3, 0.36, 0.45])})
    # 0.1 weak; 0.36 mid (openai's gpt-4.1-mini) / strong (anthropic has no mid); 0.5 strong.
    assert out["by_provider"]["openai"] == {"easy": {"weak": 1, "mid": 1}, "hard": {"strong": 1}}
    assert out["by_provider"]["anthropic"] == {"easy": {"weak": 1, "strong": 1}, "hard": {"strong": 1}}
    assert out["auc"] == 1.0  # the hard prompt outscores both easy ones
    sweep = {r["mid"]: r for r in out["mid_sweep"]}
    assert tuple(sweep) == MID_SWEEP
    assert (sweep[0.35]["easy_weak"], sweep[0.35]["hard_weak"], sweep[0.35]["set"]) == (1, 0, 0.5)  # 0.36, 0.45 of 4
    assert (sweep[0.4]["easy_weak"], sweep[0.4]["hard_weak"], sweep[0.4]["set"]) == (2, 0, 0.25)
