"""``nadir-extproc router``: ``train``, ``eval``, ``calibrate`` and ``score`` (registered in ``nadir_extproc.cli``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import typer

router_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, evaluate and run the prompt router.")

_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "prompts"
BUILTIN = ("cv", "shipped", "rules", "length", "random")
#: ``--provider`` names that mean a policy provider of another name (the Gemini API's models are
#: the ``google`` provider's tiers, as the gemini dialect reports them).
PROVIDER_ALIASES = {"gemini": "google", "vertex": "google", "vertex_ai": "google", "vertex-ai": "google",
                    "azure": "openai", "azure_openai": "openai"}
_MODEL_DIR = Path(__file__).parent / "model"


@router_app.command()
def train(
    data: Path = typer.Option(_DATA, help="Folder with the prompt sets (routellm_*.jsonl/csv, arena_bench_v1_*)."),
    out: Path = typer.Option(_MODEL_DIR, help="Output folder for router.onnx, tokenizer.json, calibration.json, reference_scores.json, train_info.json."),
    seed: int = typer.Option(20250, help="Seed of the cross-validation folds."),
    target_mid: float = typer.Option(0.8, help="PGR target of the mid threshold (on the cross-validated arena-bench scores)."),
    target_strong: float = typer.Option(0.5, help="PGR target of the strong threshold."),
    label: str = typer.Option("gap", help="Label rule: gap (the strong side wins) or difficulty (the weak side fails)."),
) -> None:
    """Train the router (needs the 'train' extra: wordllama, scikit-learn, onnx) and write the ONNX model."""
    from nadir_extproc.cliutil import folder_or_exit, missing_in_folder_exit

    folder_or_exit(data, "--data")  # before the train extra is imported: a typo is a usage error either way
    from nadir_extproc.routing.train import train as run

    try:
        run(data, out, seed, log=lambda m: typer.echo(m, err=True), calibrate_target={"mid": target_mid, "strong": target_strong},
            label=label)
    except FileNotFoundError as e:
        missing_in_folder_exit(e, data, "--data")
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@router_app.command("eval")
def eval_(
    data: Path = typer.Option(_DATA, help="Folder with the prompt sets."),
    out: Path = typer.Option(Path("docs/router-eval"), help="Report folder (report.md, metrics.json, routing_curve.png)."),
    scorer: list[str] = typer.Option(list(BUILTIN), "--scorer", "-s", help="Scorer to evaluate (repeatable): cv, cv-difficulty, shipped, rules, length, random, or onnx:PATH."),
    seed: Optional[int] = typer.Option(None, help="Cross-validation seed (default: the shipped model's)."),
    bootstrap: int = typer.Option(500, help="Bootstrap resamples for the 95 % intervals."),
    chat: list[Path] = typer.Option([Path("docs/router-eval/chat_prompts.jsonl"), Path("docs/router-eval/kinds_val.jsonl"), Path("docs/router-eval/kinds_test.jsonl"), Path("docs/router-eval/kinds_final.jsonl")], help="Hand-labelled chat prompts (JSONL prompt/label/kind), repeatable; absent files are skipped."),
    external: Optional[list[Path]] = typer.Option(None, "--external", "-x", help="External set to measure (repeatable): JSONL {\"prompt\", \"strong\", \"weak\"[, \"category\"]} per line, e.g. MT-bench questions with two models' judge scores; scored by the fixed scorers (shipped, onnx:PATH, rules, length, random) only, never trained on."),
) -> None:
    """Cross-validated APGR, CPT(50 %) and CPT(80 %) per data set and per category, for any scorers; external sets measured; curves as a PNG."""
    from nadir_extproc.cliutil import folder_or_exit, missing_in_folder_exit

    folder_or_exit(data, "--data")
    from nadir_extproc.routing.evaluate import run_eval
    from nadir_extproc.routing.onnx_router import ModelError

    try:
        run_eval(data, out, tuple(scorer), seed, bootstrap, log=lambda m: typer.echo(m, err=True), chat_prompts=tuple(chat),
                 external=tuple(external or ()))
    except FileNotFoundError as e:
        if e.filename is None:  # a scorer's model file named without errno details: its own message
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        missing_in_folder_exit(e, data, "--data")
    except (ModelError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@router_app.command()
def calibrate(
    data: Path = typer.Option(..., help='JSONL calibration set: {"prompt": str, "strong": quality, "weak": quality} per line '
                              "(quality: 1/0 correctness or a judge score of each model's answer)."),
    target_mid: Optional[float] = typer.Option(None, help="PGR target of the mid threshold (share of the quality gap recovered)."),
    target_strong: Optional[float] = typer.Option(None, help="PGR target of the strong threshold."),
    quality_mid: Optional[float] = typer.Option(None, help="Target of the mid threshold as a share of the strong model's quality (0.9 = keep 90 %)."),
    quality_strong: Optional[float] = typer.Option(None, help="Target of the strong threshold as a share of the strong model's quality."),
    model: Optional[Path] = typer.Option(None, help="ONNX model that scores the prompts (default: the shipped one)."),
) -> None:
    """Thresholds that reach a quality target on your data with your model pair; prints a route-policy `thresholds:` block."""
    import numpy as np
    import yaml

    from nadir_extproc.routing import calibrate as cal
    from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, ModelError, OnnxScorer

    try:
        rows = [json.loads(x) for x in data.read_text(encoding="utf-8").splitlines() if x.strip()]
        for n, r in enumerate(rows, 1):
            if not isinstance(r, dict) or not isinstance(r.get("prompt"), str) or not all(
                    isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) for k in ("strong", "weak")):
                raise ValueError(f"{data}:{n}: need a string 'prompt' and numbers 'strong' and 'weak'")
        so = np.array([float(r["strong"]) for r in rows])
        wo = np.array([float(r["weak"]) for r in rows])
        targets = {}
        for tier, pgr, q in (("mid", target_mid, quality_mid), ("strong", target_strong, quality_strong)):
            if pgr is not None and q is not None:
                raise ValueError(f"give --target-{tier} or --quality-{tier}, not both")
            if q is not None:
                pgr = cal.pgr_target_from_quality(q, so, wo)
            if pgr is None:
                pgr = cal.DEFAULT_TARGETS[tier]
            targets[tier] = pgr
        scores = OnnxScorer(model or DEFAULT_MODEL_PATH).score_many([r["prompt"] for r in rows])
        res = cal.calibrate(scores, so, wo, targets)
    except (OSError, ValueError, ModelError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for tier, a in res["achieved"].items():
        typer.echo(f"{tier}: threshold {a['threshold']:.6f} -> {100 * a['strong_share']:.1f} % strong calls, "
                   f"PGR {a['pgr']:.3f}, {100 * a['quality_share']:.1f} % of the strong model's quality "
                   f"(target PGR {targets[tier]:.3f}, {len(rows)} prompts)", err=True)
        if a["pgr"] < targets[tier] - 1e-12:
            typer.echo(f"warning: {tier}: no threshold reaches target PGR {targets[tier]:.3f} on this data; "
                       f"this is the threshold of the best PGR reached ({a['pgr']:.3f})", err=True)
    typer.echo(yaml.safe_dump({"thresholds": res["thresholds"]}, sort_keys=False), nl=False)


_ANTHROPIC_PARTS = frozenset({"image", "tool_use", "tool_result", "document", "thinking"})


def _anthropic_parts(msgs: Any) -> bool:
    """True when a message has an Anthropic-only content part type."""
    for m in msgs if isinstance(msgs, list) else []:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list) and any(isinstance(p, dict) and p.get("type") in _ANTHROPIC_PARTS for p in c):
            return True
    return False


def _request(line: dict[str, Any]) -> tuple[str, str, str, dict[str, Any] | None, int]:
    """(provider, dialect, prompt, body, message_count) of one input line: ``{"prompt": ...}`` or a
    request body, its dialect chosen by shape: ``contents`` -> Gemini; ``input`` -> OpenAI Responses;
    a top-level ``system``, ``anthropic_version`` or an Anthropic-only content part (``image``,
    ``tool_use``, ``tool_result``, ``document``, ``thinking``) -> Anthropic Messages; else OpenAI Chat.
    Prompt text and message count are what the service's request path builds for that dialect
    (``Dialect.prompt_text``; the length of the ``messages``, ``input`` or ``contents`` list, else
    1 — as ``processor.RequestProcessor._route``)."""
    from nadir_extproc.dialects import DIALECTS

    if isinstance(line.get("prompt"), str) and not any(k in line for k in ("messages", "input", "contents")):
        return "openai", "openai_chat", line["prompt"], None, 1
    if not any(k in line for k in ("messages", "input", "contents")):  # else scored as an empty prompt
        raise ValueError('line has no "prompt" text and no "messages", "input" or "contents"')
    if "contents" in line:  # Gemini generateContent (systemInstruction + contents)
        d = DIALECTS["gemini"]
    elif "input" in line:
        d = DIALECTS["openai_responses"]
    elif "system" in line or "anthropic_version" in line or _anthropic_parts(line.get("messages")):
        d = DIALECTS["anthropic_messages"]
    else:
        d = DIALECTS["openai_chat"]
    msgs = line.get("messages") or line.get("input") or line.get("contents")
    return d.provider, d.name, d.prompt_text(line), line, len(msgs) if isinstance(msgs, list) else 1


def score_stream(src: TextIO, dst: TextIO, router: Any, provider: str | None = None) -> int:
    """Route every line of ``src`` (a JSON object, or a plain-text prompt: a line that does not
    start with ``{`` and is not JSON, or a JSON string); write ``{"score", "tier", "model", "reason", "router"}`` per
    non-blank line to ``dst``, in order (blank lines are skipped). A line that is not a JSON object, or has no prompt
    or an empty one, gets ``{"error": ...}``. Returns the
    number of error lines."""
    errors = 0
    for raw in src:
        if raw.strip():
            errors += _write_decision(dst, router, lambda raw=raw: _line_request(raw, provider))
    dst.flush()
    return errors


def score_prompts(prompts: list[str], dst: TextIO, router: Any, provider: str | None = None) -> int:
    """Route each prompt text (as an OpenAI Chat prompt, or for ``provider``); one JSON line per prompt."""
    from nadir_extproc.routing.base import RouteRequest

    errors = 0
    for p in prompts:
        if not p.strip():
            errors += _write_decision(dst, router, _empty_prompt)
            continue
        errors += _write_decision(dst, router, lambda p=p: RouteRequest(provider=provider or "openai", dialect="openai_chat", prompt=p))
    dst.flush()
    return errors


def _line_request(raw: str, provider: str | None) -> Any:
    """The ``RouteRequest`` of one input line (a JSON object, or a plain-text prompt); ``ValueError``
    when it is JSON but not an object, or has no prompt."""
    from nadir_extproc.routing.base import RouteRequest

    if raw.lstrip().startswith("{"):
        line = json.loads(raw)
    else:  # a plain-text line is a prompt (`echo "What is 2+2?" | router score`); JSON that is no object is an error
        try:
            line = json.loads(raw)
        except ValueError:
            line = raw.strip()
        if isinstance(line, str):
            line = {"prompt": line}
    if not isinstance(line, dict):
        raise ValueError("line is not a JSON object")
    prov, dialect, prompt, body, n = _request(line)
    if body is None and not prompt.strip():
        _empty_prompt()
    return RouteRequest(provider=provider or prov, dialect=dialect, prompt=prompt, message_count=n, body=body)


def _empty_prompt() -> Any:
    raise ValueError("empty prompt: nothing to score")


def _write_decision(dst: TextIO, router: Any, request: Any) -> int:
    """Write one JSON line: the router's decision on ``request()``, or ``{"error": "<Type>: <message>"}``
    when building or routing it raises ``ValueError``/``KeyError``. Returns 1 for an error line, else 0."""
    try:
        d = router.route(request())
        out: dict[str, Any] = {"score": d.score, "tier": d.tier, "model": d.model, "reason": d.reason, "router": d.router}
    except (ValueError, KeyError) as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    dst.write(json.dumps(out) + "\n")
    return int("error" in out)


@router_app.command()
def score(
    prompts: Optional[list[str]] = typer.Argument(None, help="Prompt texts to score; put -- before a prompt that starts with - (router score -- \"-40C in F\") (else the lines of --file or standard input: plain text or JSONL)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Input file: one prompt per line, or JSONL ({\"prompt\": ...} or request bodies)."),
    provider: Optional[str] = typer.Option(None, help="Provider whose tiers to use: openai, anthropic, google (or gemini); default: from each line's shape."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Settings YAML (router model, policy)."),
) -> None:
    """Score prompts given as arguments, or lines from --file or standard input (a plain-text prompt, or JSONL: {"prompt": ...} or request bodies) with the service's router; one JSON line out per prompt/non-blank line, in order (blank lines are skipped; an empty prompt text is an error line, while a request body is routed as the service routes it, even with no text, e.g. an image-only message). Exit 1 if a line could not be scored."""
    from nadir_extproc.cliutil import settings_or_exit
    from nadir_extproc.routing.onnx_router import load_router

    settings = settings_or_exit(config)
    policy = settings.policy()
    if provider is not None:
        key = provider.strip().lower()
        if key not in PROVIDER_ALIASES and key not in policy.tiers:
            from nadir_extproc.providers import known

            entry = known.lookup(provider)  # the README's names: "Vertex AI", "Gemini API", "Azure OpenAI" …
            if entry is not None:
                key = entry.models_of or entry.catalogue_id
        provider = PROVIDER_ALIASES.get(key, key)
        if provider not in policy.tiers:
            typer.echo(f"error: unknown provider {provider!r}: no routing tiers for it (tiers exist for {', '.join(sorted(policy.tiers))}; "
                       f"also accepted: {', '.join(sorted(PROVIDER_ALIASES))}); add `tiers: {{{provider}: {{weak: MODEL, strong: MODEL}}}}` "
                       "to the settings file to route it", err=True)
            raise typer.Exit(2)
    if not prompts and file is None and sys.stdin.isatty():
        typer.echo('error: nothing to score: give prompts as arguments (router score "What is 2+2?"), '
                   "--file FILE (JSONL) or JSONL on standard input", err=True)
        raise typer.Exit(2)
    for p in prompts or []:
        if " " not in p.strip() and p.strip().lower().endswith((".jsonl", ".json", ".txt", ".csv")):
            there = "" if Path(p).is_file() else " (no such file here)"
            typer.echo(f"error: {p!r} looks like a file name, not a prompt{there}: to score a file's lines use "
                       f"--file {p} (JSONL or one prompt per line)", err=True)
            raise typer.Exit(2)
    if prompts and file is not None:
        typer.echo("error: give prompts as arguments or --file, not both", err=True)
        raise typer.Exit(2)
    router = load_router(policy, settings.router_model, settings.router)
    if prompts:
        errors = score_prompts(list(prompts), sys.stdout, router, provider)
    elif file is None:
        errors = score_stream(sys.stdin, sys.stdout, router, provider)
    else:
        try:
            f = file.open(encoding="utf-8")
        except OSError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        with f:
            errors = score_stream(f, sys.stdout, router, provider)
    raise typer.Exit(1 if errors else 0)
