"""`nadir-extproc router score`: prompts as arguments, JSONL from a file or stdin; one JSON line out per
prompt/line, in order, scored on the same path as the service."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from nadir_extproc.cli import app

CODE = "Why does this fail?\n```python\nprint(1/0)\n```"
EASY = "What's the capital of France?"


def run(stdin: str, *args: str):
    return CliRunner().invoke(app, ["router", "score", *args], input=stdin, env={"NADIR_CONFIG": ""})


def tier_of(score: float) -> str:
    from nadir_extproc.routing.policy import TierPolicy

    return TierPolicy().tier_for_score(score)


def test_prompts_and_request_bodies_of_every_dialect():
    from nadir_extproc.routing.onnx_router import OnnxScorer
    from nadir_extproc.routing.policy import TierPolicy

    lines = [
        {"prompt": EASY},
        {"model": "auto", "messages": [{"role": "user", "content": CODE}]},
        {"model": "auto", "input": EASY},
        {"model": "auto", "max_tokens": 10, "system": "Be brief.", "messages": [{"role": "user", "content": "Say hello in Japanese."}]},
        {"contents": [{"role": "user", "parts": [{"text": CODE}]}]},
    ]
    r = run("".join(json.dumps(x) + "\n" for x in lines))
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in r.stdout.splitlines()]
    scorer, pol = OnnxScorer(), TierPolicy()
    texts = [EASY, CODE, EASY, "Be brief.\nSay hello in Japanese.", CODE]
    providers = ["openai", "openai", "openai", "anthropic", "google"]
    for o, t, prov in zip(out, texts, providers):
        tier = pol.tier_for_score(o["score"])
        assert o["model"] == pol.pick(prov, tier).model and o["router"] == "onnx"
    # The same text scores the same whichever shape carries it.
    assert out[0]["score"] == out[2]["score"] == scorer.score(EASY)
    assert out[1]["score"] == out[4]["score"] == scorer.score(CODE)


def test_prompts_as_arguments_in_order():
    from nadir_extproc.routing.onnx_router import OnnxScorer

    prompts = [EASY, CODE, "hi"]
    r = run("", *prompts)
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in r.stdout.splitlines()]
    scorer = OnnxScorer()
    assert [o["score"] for o in out] == [scorer.score(p) for p in prompts]
    assert all(o["model"].startswith("gpt-") for o in out)


def test_provider_gemini_and_google_are_the_same_tiers():
    from nadir_extproc.routing.policy import DEFAULT_TIERS

    a = [json.loads(x) for x in run("", EASY, CODE, "--provider", "gemini").stdout.splitlines()]
    b = [json.loads(x) for x in run("", EASY, CODE, "--provider", "google").stdout.splitlines()]
    c = [json.loads(x) for x in run("", EASY, CODE, "--provider", "Gemini").stdout.splitlines()]
    assert a == b == c and len(a) == 2
    assert all(o["model"] in DEFAULT_TIERS["google"].values() for o in a)
    r = run("", EASY, "--provider", "nope")
    assert r.exit_code == 2 and "unknown provider" in r.output


def test_provider_option_and_bad_lines(tmp_path):
    from nadir_extproc.routing.policy import DEFAULT_TIERS

    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"prompt": CODE}) + "\nnot json: a plain-text prompt\n[1]\n{broken\n\n" + json.dumps({"prompt": EASY}) + "\n",
                 encoding="utf-8")
    r = run("", "--file", str(f), "--provider", "anthropic")
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 1  # some lines were errors
    assert all(out[i]["model"] in DEFAULT_TIERS["anthropic"].values() for i in (0, 1, 4))
    from nadir_extproc.routing.onnx_router import OnnxScorer

    assert out[1]["score"] == OnnxScorer().score("not json: a plain-text prompt")  # a line not starting with { is a prompt
    assert "error" in out[2] and "error" in out[3] and len(out) == 5
    assert run("", "x", "--file", str(f)).exit_code == 2  # arguments and a file: one or the other
    assert run("", "--file", str(tmp_path / "missing.jsonl")).exit_code == 2


def test_rules_router_by_setting(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("router: rules\n", encoding="utf-8")
    r = run(json.dumps({"prompt": CODE}) + "\n", "--config", str(cfg))
    assert json.loads(r.stdout) == {"score": 1.0, "tier": "strong", "model": "gpt-4o", "reason": "code_fence", "router": "rules"}


def test_full_bodies_score_what_the_request_path_scores(tmp_path):
    # One full request body per dialect, read from a FILE; each line's score must equal the shipped
    # model's score of the prompt text the request path extracts for that dialect
    # (Dialect.prompt_text: system parts included), and lines come out in input order.
    from nadir_extproc.dialects import DIALECTS
    from nadir_extproc.routing.onnx_router import OnnxScorer

    bodies = [
        ("gemini", {"systemInstruction": {"parts": [{"text": "You are a C++ expert."}]},
                    "contents": [{"role": "user", "parts": [{"text": CODE}]},
                                 {"role": "model", "parts": [{"text": "Division by zero."}]},
                                 {"role": "user", "parts": [{"text": "And in C?"}]}],
                    "generationConfig": {"temperature": 0}}),
        ("openai_responses", {"model": "auto", "instructions": "Answer in one word.",
                              "input": [{"role": "user", "content": [{"type": "input_text", "text": EASY}]}]}),
        ("anthropic_messages", {"model": "auto", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
                                "messages": [{"role": "user", "content": [{"type": "text", "text": "Translate 'good morning' to French."}]}]}),
        ("openai_chat", {"model": "auto", "messages": [{"role": "system", "content": "You are helpful."},
                                                        {"role": "user", "content": [{"type": "text", "text": CODE}]}],
                         "stream": True}),
    ]
    f = tmp_path / "bodies.jsonl"
    f.write_text("".join(json.dumps(b) + "\n" for _, b in bodies), encoding="utf-8")
    r = run("", "--file", str(f))
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(out) == len(bodies)
    scorer = OnnxScorer()
    for (dialect, body), o in zip(bodies, out):
        text = DIALECTS[dialect].prompt_text(body)
        assert o["score"] == scorer.score(text), dialect
    # The Gemini system instruction is part of what is scored (as on the request path).
    assert "You are a C++ expert." in DIALECTS["gemini"].prompt_text(bodies[0][1])
    assert [o["model"].split("-")[0] for o in out] == ["gemini", "gpt", "claude", "gpt"]


def test_message_count_as_the_request_path_counts_it(tmp_path):
    # The rule router sends more than 8 messages to strong (long_conversation); the count is the
    # messages / input / contents list, as on the request path. Nine short turns, no marker words.
    cfg = tmp_path / "s.yaml"
    cfg.write_text("router: rules\n", encoding="utf-8")
    turns = [{"role": "user", "content": "ok"}] * 9
    lines = [
        {"model": "auto", "messages": turns},
        {"model": "auto", "input": turns},
        {"contents": [{"role": "user", "parts": [{"text": "ok"}]}] * 9},
        {"model": "auto", "messages": turns[:8]},
    ]
    r = run("".join(json.dumps(x) + "\n" for x in lines), "--config", str(cfg))
    assert [json.loads(x)["reason"] for x in r.stdout.splitlines()] == [
        "long_conversation", "long_conversation", "long_conversation", "short_simple"]


def test_line_without_a_prompt_is_an_error_not_an_empty_prompt():
    # Found by a newcomer: {"foo": 1} (or a misspelt key) was scored as an empty prompt, exit 0.
    r = run(json.dumps({"foo": 1}) + "\n" + json.dumps({"promt": EASY}) + "\n" + json.dumps({"prompt": 5}) + "\n"
            + json.dumps({"prompt": EASY}) + "\n")
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 1 and len(out) == 4
    assert all("prompt" in o["error"] for o in out[:3]), out
    assert out[3]["tier"] == tier_of(out[3]["score"])


def test_an_empty_prompt_is_an_error_line_and_blank_lines_are_skipped():
    # Found by a newcomer: "" was scored like any prompt; blank input lines give no output line.
    r = run(EASY + "\n\n" + json.dumps({"prompt": "  "}) + "\n" + EASY + "\n")
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 1 and len(out) == 3
    assert "score" in out[0] and out[1] == {"error": "ValueError: empty prompt: nothing to score"} and "score" in out[2]
    r = CliRunner().invoke(app, ["router", "score", "", EASY], env={"NADIR_CONFIG": ""})
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 1 and "empty prompt" in out[0]["error"] and "score" in out[1]
