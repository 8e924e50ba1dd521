"""The soak's short mode (tests/reliability/soak.py; ``make soak`` runs the 10-minute mode)."""

from __future__ import annotations

import json

from tests.reliability.soak import soak


def test_short_soak_with_a_kill_9_mid_run(tmp_path):
    r = soak(300, 200, tmp_path)
    print("[soak short]", json.dumps(r))
    a, b = r["a"], r["b"]
    assert a["failed_by_us"] == 0, a["failures"]
    assert a["ledger_rows"] == a["sent"] == 300
    assert a["fds_end"] <= a["fds_after_warmup"] + 4  # flat: no descriptor per request kept
    assert a["rss_change_pct"] <= 10
    assert b["failed_by_us"] == 0, b["failures"]
    assert b["in_kill_window"] >= 1
    assert b["ledger_lost"] <= b["loss_bound"]
    assert b["ledger_rows"] >= b["sent"] - b["loss_bound"] > 0
