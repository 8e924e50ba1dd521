"""Row weights of the training recipe (train.weights), worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the 'train' extra")

from nadir_extproc.routing.data import Example  # noqa: E402
from nadir_extproc.routing.train import SHARES, weights  # noqa: E402


def ex(source: str) -> Example:
    return Example(source, f"{source}/x", "p", 0)


def test_each_source_gets_its_share_spread_over_its_rows():
    # The documented shares: MMLU and GSM8K half of arena-bench's, category sources as stated.
    assert SHARES == {"mmlu": 0.5, "gsm8k": 0.5, "arena_hard_v2": 1.0, "vicuna": 1.0, "humaneval": 0.3, "templates": 1.0}
    # 4 MMLU rows (share 0.5 -> 0.125 each), 1 arena row (share 2 -> 2), 2 HumanEval rows (0.3 -> 0.15 each).
    # Raw: [.125]*4 + [2] + [.15]*2, sum 2.8; scaled to average 1 over 7 rows: x 7 / 2.8 = 2.5.
    rows = [ex("mmlu")] * 4 + [ex("arena")] + [ex("humaneval")] * 2
    w = weights(rows, arena_share=2.0)
    assert w.tolist() == pytest.approx([0.3125] * 4 + [5.0] + [0.375] * 2)
    assert w.mean() == pytest.approx(1.0)
    # 14,000 MMLU rows do not outweigh 200 arena rows: each source's total is its share.
    rows = [ex("mmlu")] * 14_000 + [ex("arena")] * 200
    w = weights(rows, arena_share=1.0)
    assert w[:14_000].sum() / w[14_000:].sum() == pytest.approx(0.5)
    assert np.all(w > 0)
