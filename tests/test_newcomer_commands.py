"""Commands as a newcomer types them (issue 19): obvious inputs, one-line errors naming the fix,
exit status a script can test, nothing left behind on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RESP = ('{"id":"x","object":"chat.completion","model":"qwen3:0.6b","choices":[{"index":0,"message":'
        '{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
        '"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120}}')


def _cli(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NADIR_")}
    env.update(NADIR_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "nadir_extproc.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, input=stdin if stdin is not None else "", cwd=tmp_path)


def test_self_hosted_model_priced_from_the_price_file_alone(tmp_path):
    (tmp_path / "resp.json").write_text(RESP, encoding="utf-8")
    (tmp_path / "prices.yaml").write_text(
        'models:\n  - {provider: ollama, model: "qwen3:0.6b", input_mtok: "0.02", output_mtok: "0.08"}\n', encoding="utf-8")
    url = "http://localhost:11434/v1/chat/completions"
    r = _cli(tmp_path, "cost", "--url", url, "--response", "resp.json")
    assert r.returncode == 3 and "--price-file" in r.stdout  # unpriced, and says how to price it
    r = _cli(tmp_path, "cost", "--url", url, "--response", "resp.json", "--price-file", "prices.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    # 100 x 0.02 / 1e6 + 20 x 0.08 / 1e6 = 0.000002 + 0.0000016
    assert "0.0000036" in r.stdout and "ollama" in r.stdout
    assert "unpriced" not in r.stdout  # a priced table says nothing about being unpriced


def test_cost_with_a_misspelt_baseline_in_the_settings_fails_naming_it(tmp_path):
    (tmp_path / "resp.json").write_text(RESP.replace("qwen3:0.6b", "gpt-4o-mini"), encoding="utf-8")
    (tmp_path / "s.yaml").write_text("baseline_models: {openai: gpt-4oo}\n", encoding="utf-8")
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", "resp.json",
             "--config", "s.yaml")
    assert r.returncode == 2 and "baseline_models.openai" in r.stderr and "gpt-4o" in r.stderr
    assert "Traceback" not in r.stderr


def test_router_score_takes_every_readme_name_of_a_provider(tmp_path):
    (tmp_path / "rules.yaml").write_text("router: rules\n", encoding="utf-8")  # a short prompt -> weak, whatever the model
    for name, model in (("gemini", "gemini-2.5-flash"), ("google", "gemini-2.5-flash"), ("vertex", "gemini-2.5-flash"),
                        ("azure", "gpt-4o-mini"), ("OpenAI", "gpt-4o-mini")):
        r = _cli(tmp_path, "router", "score", "--config", "rules.yaml", "--provider", name, "hi")
        assert r.returncode == 0, (name, r.stderr)
        assert f'"model": "{model}"' in r.stdout, (name, r.stdout)
    r = _cli(tmp_path, "router", "score", "--provider", "groq", "hi")
    assert r.returncode == 2 and "tiers:" in r.stderr and r.stderr.count("\n") == 1


def test_report_on_a_fresh_machine_leaves_nothing_behind(tmp_path):
    r = _cli(tmp_path, "report")
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "state").exists()


def test_serve_with_a_missing_settings_file_says_where_to_start(tmp_path):
    r = _cli(tmp_path, "serve", "--config", "settings.yaml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "settings.example.yaml" in r.stderr, r.stderr
