"""Commands as a newcomer types them (issue 19): obvious inputs, one-line errors naming the fix,
exit status a script can test, nothing left behind on failure."""

from __future__ import annotations

import json
import os
import re
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


def test_cost_with_an_unknown_provider_names_it_and_lists_the_known_ones(tmp_path):
    (tmp_path / "resp.json").write_text(RESP.replace("qwen3:0.6b", "gpt-4o-mini"), encoding="utf-8")
    url = "https://api.openai.com/v1/chat/completions"
    r = _cli(tmp_path, "cost", "--url", url, "--response", "resp.json", "--provider", "nosuch")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, (r.stdout, r.stderr)
    assert "'nosuch' is not a known provider" in r.stderr and "openai, anthropic, google" in r.stderr
    assert "api.openai.com" not in r.stderr  # the URL is not blamed
    r = _cli(tmp_path, "cost", "--url", url, "--response", "resp.json", "--provider", "opnai")
    assert r.returncode == 2 and "did you mean openai" in r.stderr
    # every name the README uses for a provider is one: 100 x 0.15 / 1e6 + 20 x 0.60 / 1e6 (gpt-4o-mini)
    for name in ("openai", "OpenAI", "Azure OpenAI"):
        r = _cli(tmp_path, "cost", "--url", url, "--response", "resp.json", "--provider", name, "--brief")
        assert r.returncode == 0 and "0.000027" in r.stdout, (name, r.stdout, r.stderr)
    gem = ('{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP"}],'
           '"usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":100,"totalTokenCount":1100},'
           '"modelVersion":"gemini-2.5-flash"}')
    (tmp_path / "gem.json").write_text(gem, encoding="utf-8")
    gurl = "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
    for name in ("gemini", "Gemini", "google", "vertex", "Vertex AI", "vertex_ai"):
        r = _cli(tmp_path, "cost", "--url", gurl, "--response", "gem.json", "--provider", name, "--brief")
        # gemini-2.5-flash: 0.30 input / 2.50 output USD per MTok -> 0.0003 + 0.00025
        assert r.returncode == 0 and "0.00055" in r.stdout, (name, r.stdout, r.stderr)


def test_cost_shows_no_cache_write_rows_for_providers_that_do_not_bill_them(tmp_path):
    (tmp_path / "resp.json").write_text(RESP.replace("qwen3:0.6b", "gpt-4o-mini"), encoding="utf-8")
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", "resp.json", "--brief")
    assert r.returncode == 0 and "cache read" in r.stdout and "cache write" not in r.stdout, r.stdout
    ant = ('{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text",'
           '"text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":100,"cache_creation_input_tokens":0,'
           '"cache_read_input_tokens":0,"output_tokens":20}}')
    (tmp_path / "ant.json").write_text(ant, encoding="utf-8")
    r = _cli(tmp_path, "cost", "--url", "https://api.anthropic.com/v1/messages", "--response", "ant.json", "--brief")
    # Anthropic bills cache writes (5 m at 1.25 x input, 1 h at 2 x): the rows stay, at 3.75 / 6 USD per MTok
    assert r.returncode == 0 and "cache write 5m" in r.stdout and "cache write 1h" in r.stdout, r.stdout
    assert "3.75" in r.stdout and " 6 " in r.stdout.split("cache write 1h", 1)[1].splitlines()[0] + " "


def test_router_score_reads_plain_text_lines_and_refuses_a_file_name_as_a_prompt(tmp_path):
    (tmp_path / "rules.yaml").write_text("router: rules\n", encoding="utf-8")
    # plain text on stdin, one prompt per line (the rule router: a code fence -> strong, else weak)
    r = _cli(tmp_path, "router", "score", "--config", "rules.yaml", stdin="What is the capital of France?\nfix ```x = 1/0```\n")
    assert r.returncode == 0, r.stderr
    assert [x.split('"tier": "')[1].split('"')[0] for x in r.stdout.splitlines()] == ["weak", "strong"]
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n', encoding="utf-8")
    for name in ("prompts.jsonl", "missing.jsonl"):
        r = _cli(tmp_path, "router", "score", name)
        assert r.returncode == 2 and r.stdout == "" and f"--file {name}" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = _cli(tmp_path, "router", "score", "--config", "rules.yaml", "--provider", "Vertex AI", "hi")
    assert r.returncode == 0 and '"model": "gemini-2.5-flash"' in r.stdout, r.stdout + r.stderr


def test_settings_errors_name_the_fix(tmp_path):
    (tmp_path / "s.yaml").write_text("baseline_model: {openai: gpt-4o}\ntelemetry: {prometheus_prot: 9464}\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "s.yaml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "baseline_model: unknown key (did you mean baseline_models?)" in r.stderr
    assert "telemetry.prometheus_prot: unknown key (did you mean prometheus_port" in r.stderr
    assert "settings.example.yaml" in r.stderr and "Extra inputs" not in r.stderr
    (tmp_path / "p.yaml").write_text("price_file: prices.yaml\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "p.yaml")
    assert r.returncode == 2 and f"no such file prices.yaml (a relative path is read from the current directory: {tmp_path / 'prices.yaml'})" in r.stderr
    assert "Errno" not in r.stderr
    (tmp_path / "r.yaml").write_text("router_policy: policy.yaml\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "r.yaml")
    assert r.returncode == 2 and "router_policy: no such file policy.yaml" in r.stderr and "Value error" not in r.stderr


def test_cost_input_errors_name_the_option(tmp_path):
    (tmp_path / "resp.json").write_text(RESP.replace("qwen3:0.6b", "gpt-4o-mini"), encoding="utf-8")
    url = "https://api.openai.com/v1/chat/completions"
    for args, want in ((("--response", "missing.json"), f"--response missing.json: no such file (looked in {tmp_path})"),
                       (("--response", str(tmp_path)), "is a folder, not a file"),
                       (("--response", "resp.json", "--request", "req.json"), "--request req.json: no such file"),
                       (("--response", "resp.json", "--price-file", "prices.yaml"), "--price-file prices.yaml: no such file"),
                       (("--response", "resp.json", "--when", "tomorrow"), "--when 'tomorrow': use a date")):
        r = _cli(tmp_path, "cost", "--url", url, *args)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and want in r.stderr, (args, r.stderr)
        assert "Errno" not in r.stderr
    # --when takes what report --since takes (a date: midnight UTC)
    r = _cli(tmp_path, "cost", "--url", url, "--response", "resp.json", "--when", "2026-01-31", "--json")
    assert r.returncode == 0 and '"when": "2026-01-31T00:00:00+00:00"' in r.stdout and '"cost_usd": "0.000027"' in r.stdout


def test_usage_errors_are_one_line_with_the_commands_help(tmp_path):
    for args, want in ((("report", "--by", "nosuch"), "unknown group 'nosuch'; use one of day"),
                       (("report", "--since", "7x"), "--since '7x': use a date"),
                       (("report", "--top", "-1"), "'--top'"),
                       (("cost",), "Missing option '--url'"),
                       (("cost", "--url", "x", "--respons", "r.json"), "No such option: --respons"),
                       (("nosuchcmd",), "No such command 'nosuchcmd'"),
                       (("router", "scor"), "No such command 'scor'"),
                       (("ledger", "rebuild-rollups", "--since", "soon"), "--since 'soon'")):
        r = _cli(tmp_path, *args)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, (args, r.stderr)
        assert r.stderr.startswith("error: ") and want in r.stderr and "--help`)" in r.stderr and "╭" not in r.stderr, r.stderr
    # a near miss names the group; a plain word that is no group may be a tag of the caller's own
    for by, hint in (("teams", "or tag:<name> (did you mean team?)"), ("Model", "(did you mean model?)"),
                     ("project", "or tag:<name> (a tag? --by tag:project)"), ("tag:", "or tag:<name> (see")):
        r = _cli(tmp_path, "report", "--by", by)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and hint in r.stderr, (by, r.stderr)
    for args in ((), ("router",), ("ledger",)):  # no command: the help, exit 2
        r = _cli(tmp_path, *args)
        assert r.returncode == 2 and "Usage: " in r.stdout and "COMMAND" in r.stdout, (args, r.stdout, r.stderr)


def test_report_on_an_unreachable_postgres_says_where_and_why_without_the_password(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _cli(tmp_path, "report", "--dsn", f"postgresql://nadir:s3cret@127.0.0.1:{port}/ledger")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"postgresql://nadir:***@127.0.0.1:{port}/ledger" in r.stderr and "s3cret" not in r.stderr
    assert "Connection refused" in r.stderr and "--dsn" in r.stderr


def test_serve_that_cannot_bind_exits_at_once_and_leaves_nothing(tmp_path):
    # With telemetry on (a README user has no collector) a busy port used to leave the process
    # waiting on its exporters for ever after the error line, and the ledger and key secret behind.
    import socket

    with socket.socket() as closed:  # the OTLP endpoint: a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        otlp = closed.getsockname()[1]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NADIR_", "OTEL_"))}
        env.update(NADIR_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(ROOT), OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp}")
        for args, want in ((("--listen", f"127.0.0.1:{port}"), f"error: listen: cannot listen on 127.0.0.1:{port}: the port is in use"),
                           (("--uds", str(tmp_path / "no" / "sock")), f"error: uds: cannot listen on unix:{tmp_path / 'no' / 'sock'}: "
                                                                     f"the folder {tmp_path / 'no'} does not exist")):
            r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve", *args], capture_output=True, text=True,
                               timeout=120, env=env, cwd=tmp_path)
            assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith(want), r.stderr[-2000:]
            assert not (tmp_path / "state").exists()


def test_emulator_on_a_busy_port_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        r = subprocess.run([sys.executable, "-m", "nadir_extproc.emulator", "--port", str(port)], capture_output=True,
                           text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == f"error: cannot listen on 127.0.0.1:{port}: the port is in use (pick another --port, or 0 for any free one)\n", r.stderr


def test_cost_reads_the_response_from_standard_input(tmp_path):
    # `curl … | nadir-extproc cost --url … --response -`: 100 x 0.15 / 1e6 + 20 x 0.60 / 1e6 (gpt-4o-mini)
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", "-", "--brief",
             stdin=RESP.replace("qwen3:0.6b", "gpt-4o-mini"))
    assert r.returncode == 0 and re.search(r"^total\s+0\.000027$", r.stdout, re.M), r.stdout + r.stderr


def test_report_sqlite_dir_takes_the_file_or_the_state_folder(tmp_path):
    from datetime import datetime, timezone
    from decimal import Decimal

    from nadir_extproc.ledger.schema import LedgerRow
    from nadir_extproc.ledger.store import open_store

    store = open_store(sqlite_dir=tmp_path / "state" / "ledger")
    store.insert([LedgerRow(ts=datetime(2026, 3, 2, 10, i, tzinfo=timezone.utc), request_id=f"r{i}", served_model="gpt-4o-mini",
                            cost_usd=Decimal("0.00025")) for i in range(3)])
    store.close()
    for where in ("state", "state/ledger", "state/ledger/ledger.sqlite3"):
        r = _cli(tmp_path, "report", "--sqlite-dir", where, "--top", "0", "--format", "csv")
        assert r.returncode == 0 and r.stdout.splitlines()[1] == "3,0.00075,0,0,0,0", (where, r.stdout, r.stderr)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "ledger.sqlite3").write_text("junk", encoding="utf-8")
    r = _cli(tmp_path, "report", "--sqlite-dir", "corrupt")
    assert r.returncode == 1 and r.stderr == "error: cannot open the ledger at corrupt: DatabaseError: file is not a database\n"


def test_demo_and_serve_with_a_file_where_a_folder_goes_say_so(tmp_path):
    (tmp_path / "afile").write_text("", encoding="utf-8")
    for args, want in ((("demo", "--keep-logs", "afile"), "error: --keep-logs afile: is a file, not a folder"),
                       (("demo", "--state-dir", "afile"), "error: --state-dir / $NADIR_STATE_DIR afile: is a file, not a folder")):
        r = _cli(tmp_path, *args)
        assert r.returncode == 2 and r.stderr == want + "\n", (args, r.stderr[-2000:])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NADIR_")}
    env.update(PYTHONPATH=str(ROOT), OTEL_SDK_DISABLED="true")
    for state, want in (("afile", "error: state_dir (or $NADIR_STATE_DIR) afile: is a file, not a folder"),
                        ("afile/x", "error: state_dir (or $NADIR_STATE_DIR) afile/x: cannot be created: afile is a file")):
        r = subprocess.run([sys.executable, "-m", "nadir_extproc.cli", "serve", "--listen", "127.0.0.1:0"], capture_output=True,
                           text=True, timeout=120, env={**env, "NADIR_STATE_DIR": state}, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr == want + "\n", r.stderr[-2000:]


def test_a_log_level_python_does_not_know_is_a_settings_error(tmp_path):
    # `check` said ok and `serve` died in logging.basicConfig with a boxed traceback
    (tmp_path / "s.yaml").write_text("log_level: LOUD\n", encoding="utf-8")
    for cmd in ("check", "serve"):
        r = _cli(tmp_path, cmd, "--config", "s.yaml")
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr[-2000:]
        assert "log_level 'LOUD' is not a log level" in r.stderr and "WARNING" in r.stderr
    from nadir_extproc.config import load_settings

    (tmp_path / "ok.yaml").write_text("log_level: debug\n", encoding="utf-8")
    assert load_settings(tmp_path / "ok.yaml", env={}).log_level == "DEBUG"


def test_tls_files_that_cannot_be_read_are_refused_before_start_up(tmp_path):
    # `check` said ok; `serve` opened the ledger, printed a boxed ListenerError traceback and then
    # waited ~18 s on its OTLP exporters before exiting
    (tmp_path / "s.yaml").write_text(
        "tls: {cert_file: nope.pem, key_file: nope.key, client_ca_file: nope.ca}\n", encoding="utf-8")
    for cmd in ("check", "serve"):
        r = _cli(tmp_path, cmd, "--config", "s.yaml")
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr[-2000:]
        assert r.stderr.startswith("error: config file s.yaml: tls.cert_file: cannot read nope.pem: No such file"), r.stderr
        assert not (tmp_path / "state").exists()
    for name in ("nope.pem", "nope.key", "nope.ca"):
        (tmp_path / name).write_text("not a certificate\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "s.yaml")
    assert r.returncode == 2 and "tls.cert_file: no PEM data in nope.pem" in r.stderr, r.stderr


def test_settings_keys_take_every_readme_name_of_a_provider(tmp_path):
    """baseline_models keyed `gemini` (the README's name) applies to a Gemini API URL, whose
    registry id is `google`: keys are read through the provider registry."""
    resp = ('{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP"}],'
            '"usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":100,"totalTokenCount":1100},'
            '"modelVersion":"gemini-2.5-flash"}')
    (tmp_path / "resp.json").write_text(resp, encoding="utf-8")
    # not the default baseline (the dearest tier model, gemini-2.5-pro): a key the code missed would show
    (tmp_path / "s.yaml").write_text("baseline_models: {gemini: gemini-2.5-flash-lite}\n", encoding="utf-8")
    r = _cli(tmp_path, "cost", "--url",
             "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
             "--response", "resp.json", "--config", "s.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    # gemini-2.5-flash: 1000 x $0.30/M + 100 x $2.50/M = 0.0003 + 0.00025 = 0.00055
    # baseline gemini-2.5-flash-lite: 1000 x $0.10/M + 100 x $0.40/M = 0.0001 + 0.00004 = 0.00014;
    # saved 0.00014 - 0.00055 = -0.00041
    assert "0.00055" in r.stdout and "gemini-2.5-flash-lite" in r.stdout, r.stdout
    assert "0.00014" in r.stdout and "-0.00041" in r.stdout, r.stdout


def test_cost_on_a_stream_cut_before_its_terminal_event_is_not_priced_as_complete(tmp_path):
    """An Anthropic stream that stops after message_start (no message_stop) was priced at its
    placeholder output count and exit 0; it is cut: unpriced (exit 3), tokens known so far shown."""
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
             "model": "claude-haiku-4-5", "content": [], "stop_reason": None,
             "usage": {"input_tokens": 25, "output_tokens": 1}}}
    cut = f"event: message_start\ndata: {json.dumps(start)}\n\n".encode()
    (tmp_path / "cut.sse").write_bytes(cut)
    url = "https://api.anthropic.com/v1/messages"
    r = _cli(tmp_path, "cost", "--url", url, "--response", "cut.sse", "--json")
    assert r.returncode == 3, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["unpriced_reason"] == "cut_stream" and "message_stop" in out["explanation"]
    assert out["usage"]["input_tokens"] == 25
    # the same stream whole: message_delta (final output count 10) and message_stop -> priced
    # claude-haiku-4-5: 25 x $1/M + 10 x $5/M = 0.000025 + 0.00005 = 0.000075
    whole = cut + (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
                   b'"usage":{"output_tokens":10}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
    (tmp_path / "whole.sse").write_bytes(whole)
    r = _cli(tmp_path, "cost", "--url", url, "--response", "whole.sse", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["cost_usd"] == "0.000075"


def test_check_settings_errors_all_start_with_the_file(tmp_path):
    """Every settings error from check is one line starting ``error: config file PATH:`` -- a folder,
    a missing file, a duplicate key, a bad entry and a bad model alike."""
    (tmp_path / "dup.yaml").write_text("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", encoding="utf-8")
    (tmp_path / "tier.yaml").write_text("tiers: {openai: {strongest: gpt-4o, weak: gpt-4o-mini}}\n", encoding="utf-8")
    (tmp_path / "model.yaml").write_text("baseline_models: {openai: gpt-4oo}\n", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    cases = {"folder": "is a folder, not a file", "missing.yaml": "no settings file",
             "dup.yaml": "duplicate key 'listen'", "tier.yaml": "unknown tier 'strongest' (did you mean strong?)",
             "model.yaml": "baseline_models.openai: no model 'gpt-4oo'"}
    for name, needle in cases.items():
        r = _cli(tmp_path, "check", "--config", name)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stderr.startswith(f"error: config file {name}: "), (name, r.stderr)
        assert needle in r.stderr and r.stderr.count("\n") == 1, (name, r.stderr)


ANT = ('{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text",'
       '"text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1000,"output_tokens":200}}')
GPT5_FLEX = ('{"id":"x","object":"chat.completion","model":"gpt-5","service_tier":"flex","choices":[{"index":0,'
             '"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
             '"usage":{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200}}')
GEM = ('{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP"}],'
       '"usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":200,"totalTokenCount":1200},'
       '"modelVersion":"gemini-2.5-flash"}')


def test_cost_on_a_body_of_another_api_names_the_api_the_url_implies_and_the_one_it_looks_like(tmp_path):
    (tmp_path / "ant.json").write_text(ANT)
    (tmp_path / "oa.json").write_text(GPT5_FLEX)
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", "ant.json", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 3 and out["unpriced_reason"] == "wrong_dialect", r.stdout
    assert out["explanation"] == ("the body does not look like a response of OpenAI Chat Completions, the API --url "
                                  "implies; this looks like an Anthropic Messages response; check --url")
    r = _cli(tmp_path, "cost", "--url", "https://api.anthropic.com/v1/messages", "--response", "oa.json", "--brief")
    assert r.returncode == 3
    assert ("unpriced: wrong_dialect - the body does not look like a response of Anthropic Messages, the API --url "
            "implies; this looks like an OpenAI Chat Completions response; check --url") in r.stdout, r.stdout
    assert "no_usage" not in r.stdout


RESPONSES = ('{"id":"resp_1","object":"response","status":"completed","model":"gpt-4o-mini","output":[{"type":"message",'
             '"role":"assistant","content":[{"type":"output_text","text":"hi"}]}],'
             '"usage":{"input_tokens":1000,"output_tokens":200,"total_tokens":1200}}')


def test_cost_tells_anthropic_and_responses_bodies_apart_by_their_object_kind(tmp_path):
    # Both carry usage.input_tokens / output_tokens, so each reads the other's usage; the body's
    # "type": "message" (Anthropic) or "object": "response" (Responses) says which API it is.
    (tmp_path / "ant.json").write_text(ANT)
    (tmp_path / "resp.json").write_text(RESPONSES)
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/responses", "--response", "ant.json", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 3 and out["unpriced_reason"] == "wrong_dialect" and out["cost_usd"] is None, r.stdout
    assert out["explanation"] == ("the body does not look like a response of OpenAI Responses, the API --url "
                                  "implies; this looks like an Anthropic Messages response; check --url")
    r = _cli(tmp_path, "cost", "--url", "https://api.anthropic.com/v1/messages", "--response", "resp.json", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 3 and out["unpriced_reason"] == "wrong_dialect", r.stdout
    assert out["explanation"].endswith("this looks like an OpenAI Responses response; check --url")
    # Each at its own URL is priced: claude-sonnet-4-5 $3 in / $15 out per 1M tokens: 0.003 + 0.003;
    # gpt-4o-mini $0.15 / $0.60: 0.00015 + 0.00012.
    r = _cli(tmp_path, "cost", "--url", "https://api.anthropic.com/v1/messages", "--response", "ant.json", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["cost_usd"] == "0.006", r.stdout
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/responses", "--response", "resp.json", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["cost_usd"] == "0.00027", r.stdout


def test_cost_without_a_baseline_says_why(tmp_path):
    (tmp_path / "oa.json").write_text(GPT5_FLEX)
    # gpt-5 flex: 1000 x 0.625 / 1e6 + 200 x 5 / 1e6 = 0.000625 + 0.001 = 0.001625; the baseline
    # candidates (routing tiers: gpt-4o …) have no flex rate.
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", "oa.json", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["cost_usd"] == "0.001625" and out["baseline_model"] is None
    note = out["baseline_note"]
    assert note.startswith("the candidate models (gpt-4o") and note.endswith("have no rates under service tier flex")
    r = _cli(tmp_path, "cost", "--url", "https://api.openai.com/v1/chat/completions", "--response", "oa.json", "--brief")
    assert f"baseline     none: {note}" in r.stdout.splitlines()
    # Azure: no routing tiers for azure, so no candidate at all.
    r = _cli(tmp_path, "cost", "--url", "https://res.openai.azure.com/openai/deployments/d/chat/completions",
             "--response", "oa.json", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["provider"] == "azure" and out["baseline_model"] is None
    assert out["baseline_note"] == ("no routing tier models for provider azure (set baseline_models in the settings "
                                    "or pass --baseline)")


def test_cost_on_vertex_ai_shows_the_registry_provider_and_the_catalogue_it_is_priced_from(tmp_path):
    (tmp_path / "gem.json").write_text(GEM)
    url = ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/"
           "models/gemini-2.5-flash:generateContent")
    # gemini-2.5-flash: 1000 x 0.30 / 1e6 + 200 x 2.50 / 1e6 = 0.0003 + 0.0005 = 0.0008
    r = _cli(tmp_path, "cost", "--url", url, "--response", "gem.json", "--brief")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0].split()
    assert first[:2] == ["provider", "vertex_ai"] and "priced from catalogue: google" in r.stdout.splitlines()[0]
    assert re.search(r"^total\s+0\.0008$", r.stdout, re.M), r.stdout
    gurl = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    r = _cli(tmp_path, "cost", "--url", gurl, "--response", "gem.json", "--provider", "Vertex AI", "--json")
    out = json.loads(r.stdout)
    assert (out["provider"], out["catalogue_provider"], out["cost_usd"]) == ("vertex_ai", "google", "0.0008")
    # The plain Gemini API stays one name.
    out = json.loads(_cli(tmp_path, "cost", "--url", gurl, "--response", "gem.json", "--json").stdout)
    assert (out["provider"], out["catalogue_provider"]) == ("google", "google")
    help_text = " ".join(_cli(tmp_path, "cost", "--help").stdout.replace("│", " ").split())
    assert "registry names" in help_text and "(genai-prices id)" not in help_text


def test_router_train_and_eval_with_a_missing_data_folder_is_a_usage_error(tmp_path):
    (tmp_path / "prompts.jsonl").write_text("{}\n", encoding="utf-8")
    for cmd in ("train", "eval"):
        r = _cli(tmp_path, "router", cmd, "--data", "missing", "--out", str(tmp_path / "out"))
        assert r.returncode == 2, (cmd, r.stderr)
        assert r.stderr == f"error: --data missing: no such folder (looked in {tmp_path})\n", (cmd, r.stderr)
        r = _cli(tmp_path, "router", cmd, "--data", str(tmp_path / "prompts.jsonl"))
        assert r.returncode == 2 and r.stderr == f"error: --data {tmp_path / 'prompts.jsonl'}: is a file, not a folder\n", (cmd, r.stderr)
    assert not (tmp_path / "out").exists()  # nothing left behind


def test_check_names_a_misspelt_tier_and_keeps_tiers_a_policy_declares(tmp_path):
    (tmp_path / "typo.yaml").write_text("tiers:\n  openai: {weak: gpt-4o-mini, midd: gpt-4.1-mini, strong: gpt-4o}\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "typo.yaml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "tiers.openai.midd: unknown tier (did you mean mid?); tiers are weak, mid, strong" in r.stderr
    # A misspelt required tier (``Weak``: tier names are case-sensitive) lists the tiers in the same
    # order (it said "strong, mid, weak" while the line above says "weak, mid, strong").
    (tmp_path / "case.yaml").write_text("tiers:\n  openai: {Weak: gpt-4o-mini, mid: gpt-4.1-mini, strong: gpt-4o}\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "case.yaml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert ("tiers.openai: missing model for tier 'weak'; unknown tier 'Weak' (did you mean weak?); "
            "tiers are weak, mid, strong\n") in r.stderr
    # A name of its own is a pin-only tier: valid, with a warning saying what it means.
    (tmp_path / "pin.yaml").write_text("tiers:\n  openai: {weak: gpt-4o-mini, reasoning: o3, strong: gpt-4o}\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "pin.yaml")
    assert r.returncode == 0 and r.stdout == "ok: pin.yaml\n", r.stdout + r.stderr
    assert r.stderr.startswith("warning: tiers.openai.reasoning: ") and "x-nadir-tier: reasoning" in r.stderr
    # A router_policy file that names its own tiers in order/thresholds: valid, no warning; the
    # same file with a typo in a provider's map fails naming the file's own tier.
    pol = ("thresholds: {nano: 0.0, weak: 0.1, strong: 0.6}\norder: [nano, weak, strong]\n"
           "tiers:\n  openai: {nano: gpt-5-nano, weak: gpt-4o-mini, strong: gpt-4o}\n"
           "  google: {nano: gemini-2.5-flash-lite, weak: gemini-2.5-flash, strong: gemini-2.5-pro}\n")
    (tmp_path / "pol.yaml").write_text(pol, encoding="utf-8")
    (tmp_path / "own.yaml").write_text("router_policy: pol.yaml\n", encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "own.yaml")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    (tmp_path / "pol.yaml").write_text(pol.replace("{nano: gpt-5-nano", "{nanoo: gpt-5-nano"), encoding="utf-8")
    r = _cli(tmp_path, "check", "--config", "own.yaml")
    assert r.returncode == 2 and "tiers.openai.nanoo: unknown tier (did you mean nano?); tiers are nano, weak, strong" in r.stderr
