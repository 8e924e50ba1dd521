"""Tables on a pipe (issue 19): `report` and `report --opportunity` piped into another program
print the README's plain table — one line per row, names and numbers whole, one `total` row, no
borders, colour or trailing spaces — not the 80-column card list of a narrow terminal; CSV is only
records (the notes go to stderr)."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

from nadir_extproc.ledger.schema import LedgerRow
from nadir_extproc.ledger.store import open_store

ROOT = Path(__file__).resolve().parents[1]
LONG = "claude-sonnet-4-5-20250929-with-a-very-long-deployment-suffix"


def _row(n: int, model: str, provider: str, cost: str, inp: int, out: int, asked: str | None = None) -> LedgerRow:
    return LedgerRow(
        ts=datetime(2026, 3, 2, 10, n, tzinfo=timezone.utc), request_id=f"req-{n}", provider=provider,
        dialect="openai_chat" if provider == "openai" else "anthropic_messages", requested_model=asked or model,
        served_model=model, uncached_input_tokens=inp, output_tokens=out, cost_usd=D(cost), status="ok", http_status=200,
        saved_usd=D(0), key_id="k1", tags={"team": "search"},
        shadow_tier="weak" if asked else None, shadow_model="gpt-4o-mini" if asked else None, shadow_score=0.0 if asked else None,
        shadow_cost_usd=D("0.0001") if asked else None, opportunity_usd=D("0.0009") if asked else None,
    )


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NADIR_", "COLUMNS", "FORCE_COLOR", "TTY_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "nadir_extproc.cli", *args, "--sqlite-dir", str(tmp_path / "ledger")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_piped_report_is_the_readme_table(tmp_path):
    store = open_store(sqlite_dir=tmp_path / "ledger")
    store.insert([_row(1, LONG, "anthropic", "0.0021", 100, 20), _row(2, LONG, "anthropic", "0.0009", 50, 10),
                  _row(3, "gpt-4o-mini-2024-07-18", "openai", "0.00003", 80, 30, asked="gpt-4o"),
                  _row(4, "gpt-4o-mini-2024-07-18", "openai", "0.00007", 120, 70)])
    store.close()
    r = _cli(tmp_path, "report", "--by", "model", "--top", "0")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Spend by model" and lines[1].split() == ["model", "requests", "cost", "USD", "saved", "USD", "in", "tok",
                                                                 "out", "tok", "unpriced"]
    # one line per group, the whole name, hand sums: 0.0021 + 0.0009; 0.00003 + 0.00007; both
    assert lines[2].split() == [LONG, "2", "0.003", "0", "150", "30", "0"]
    assert lines[3].split() == ["gpt-4o-mini-2024-07-18", "2", "0.0001", "0", "200", "100", "0"]
    assert lines[4].split() == ["total", "4", "0.0031", "0", "350", "130", "0"] and len(lines) == 5
    assert not any(c in r.stdout for c in "│┃━─•\x1b") and all(x == x.rstrip() for x in lines)

    r = _cli(tmp_path, "report", "--opportunity", "--by", "model")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("What routing would save by model")
    # the explicit gpt-4o request: spend 0.00003 of the group's 0.0001, downgradable, estimated saving 0.0009
    row = next(x.split() for x in lines if x.split()[:1] == ["gpt-4o-mini-2024-07-18"])
    assert row == ["gpt-4o-mini-2024-07-18", "2", "0.0001", "1", "1", "0.00003", "30.0", "%", "0.0009"], lines
    assert sum(1 for x in lines if x.split()[:1] == ["total"]) == 1
    assert any(x.startswith("Router quality at its thresholds") for x in lines)

    r = _cli(tmp_path, "report", "--opportunity", "--by", "model", "--format", "csv")
    assert r.returncode == 0 and "#" not in r.stdout
    recs = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["model"] for x in recs] == ["gpt-4o-mini-2024-07-18", LONG, "total"] and recs[2]["opportunity_usd"] == "0.0009"
    assert r.stderr.startswith("Router quality at its thresholds") and "Estimate:" in r.stderr


def test_a_terminal_too_narrow_for_borders_gets_the_borderless_table(tmp_path):
    from typer.testing import CliRunner

    from nadir_extproc.cli import app

    store = open_store(sqlite_dir=tmp_path / "ledger")
    store.insert([_row(1, LONG, "anthropic", "0.0021", 100, 20), _row(4, "gpt-4o-mini-2024-07-18", "openai", "0.00007", 120, 70)])
    store.close()
    # the borderless table is 61 + 49 + 2 x 7 = 124 columns wide (bordered: 131); a 126-column terminal
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path / "ledger"), "--by", "model", "--top", "0"],
                           env={"COLUMNS": "126", "TTY_COMPATIBLE": "1", "TERM": "xterm"})  # (rich takes a dumb terminal as 80 wide)
    assert r.exit_code == 0, r.output
    lines = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout).splitlines()
    assert lines[2].split() == [LONG, "1", "0.0021", "0", "100", "20", "0"] and lines[4].split()[0] == "total", lines
    assert max(len(x) for x in lines) <= 126 and not any(c in "".join(lines) for c in "│┃━•")


def test_a_title_wider_than_its_table_stays_on_one_line():
    # "Unpriced requests by reason" above its two narrow columns came out as "Unpriced requests by" / "reason"
    from rich.console import Console

    from nadir_extproc.tables import new_table

    out = io.StringIO()
    console = Console(file=out, width=200, no_color=True, force_terminal=False)
    t = new_table(console, "Unpriced requests by reason")
    t.add_column("reason")
    t.add_column("requests", justify="right")
    t.add_row("provider_error", "21")
    console.print(t)
    assert out.getvalue().splitlines()[0] == "Unpriced requests by reason", out.getvalue()


def test_a_repeated_by_is_one_column_and_a_same_day_range_says_how_to_ask(tmp_path):
    store = open_store(sqlite_dir=tmp_path / "ledger")
    store.insert([_row(1, "gpt-4o", "openai", "0.0021", 100, 20), _row(2, "gpt-4o", "openai", "0.0009", 50, 10)])
    store.close()
    r = _cli(tmp_path, "report", "--by", "day", "--by", "day", "--top", "0")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split()[:2] == ["day", "requests"]  # one day column
    assert lines[2].split()[:3] == ["2026-03-02", "2", "0.003"]  # 0.0021 + 0.0009
    r = _cli(tmp_path, "report", "--since", "2026-03-02", "--until", "2026-03-02")
    assert r.returncode == 2 and "give the next day" in r.stderr and "Traceback" not in r.stderr


def test_cards_on_an_80_column_terminal_are_not_all_italic(tmp_path):
    # At 80 columns the top-N table becomes cards; the card list was built as Text(title, style="italic")
    # and every card after the title came out in italics (and the total card bold-italic).
    from typer.testing import CliRunner

    from nadir_extproc.cli import app

    store = open_store(sqlite_dir=tmp_path / "ledger")
    store.insert([_row(1, LONG, "anthropic", "0.0021", 100, 20)])
    store.close()
    r = CliRunner().invoke(app, ["report", "--sqlite-dir", str(tmp_path / "ledger"), "--by", "model", "--top", "1"],
                           env={"COLUMNS": "80", "TTY_COMPATIBLE": "1", "TERM": "xterm", "FORCE_COLOR": "1"})
    assert r.exit_code == 0, r.output
    out = r.stdout
    title = out.index("Top 1 requests by cost")
    assert "\x1b[3m" in out[max(0, title - 12):title]  # the title is italic …
    card = out.index("• ", title)
    # … and nothing from the card's bullet on is: no italic SGR (3) in any escape sequence after it
    assert not re.search(r"\x1b\[(?:[0-9]+;)*3(?:;[0-9]+)*m", out[card:]), repr(out[card:card + 200])
    assert LONG in re.sub(r"\x1b\[[0-9;]*m", "", out[card:])  # the card itself is there, whole
