"""``nadir-extproc router``: ``train``, ``eval`` and ``score`` (registered in ``nadir_extproc.cli``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import typer

router_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, evaluate and run the prompt router.")

_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "prompts"
_MODEL_DIR = Path(__file__).parent / "model"


@router_app.command()
def train(
    data: Path = typer.Option(_DATA, help="Folder with the prompt sets (routellm_*.jsonl/csv, arena-hard, …)."),
    out: Path = typer.Option(_MODEL_DIR, help="Output folder for router.onnx, reference_scores.json, train_info.json."),
    seed: int = typer.Option(20250, help="Seed of the held-out split and of cross-validation folds."),
) -> None:
    """Train the router (needs the 'train' extra) and write the ONNX model."""
    from nadir_extproc.routing.train import train as run

    try:
        run(data, out, seed, log=lambda m: typer.echo(m, err=True))
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@router_app.command("eval")
def eval_(
    data: Path = typer.Option(_DATA, help="Folder with the prompt sets."),
    out: Path = typer.Option(Path("docs/router-eval"), help="Report folder (report.md, metrics.json, routing_curve.png)."),
    model: Optional[Path] = typer.Option(None, help="ONNX model (default: the shipped one)."),
    seed: Optional[int] = typer.Option(None, help="Split seed (default: the seed in the model's metadata)."),
    chat: Path = typer.Option(Path("docs/router-eval/chat_prompts.jsonl"), help="Hand-labelled chat prompts (JSONL prompt/label/kind); skipped when absent."),
) -> None:
    """Evaluate on the split held out by subject/source: AUC, APGR, CPT(50 %), CPT(80 %) vs rules and random;
    and the default policy's routing of a labelled chat prompt set."""
    from nadir_extproc.routing.evaluate import run_eval
    from nadir_extproc.routing.onnx_router import ModelError

    try:
        run_eval(data, out, model, seed, log=lambda m: typer.echo(m, err=True), chat_prompts=chat)
    except (FileNotFoundError, ModelError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


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
    """Route every JSONL line of ``src``; write ``{"score", "tier", "model", "reason", "router"}`` per
    line to ``dst``, in order. A line that is not a JSON object gets ``{"error": ...}``. Returns the
    number of error lines."""
    from nadir_extproc.routing.base import RouteRequest

    errors = 0
    for raw in src:
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            if not isinstance(line, dict):
                raise ValueError("line is not a JSON object")
            prov, dialect, prompt, body, n = _request(line)
            d = router.route(
                RouteRequest(provider=provider or prov, dialect=dialect, prompt=prompt, message_count=n, body=body)
            )
            out: dict[str, Any] = {"score": d.score, "tier": d.tier, "model": d.model, "reason": d.reason, "router": d.router}
        except (ValueError, KeyError) as e:
            errors += 1
            out = {"error": f"{type(e).__name__}: {e}"}
        dst.write(json.dumps(out) + "\n")
    dst.flush()
    return errors


@router_app.command()
def score(
    file: Optional[Path] = typer.Argument(None, help="JSONL input (default: standard input)."),
    provider: Optional[str] = typer.Option(None, help="Provider whose tiers to use (default: from each line's shape)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Settings YAML (router model, policy)."),
) -> None:
    """Score JSONL lines ({"prompt": ...} or request bodies) with the service's router; one JSON line out per line in."""
    from nadir_extproc.config import ConfigError, load_settings
    from nadir_extproc.routing.onnx_router import load_router

    try:
        settings = load_settings(config)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    router = load_router(settings.policy(), settings.router_model, settings.router)
    if file is None:
        errors = score_stream(sys.stdin, sys.stdout, router, provider)
    else:
        with file.open(encoding="utf-8") as f:
            errors = score_stream(f, sys.stdout, router, provider)
    raise typer.Exit(1 if errors else 0)
