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
