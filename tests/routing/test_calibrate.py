"""Threshold calibration on sets small enough to work out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nadir_extproc.routing.calibrate import calibrate, pgr_target_from_quality, threshold_for

# Four prompts, scores 0.9 0.7 0.5 0.1; gains (strong - weak) 1, 0, 1, 0; total gap 2.
S = np.array([0.9, 0.7, 0.5, 0.1])
SO = np.array([1.0, 1.0, 1.0, 1.0])
WO = np.array([0.0, 1.0, 0.0, 1.0])


def test_threshold_reaches_the_target_with_the_fewest_strong_calls():
    # Sending only 0.9 strong recovers 1 of 2 = PGR 0.5; the threshold sits between 0.9 and 0.7.
    r = threshold_for(S, SO, WO, 0.5)
    assert r["threshold"] == pytest.approx(0.8)
    assert (r["strong_share"], r["pgr"]) == (0.25, 0.5)
    # PGR 0.8 needs 0.9 and 0.5 strong, so 0.7 comes along: 3 of 4 calls; threshold between 0.5 and 0.1.
    r = threshold_for(S, SO, WO, 0.8)
    assert r["threshold"] == pytest.approx(0.3) and r["strong_share"] == 0.75 and r["pgr"] == 1.0
    # Quality: weak-only 0.5, strong-only 1.0; at PGR 1 the routed quality is 1.0 = 100 % of strong.
    assert r["quality_share"] == pytest.approx(1.0)


def test_scores_on_the_threshold_go_strong():
    r = threshold_for(S, SO, WO, 0.5)
    assert (S >= r["threshold"]).sum() == 1


def test_quality_share_target():
    # Keep 75 % of strong's quality: 0.75 * 1.0 = 0.75 -> PGR (0.75 - 0.5) / (1.0 - 0.5) = 0.5.
    assert pgr_target_from_quality(0.75, SO, WO) == pytest.approx(0.5)


def test_judge_scores_and_tiers():
    # Judge scores: strong 9, 9, 8; weak 3, 9, 8 -> gains 6, 0, 0. Top score holds all the gain.
    s, so, wo = np.array([0.2, 0.6, 0.4]), np.array([9.0, 9.0, 8.0]), np.array([3.0, 9.0, 8.0])
    out = calibrate(s, so, wo, {"mid": 0.8, "strong": 0.5})
    # Only the 0.2 prompt carries gain, so both targets need every prompt strong: threshold 0.2.
    assert out["thresholds"] == {"weak": 0.0, "mid": 0.2, "strong": 0.2}
    assert out["achieved"]["strong"]["strong_share"] == 1.0


def test_mid_target_must_be_the_higher_one():
    with pytest.raises(ValueError, match="mid"):
        calibrate(S, SO, WO, {"mid": 0.5, "strong": 0.8})


def test_no_gap_is_an_error():
    with pytest.raises(ValueError):
        threshold_for(S, SO, SO, 0.5)


def test_cli_calibrate_by_hand(tmp_path):
    # Through the CLI with the shipped model: a set where only one prompt has a gain. PGR 0.5 then
    # needs exactly that prompt strong -> the strong threshold lies at or below its score and above
    # every other prompt's score.
    from typer.testing import CliRunner

    from nadir_extproc.cli import app
    from nadir_extproc.routing.onnx_router import OnnxScorer

    prompts = ["hi", "What's the capital of France?", "Prove that the square root of 2 is irrational.", "Say hello in Japanese."]
    rows = [{"prompt": p, "strong": 1, "weak": 1} for p in prompts]
    rows[2]["weak"] = 0
    f = tmp_path / "cal.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    r = CliRunner().invoke(app, ["router", "calibrate", "--data", str(f)], env={"NADIR_CONFIG": ""})
    assert r.exit_code == 0, r.output
    import yaml

    th = yaml.safe_load(r.stdout)["thresholds"]
    scores = OnnxScorer().score_many(prompts)
    assert set(th) == {"weak", "mid", "strong"}
    assert th["strong"] <= scores[2] + 1e-6
    assert all(scores[i] < th["strong"] for i in (0, 1, 3) if scores[i] < scores[2])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "strong": "good"}\n', encoding="utf-8")
    r = CliRunner().invoke(app, ["router", "calibrate", "--data", str(bad)], env={"NADIR_CONFIG": ""})
    assert r.exit_code == 2 and "bad.jsonl:1" in r.output


def test_cli_calibrate_warns_when_a_target_is_out_of_reach(tmp_path):
    # One prompt of four carries the whole gap: the best PGR any threshold reaches is 1.0, so a mid
    # target of 1.5 cannot be met; the answer is the best threshold, with a warning that says so.
    from typer.testing import CliRunner

    from nadir_extproc.cli import app

    rows = [{"prompt": p, "strong": 1, "weak": 1} for p in ("hi", "Name a colour.", "Prove Fermat's little theorem.", "Say hello.")]
    rows[2]["weak"] = 0
    f = tmp_path / "cal.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    r = CliRunner().invoke(app, ["router", "calibrate", "--data", str(f), "--target-mid", "1.5"], env={"NADIR_CONFIG": ""})
    assert r.exit_code == 0, r.output
    assert "warning: mid: no threshold reaches target PGR 1.500 on this data" in r.stderr
    assert "(1.000)" in r.stderr and "warning: strong" not in r.stderr
