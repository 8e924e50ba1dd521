"""nadir_extproc.reload without a server: the router policy file is watched too, and an invalid
policy is rejected with the old one kept (the Envoy-level test is tests/integration/test_hot_reload.py)."""

from __future__ import annotations

import os

from nadir_extproc import stats
from nadir_extproc.config import load_settings
from nadir_extproc.reload import Reloader
from nadir_extproc.server import Context, build_context

POLICY = "thresholds: {{weak: 0.0, strong: {strong}}}\norder: [weak, strong]\ntiers:\n  openai: {{weak: gpt-4o-mini, strong: gpt-4o}}\n"


def test_policy_file_change_swaps_the_policy_and_a_bad_one_is_rejected(tmp_path):
    pol = tmp_path / "policy.yaml"
    pol.write_text(POLICY.format(strong=0.5), encoding="utf-8")
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(f"router: rules\nrouter_policy: {pol}\n", encoding="utf-8")
    env_before = dict(os.environ)
    settings = load_settings(cfg, env={"NADIR_STATE_DIR": str(tmp_path)})
    ctx: Context = build_context(settings)
    os.environ["NADIR_STATE_DIR"] = str(tmp_path)
    try:
        r = Reloader(ctx, str(cfg))
        assert not r.changed()
        assert ctx.policy.thresholds["strong"] == 0.5
        # an edit written as a new file renamed over the old one (what editors and kubelets do)
        new = tmp_path / "policy.new"
        new.write_text(POLICY.format(strong=0.25), encoding="utf-8")
        os.replace(new, pol)
        assert r.changed()
        before = stats.COUNTS["config_reload"]
        assert r.reload("test") is True
        assert ctx.policy.thresholds["strong"] == 0.25 and stats.COUNTS["config_reload"] == before + 1
        assert not r.changed()
        # a policy naming a tier without a threshold order it knows: rejected, 0.25 stays
        bad = tmp_path / "policy.bad"
        bad.write_text("tiers:\n  openai: {strong: gpt-4o}\n", encoding="utf-8")
        os.replace(bad, pol)
        assert r.changed()
        rejected = stats.COUNTS["config_reload_rejected"]
        assert r.reload("test") is False
        assert ctx.policy.thresholds["strong"] == 0.25 and stats.COUNTS["config_reload_rejected"] == rejected + 1
        assert not r.changed()  # a rejected version is not retried until it changes again
    finally:
        os.environ.clear()
        os.environ.update(env_before)
