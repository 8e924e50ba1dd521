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
        # a tier typo names the unknown key and the closest tier name, not only the missing tier
        ("tiers: {openai: {strongest: gpt-4o, weak: gpt-4o-mini}}\n",
         "tiers.openai: missing model for tier 'strong'; unknown tier 'strongest' (did you mean strong?)"),
        ("budgets:\n  - {name: a, scope: team, window: 1h, limit_usd: 1}\n"
         "  - {name: a, scope: key_id, window: 1d, limit_usd: 2}\n", "budgets: two rules are named 'a'"),
        # PyYAML alone keeps the last of a repeated key, silently
        ("listen: 127.0.0.1:1\nlog_level: INFO\nlisten: 127.0.0.1:2\n",
         "line 3, column 1: duplicate key 'listen' (first at line 1)"),
        ("telemetry:\n  enabled: true\n  enabled: false\n", "line 3, column 3: duplicate key 'enabled' (first at line 2)"),
    ],
)
def test_bad_entries_are_named(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(f, env={})
    assert needle in str(e.value)


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    f = tmp_path / "merge.yaml"
    f.write_text("x-base: &b {strong: gpt-4o, weak: gpt-4o-mini}\n"
                 "tiers:\n  openai: {<<: *b, weak: gpt-4.1-nano}\n".replace("x-base: &b", "tiers_base: &b"))
    with pytest.raises(ConfigError) as e:  # tiers_base is an unknown key, not a duplicate
        load_settings(f, env={})
    assert "duplicate" not in str(e.value)


def test_a_folder_is_not_a_settings_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, env={})
    assert str(e.value).startswith(f"config file {tmp_path}: is a folder, not a file")
