"""Settings: defaults, YAML file, environment, and errors that name the bad entry."""

from __future__ import annotations

import pytest

from nadir_extproc.config import ConfigError, load_settings


def test_defaults_file_then_env(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("listen: 0.0.0.0:6000\nauto_model: router\ntiers:\n  openai: {strong: gpt-4.1, weak: gpt-4.1-nano}\n")
    s = load_settings(f, env={"NADIR_LISTEN": "127.0.0.1:7000"})
    assert s.listen == "127.0.0.1:7000"  # env beats file
    assert s.auto_model == "router"
    assert s.policy().model("openai", "weak") == "gpt-4.1-nano"
    assert s.policy().default_model("openai") == "gpt-4.1"  # strong tier is the default baseline
    assert load_settings(env={}).listen == "127.0.0.1:50051"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("tiers:\n  openai: {strong: gpt-4o}\n", "tiers.openai: missing model for tier 'weak'"),
        ("paths: {/x: nope}\n", "unknown dialect 'nope'"),
        ("listn: 1\n", "listn: unknown key (did you mean listen?); every key is listed in settings.example.yaml"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("max_message_bytes: 10\n", "max_message_bytes"),
    ],
)
def test_bad_entries_are_named(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(f, env={})
    assert needle in str(e.value)
