"""Routing metrics on inputs small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nadir_extproc.routing.evaluate import auc, routing_curve, summarise


def test_auc_classic_example():
    # Positives 0.35, 0.8; negatives 0.1, 0.4. Pairs won: 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_auc_ties_count_half():
    # One positive 0.5 vs negatives 0.5 (tie, 1/2) and 0.2 (won): 1.5 / 2.
    assert auc(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.2])) == 0.75
    assert math.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_routing_curve_by_hand():
    # gain = strong_ok - weak_ok = [1, 0, 1, 0], total 2. Order by score: 0.9 (1), 0.8 (0), 0.5 (0), 0.1 (1).
    # PGR after 0..4 strong calls: 0, .5, .5, .5, 1.
    c = routing_curve(np.array([0.9, 0.8, 0.1, 0.5]), np.array([1, 1, 1, 0]), np.array([0, 1, 0, 0]))
    assert c.x.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert c.pgr.tolist() == [0, 0.5, 0.5, 0.5, 1]
    # Area: .25*(0+.5)/2 + .25*.5 + .25*.5 + .25*(.5+1)/2 = .0625 + .125 + .125 + .1875 = 0.5
    assert c.apgr() == pytest.approx(0.5, abs=1e-12)
    assert c.cpt(0.5) == 0.25
    # 80 %: between (0.75, 0.5) and (1, 1): 0.75 + 0.3 * 0.25 / 0.5 = 0.9
    assert c.cpt(0.8) == pytest.approx(0.9, abs=1e-12)


def test_equal_scores_are_the_random_router():
    c = routing_curve(np.zeros(5), np.array([1, 1, 0, 1, 1]), np.array([0, 1, 0, 0, 1]))
    assert c.x.tolist() == [0, 1] and c.pgr.tolist() == [0, 1]
    assert c.apgr() == 0.5 and c.cpt(0.5) == 0.5 and c.cpt(0.8) == pytest.approx(0.8)


def test_tie_block_is_linear():
    # Scores 1, 1, 0: the first two form a block with gain 1 + 0; then gain 1. Total 2.
    c = routing_curve(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 1]), np.array([0, 0, 0]))
    assert c.x.tolist() == pytest.approx([0, 2 / 3, 1])
    assert c.pgr.tolist() == [0, 0.5, 1]


def test_summarise_at_threshold():
    # Threshold 0.6 sends 0.9 and 0.8 to strong: quality = (1 + 1 + 0 + 0) / 4 = .5; weak-only .25,
    # strong-only .75 -> PGR (.5 - .25) / (.75 - .25) = .5; strong share 2/4.
    m = summarise(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.1, 0.5]), np.array([1, 1, 1, 0]), np.array([0, 1, 0, 0]), 0.6)
    assert m["strong_share_at_threshold"] == 0.5 and m["pgr_at_threshold"] == pytest.approx(0.5)


def test_undefined_gap_raises():
    with pytest.raises(ValueError):
        routing_curve(np.array([0.1, 0.2]), np.array([1, 0]), np.array([1, 0]))


def _external_rows():
    # strong 9, 8, 10, 6; weak 7, 8, 6, 6 -> gains 2, 0, 4, 0 (total 6); two categories of two prompts.
    return [{"prompt": "a", "strong": 9, "weak": 7, "category": "math"},
            {"prompt": "b", "strong": 8, "weak": 8, "category": "math"},
            {"prompt": "c", "strong": 10, "weak": 6, "category": "writing"},
            {"prompt": "d", "strong": 6, "weak": 6, "category": "writing"}]


def test_external_summary_by_hand():
    from nadir_extproc.routing.evaluate import external_summary

    rows = _external_rows()
    scores = {"m": np.array([0.9, 0.2, 0.5, 0.1]), "random": np.zeros(4)}
    out = external_summary(rows, scores, n_boot=20, seed=1, thresholds={"weak": 0.0, "mid": 0.3, "strong": 0.6})
    assert out["rows"] == 4 and out["quality_strong"] == 8.25 and out["quality_weak"] == 6.75
    m = out["scorers"]["m"]
    # Order 0.9 (gain 2), 0.5 (4), 0.2 (0), 0.1 (0): PGR 0, 1/3, 1, 1, 1 at x = 0, .25, .5, .75, 1.
    # APGR = .25*(1/3)/2 + .25*(1/3 + 1)/2 + .25 + .25 = 1/24 + 1/6 + 1/2 = 17/24.
    assert m["apgr"] == pytest.approx(17 / 24)
    # CPT(50 %): .25 + (.5 - 1/3) * .25 / (2/3) = .3125; CPT(80 %): .25 + (.8 - 1/3) * .375 = .425.
    assert m["cpt50"] == pytest.approx(0.3125) and m["cpt80"] == pytest.approx(0.425)
    assert m["ci95"] is not None and out["scorers"]["random"] == {"apgr": 0.5, "cpt50": 0.5, "cpt80": pytest.approx(0.8), "ci95": None}
    math_, writing = out["categories"]["math"], out["categories"]["writing"]
    # math: scores .9 (gain 2), .2 (0) -> PGR 0, 1, 1 at x 0, .5, 1 -> APGR .75, CPT(50 %) .25; gap 8.5 - 7.5.
    assert math_["rows"] == 2 and math_["gap"] == 1.0
    assert math_["m"]["apgr"] == 0.75 and math_["m"]["cpt50"] == 0.25
    assert math_["m"]["share_ge_mid"] == 0.5 and math_["m"]["share_ge_strong"] == 0.5
    # writing: .5 (gain 4), .1 (0); gap 8 - 6; .5 reaches mid (.3) not strong (.6).
    assert writing["gap"] == 2.0 and writing["m"]["apgr"] == 0.75
    assert writing["m"]["share_ge_mid"] == 0.5 and writing["m"]["share_ge_strong"] == 0.0


def test_external_category_without_a_gap_has_no_routing_figures():
    from nadir_extproc.routing.evaluate import external_summary

    rows = _external_rows()
    rows[2]["category"] = "other"  # writing is now only prompt d: strong 6, weak 6
    out = external_summary(rows, {"m": np.array([0.9, 0.2, 0.5, 0.1])}, n_boot=5, seed=1)
    assert out["categories"]["writing"]["m"] is None and out["categories"]["writing"]["gap"] == 0.0
    assert "share_ge_mid" not in out["categories"]["math"]["m"]


def test_read_external_validates_and_names_the_line(tmp_path):
    from nadir_extproc.routing.evaluate import read_external

    p = tmp_path / "x.jsonl"
    p.write_text('{"prompt": "a", "strong": 9, "weak": 7, "question_id": 81}\n\n{"prompt": "b", "strong": 8, "weak": 8.5}\n')
    rows = read_external(p)
    assert [r["prompt"] for r in rows] == ["a", "b"] and rows[0]["question_id"] == 81
    for bad, line in (('{"prompt": "a", "strong": 9}\n', 1), ('{"prompt": "a", "strong": 9, "weak": 7}\n{"prompt": "b", "strong": true, "weak": 1}\n', 2),
                      ('{"prompt": "a", "strong": 9, "weak": 7, "category": 3}\n', 1), ("[1]\n", 1), ("{nope\n", 1)):
        p.write_text(bad)
        with pytest.raises(ValueError, match=f"x.jsonl:{line}:"):
            read_external(p)
    p.write_text('{"prompt": "a", "strong": 9, "weak": 7}\n{"prompt": "b", "strong": 7, "weak": 9}\n')
    with pytest.raises(ValueError, match="PGR is undefined"):
        read_external(p)
    p.write_text("\n")
    with pytest.raises(ValueError, match="no rows"):
        read_external(p)


def test_report_made_by_line_is_the_command_that_was_run() -> None:
    """The report's "Made by" line reproduces the run: a report written with ``--out /tmp/x
    --bootstrap 50`` used to claim ``--out docs/router-eval`` and hide the 50 resamples."""
    from pathlib import Path

    from nadir_extproc.routing.evaluate import _report, eval_command

    cmd = eval_command(Path("/tmp/fresh/eval"), ("shipped", "rules"), 50, (Path("mt.jsonl"),), 7)
    assert cmd == (".venv/bin/nadir-extproc router eval --out /tmp/fresh/eval -s shipped -s rules "
                   "--seed 7 --bootstrap 50 -x mt.jsonl")
    # the defaults give the committed report's command unchanged
    assert eval_command(Path("docs/router-eval"), ("cv", "shipped")) == \
        ".venv/bin/nadir-extproc router eval --out docs/router-eval -s cv -s shipped"
    m = {"seed": 7, "k": 5, "bootstrap": 50, "scorers": {"shipped": {"help": "h"}, "rules": {"help": "h"}},
         "sets": {}, "categories": {}, "command": cmd}
    assert f"Made by `{cmd}` (repo root" in _report(m)


def test_chat_sets_each_reported_with_per_kind_counts(tmp_path):
    # Two hand-labelled sets, scored by a fixed scorer (the length of the prompt / 100), under the
    # thresholds mid 0.15, strong 0.6: by hand, "hi" 0.02 weak, "what is 2+2" 0.11 weak, "x" * 20
    # 0.20 mid, "y" * 70 0.70 strong, "z" * 40 0.40 mid.
    import json as _json

    import numpy as _np

    from nadir_extproc.routing.evaluate import dev_checks
    from nadir_extproc.routing.policy import TierPolicy

    a = tmp_path / "a.jsonl"
    a.write_text("\n".join(_json.dumps(r) for r in [
        {"prompt": "hi", "label": 0, "kind": "greeting"},
        {"prompt": "what is 2+2", "label": 0, "kind": "arithmetic"},
        {"prompt": "x" * 20, "label": 0, "kind": "arithmetic"},
        {"prompt": "y" * 70, "label": 1, "kind": "proof"},
        {"prompt": "z" * 40, "label": 1, "kind": "proof"},
    ]) + "\n")
    b = tmp_path / "b.jsonl"
    b.write_text(_json.dumps({"prompt": "hi", "label": 0, "kind": "greeting"}) + "\n"
                 + _json.dumps({"prompt": "y" * 70, "label": 1, "kind": "proof"}) + "\n")
    policy = TierPolicy(thresholds={"weak": 0.0, "mid": 0.15, "strong": 0.6})
    out = dev_checks(lambda texts: _np.array([len(t) / 100 for t in texts]), policy, tmp_path,
                     (a, tmp_path / "absent.jsonl", b))
    sets = out["chat_sets"]
    assert [c["file"] for c in sets] == ["a.jsonl", "b.jsonl"] and out["chat"] is sets[0]
    assert sets[0]["by_kind"] == {"greeting": [1, 1], "arithmetic": [1, 2], "proof": [1, 2]}
    assert sets[0]["by_provider"]["openai"] == {"easy": {"weak": 2, "mid": 1}, "hard": {"strong": 1, "mid": 1}}
    assert sets[0]["auc"] == 1.0  # both hard prompts score above all three easy ones
    assert sets[1]["by_kind"] == {"greeting": [1, 1], "proof": [1, 1]}
