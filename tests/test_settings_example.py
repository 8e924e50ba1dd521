"""settings.example.yaml (top level) lists every settings key with its true default, and
`nadir-extproc check` validates a settings file: every model it names must exist (issue 19)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from nadir_extproc.config import ConfigError, Settings, check_models, load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "settings.example.yaml"


def _models_of(annotation) -> list[type[BaseModel]]:
    args = getattr(annotation, "__args__", ()) + (annotation,)
    return [t for t in args if isinstance(t, type) and issubclass(t, BaseModel)]


def _missing(model: type[BaseModel], data: dict, text: str, where: str) -> list[str]:
    """Keys of ``model`` that are neither set in ``data`` nor shown as a commented ``# key:`` line."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{where}{name}"
        sub = _models_of(field.annotation)
        if name in data:
            if sub and isinstance(data[name], dict):
                out += _missing(sub[0], data[name], text, key + ".")
            elif sub:  # null or [] with a commented example: every key of it is shown
                out += [f"{key}.{n}" for n in sub[0].model_fields if not re.search(rf"^\s*#.*\b{n}:", text, re.M)]
            continue
        if not re.search(rf"^\s*#\s*-?\s*{name}:", text, re.M):
            out.append(key)
    return out


def test_example_lists_every_key():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert _missing(Settings, yaml.safe_load(text), text, "") == []


def test_example_values_are_the_defaults(tmp_path):
    env = {"NADIR_STATE_DIR": str(tmp_path)}
    assert load_settings(EXAMPLE, env=env).model_dump() == load_settings(None, env=env).model_dump()
    check_models(load_settings(EXAMPLE, env=env))  # its models exist


def test_misspelt_models_are_named_with_the_closest_names(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(
        "tiers:\n  openai: {weak: gpt-4o-mni, strong: gpt-4o}\nbaseline_models: {openai: gpt-4oo}\n"
        "default_models: {anthropic: claude-sonet-4-5}\n", encoding="utf-8")
    try:
        check_models(load_settings(f, env={}))
    except ConfigError as e:
        msg = str(e)
    else:
        raise AssertionError("a misspelt model was accepted")
    assert "tiers.openai.weak: no model 'gpt-4o-mni'" in msg and "closest: gpt-4o-mini" in msg
    assert "baseline_models.openai: no model 'gpt-4oo'" in msg and "gpt-4o" in msg
    assert "default_models.anthropic: no model 'claude-sonet-4-5'" in msg and "claude-sonnet-4-5" in msg


def test_price_file_models_count(tmp_path):
    pf = tmp_path / "prices.yaml"
    pf.write_text('models:\n  - {provider: ollama, model: "qwen3:0.6b", input_mtok: "0.02", output_mtok: "0.08"}\n', encoding="utf-8")
    f = tmp_path / "s.yaml"
    tiers = "tiers:\n  ollama: {weak: 'qwen3:0.6b', strong: 'qwen3:0.6b'}\n"
    f.write_text(f"price_file: {pf}\n{tiers}", encoding="utf-8")
    assert check_models(load_settings(f, env={})) is None  # qwen3:0.6b is in the price file: accepted
    f.write_text(tiers, encoding="utf-8")  # the same tiers without the price file: not in the catalogue
    with pytest.raises(ConfigError, match=r"tiers\.ollama\.weak: no model 'qwen3:0\.6b'"):
        check_models(load_settings(f, env={}))


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NADIR_")}
    env.update(NADIR_STATE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "nadir_extproc.cli", *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.process  # runs the stack / the CLI as a process
def test_check_command_exit_codes(tmp_path):
    ok = _cli("check", "--config", str(EXAMPLE), tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers:\n  openai: {weak: gpt-4o-mni, strong: gpt-4o}\n", encoding="utf-8")
    r = _cli("check", "--config", str(bad), tmp_path=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "tiers.openai.weak" in r.stderr and "gpt-4o-mini" in r.stderr
    r = _cli("check", "--config", str(tmp_path / "nope.yaml"), tmp_path=tmp_path)
    assert r.returncode == 2 and "settings.example.yaml" in r.stderr and "Traceback" not in r.stderr
    # serve refuses the same file before it listens
    r = _cli("serve", "--config", str(bad), tmp_path=tmp_path)
    assert r.returncode == 2 and "tiers.openai.weak" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.process  # runs the stack / the CLI as a process
def test_a_yaml_syntax_error_is_one_line_with_its_position(tmp_path):
    bad = tmp_path / "broken.yaml"
    # line 2 opens a flow sequence that never closes: PyYAML reports the problem at the end of
    # the document, line 3 column 1 (1-based)
    bad.write_text("tiers:\n  openai: [gpt-4o-mini, gpt-4o\n", encoding="utf-8")
    r = _cli("check", "--config", str(bad), tmp_path=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert f"config file {bad}: line 3, column 1: expected ',' or ']'" in r.stderr


def test_shipped_settings_files_pass_the_model_check(tmp_path):
    files = sorted(ROOT.glob("k8s/**/settings*.yaml"))
    assert files
    for f in files:
        check_models(load_settings(f, env={"NADIR_STATE_DIR": str(tmp_path)}))
