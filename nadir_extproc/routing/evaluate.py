"""Router evaluation: AUC and the routing curve (share of strong-model calls vs quality gap recovered).

Definitions (RouteLLM, Ong et al. 2024, "RouteLLM: Learning to Route LLMs with Preference Data"):

- A router with scores ``s`` sends the top-scored share ``x`` of prompts to the strong model and the
  rest to the weak one. Its quality is the share of prompts answered correctly by the model they were
  sent to. **PGR(x)** (performance gap recovered) = (quality(x) − quality(weak only)) /
  (quality(strong only) − quality(weak only)).
- Equal scores are a tie block: routing part of a block is valued at its expectation under a random
  order, so the curve is linear inside a block. A random router (every score equal) is the diagonal
  PGR(x) = x exactly; the rule router (scores 1/0) is two straight segments.
- **APGR** = area under PGR(x) for x from 0 to 1 (trapezoids, exact for this piecewise-linear curve).
- **CPT(p)** = the smallest share of strong calls whose PGR reaches ``p`` (0.5 and 0.8 reported).
- **AUC** = P(score of a "strong needed" prompt > score of another prompt), ties counting one half
  (Mann-Whitney).

``run_eval`` scores the held-out split (``data.split``) with the ONNX router (the same ``OnnxScorer``
path as the service), the rule router and a random router, and writes a Markdown table, a JSON
file and a PNG plot (matplotlib, from the ``train`` extra).

Given a hand-labelled chat set (``chat_prompts``: JSONL ``{"prompt", "label": 0 easy | 1 hard,
"kind"}``, labelling rule in ``docs/router-eval/README.md``), it also reports how the default
policy (``TierPolicy()``: thresholds and tiers) routes everyday chat prompts — the format the
benchmark labels barely cover — for a provider with a mid model (OpenAI) and for one without
(Anthropic, Google: the mid band goes to strong), plus a sweep of the mid threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC of scores ``s`` for binary labels ``y`` (ties count 1/2); ``nan`` when one
    class is empty."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


@dataclass(frozen=True)
class Curve:
    """A routing curve: ``x`` share of strong calls, ``pgr`` at each point (both float64, from
    x = 0 to 1, piecewise linear between points)."""

    x: np.ndarray
    pgr: np.ndarray

    def apgr(self) -> float:
        """Area under the curve over x in [0, 1]."""
        return float(np.sum((self.x[1:] - self.x[:-1]) * (self.pgr[1:] + self.pgr[:-1]) / 2.0))

    def cpt(self, p: float) -> float:
        """Smallest x with PGR(x) >= ``p`` (linear inside a segment); ``nan`` if never reached."""
        for k in range(len(self.x)):
            if self.pgr[k] >= p:
                if k == 0:
                    return float(self.x[0])
                x0, x1, y0, y1 = self.x[k - 1], self.x[k], self.pgr[k - 1], self.pgr[k]
                return float(x0 + (p - y0) * (x1 - x0) / (y1 - y0))
        return float("nan")

    def at(self, x: float) -> float:
        """PGR at share ``x`` (linear interpolation)."""
        return float(np.interp(x, self.x, self.pgr))


def routing_curve(scores: np.ndarray, strong_ok: np.ndarray, weak_ok: np.ndarray) -> Curve:
    """The routing curve of ``scores`` (module docstring). Raises ``ValueError`` when the strong and
    weak models are equally good on these rows (PGR undefined)."""
    s = np.asarray(scores, dtype=np.float64)
    gain = np.asarray(strong_ok, dtype=np.float64) - np.asarray(weak_ok, dtype=np.float64)
    total = gain.sum()
    if total == 0:
        raise ValueError("strong and weak models have the same quality here: PGR is undefined")
    order = np.argsort(-s, kind="mergesort")
    ss, gg = s[order], gain[order]
    n = len(s)
    xs, ys = [0.0], [0.0]
    cum, i = 0.0, 0
    while i < n:
        j = i
        while j + 1 < n and ss[j + 1] == ss[i]:
            j += 1
        cum += gg[i : j + 1].sum()
        xs.append((j + 1) / n)
        ys.append(cum / total)
        i = j + 1
    return Curve(np.array(xs), np.array(ys))


def summarise(y, scores, strong_ok, weak_ok, threshold: float | None = None) -> dict[str, float]:
    """``auc``, ``apgr``, ``cpt50``, ``cpt80`` (and, given a ``threshold``, the strong-call share and
    PGR of routing ``score >= threshold`` to the strong model)."""
    c = routing_curve(scores, strong_ok, weak_ok)
    out = {"auc": auc(y, scores), "apgr": c.apgr(), "cpt50": c.cpt(0.5), "cpt80": c.cpt(0.8)}
    if threshold is not None:
        share = float(np.mean(np.asarray(scores) >= threshold))
        out["strong_share_at_threshold"] = share
        out["pgr_at_threshold"] = float(
            (np.where(np.asarray(scores) >= threshold, strong_ok, weak_ok).mean() - np.mean(weak_ok))
            / (np.mean(strong_ok) - np.mean(weak_ok))
        )
    return out


def read_chat_set(path: Path) -> list[dict[str, Any]]:
    """Rows of a chat prompt set (JSONL ``{"prompt": str, "label": 0|1, "kind": str}``).

    Raises ``ValueError`` naming the line when a row lacks a string prompt or a 0/1 label."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or row.get("label") not in (0, 1):
            raise ValueError(f"{path}:{n}: need a string 'prompt' and 'label' 0 or 1")
        rows.append(row)
    return rows


#: Mid thresholds compared in the report's sweep (strong threshold as in the default policy).
MID_SWEEP = (0.25, 0.3, 0.35, 0.4)


def chat_summary(rows: list[dict[str, Any]], scores: np.ndarray, policy: Any,
                 held_out: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """How ``policy`` routes a labelled chat set with these ``scores`` (one per row).

    Returns ``auc``; ``by_provider``: provider -> ``{"easy": {tier: n}, "hard": {tier: n}}`` for
    ``openai`` (has a mid tier) and ``anthropic`` (no mid tier: the mid band goes to strong), the
    final tier of ``policy.pick``; and ``mid_sweep``: for each mid threshold in ``MID_SWEEP``, easy
    prompts sent weak, hard prompts sent weak (both counts), and, given ``held_out`` (set name ->
    scores), the share of each held-out set at or above that threshold (= sent strong by a provider
    without a mid model)."""
    from nadir_extproc.routing.policy import TierPolicy

    y = np.array([r["label"] for r in rows])
    out: dict[str, Any] = {"rows": len(rows), "hard": int(y.sum()), "auc": auc(y, scores), "by_provider": {}}
    for provider in ("openai", "anthropic"):
        tally: dict[str, dict[str, int]] = {"easy": {}, "hard": {}}
        for lab, sc in zip(y, scores):
            tier = policy.pick(provider, policy.tier_for_score(float(sc))).tier
            d = tally["hard" if lab else "easy"]
            d[tier] = d.get(tier, 0) + 1
        out["by_provider"][provider] = tally
    sweep = []
    for t in MID_SWEEP:
        th = dict(policy.thresholds)
        th["mid"] = t
        p = TierPolicy(tiers=policy.tiers, thresholds=th)
        weak = np.array([p.tier_for_score(float(sc)) == "weak" for sc in scores])
        row: dict[str, Any] = {"mid": t, "easy_weak": int((weak & (y == 0)).sum()), "hard_weak": int((weak & (y == 1)).sum())}
        for name, hs in (held_out or {}).items():
            row[name] = float(np.mean(np.asarray(hs) >= t))
        sweep.append(row)
    out["mid_sweep"] = sweep
    return out


def run_eval(data_dir: Path, out_dir: Path, model_path: Path | None = None, seed: int | None = None, log=print,
             chat_prompts: Path | None = None) -> dict[str, Any]:
    """Evaluate on the held-out split and write ``report.md``, ``metrics.json`` and
    ``routing_curve.png`` into ``out_dir``; returns the metrics. ``chat_prompts``: a labelled chat
    set (``read_chat_set``) to report the default policy's routing of everyday prompts on
    (``chat_summary``); skipped when ``None`` or absent.

    ``seed`` defaults to the seed recorded in the model's metadata (so the split is the one the
    model was held out from). Raises ``FileNotFoundError`` when the data is missing and
    ``onnx_router.ModelError`` when the model cannot be loaded."""
    from nadir_extproc.routing.base import RouteRequest
    from nadir_extproc.routing.data import labelled, split, weakly_labelled
    from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, OnnxScorer
    from nadir_extproc.routing.policy import TierPolicy
    from nadir_extproc.routing.rules import RuleRouter

    scorer = OnnxScorer(model_path or DEFAULT_MODEL_PATH)
    if seed is None:
        seed = int(scorer.metadata.get("seed", "0"))
    _, test = split(labelled(data_dir) + weakly_labelled(data_dir), seed)
    policy = TierPolicy()
    rules = RuleRouter(policy)
    threshold = policy.thresholds["strong"]
    sets = {
        "MMLU, held-out subjects": [e for e in test if e.source == "mmlu"],
        "GSM8K (held-out source)": [e for e in test if e.source == "gsm8k"],
        "all held-out": test,
    }
    onnx_scores = {id(e): s for e, s in zip(test, scorer.score_many([e.prompt for e in test]))}
    rule_scores = {
        id(e): rules.route(RouteRequest("openai", "openai_chat", e.prompt)).score for e in test
    }
    metrics: dict[str, Any] = {"seed": seed, "model": scorer.metadata, "threshold_strong": threshold, "sets": {}}
    curves: dict[str, dict[str, Curve]] = {}
    for name, rows in sets.items():
        y = np.array([e.label for e in rows])
        so = np.array([e.strong_ok for e in rows], dtype=float)
        wo = np.array([e.weak_ok for e in rows], dtype=float)
        per: dict[str, Any] = {
            "rows": len(rows),
            "strong_needed": int(y.sum()),
            "quality_strong": float(so.mean()),
            "quality_weak": float(wo.mean()),
        }
        curves[name] = {}
        for router, sc in (
            ("onnx", np.array([onnx_scores[id(e)] for e in rows])),
            ("rules", np.array([rule_scores[id(e)] for e in rows])),
            ("random", np.zeros(len(rows))),
        ):
            per[router] = summarise(y, sc, so, wo, threshold if router != "random" else None)
            curves[name][router] = routing_curve(sc, so, wo)
        metrics["sets"][name] = per
        log(f"{name}: " + ", ".join(f"{r} AUC {per[r]['auc']:.3f} APGR {per[r]['apgr']:.3f}" for r in ("onnx", "rules", "random")))
    metrics["thresholds"] = dict(policy.thresholds)
    if chat_prompts is not None and chat_prompts.is_file():
        rows = read_chat_set(chat_prompts)
        held = {name: np.array([onnx_scores[id(e)] for e in rs]) for name, rs in sets.items() if name != "all held-out"}
        metrics["chat"] = chat_summary(rows, scorer.score_many([r["prompt"] for r in rows]), policy, held)
        metrics["chat"]["file"] = chat_prompts.name
        log(f"chat set: AUC {metrics['chat']['auc']:.3f}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(_table(metrics), encoding="utf-8")
    _plot(curves, out_dir / "routing_curve.png")
    return metrics


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f} %"


def _table(m: dict[str, Any]) -> str:
    lines = [
        "# Router evaluation: held-out split (by subject/source)",
        "",
        f"Made by `.venv/bin/nadir-extproc router eval --out docs/router-eval` (from the repo root; model "
        f"`{m['model'].get('version', '?')}`, split seed {m['seed']}). How to read it: `README.md` here.",
        "",
        f"| held-out set | rows | strong needed | router | AUC | APGR | CPT(50 %) | CPT(80 %) | strong calls at score ≥ {m['threshold_strong']} | PGR there |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per in m["sets"].items():
        for r in ("onnx", "rules", "random"):
            x = per[r]
            lines.append(
                f"| {name} | {per['rows']} | {per['strong_needed']} | {r} | {x['auc']:.3f} | {x['apgr']:.3f} | "
                f"{_pct(x['cpt50'])} | {_pct(x['cpt80'])} | "
                f"{_pct(x['strong_share_at_threshold']) if 'strong_share_at_threshold' in x else '—'} | "
                f"{_pct(x['pgr_at_threshold']) if 'pgr_at_threshold' in x else '—'} |"
            )
    q = "\n".join(
        f"- {name}: quality strong-only {per['quality_strong']:.3f}, weak-only {per['quality_weak']:.3f}"
        for name, per in m["sets"].items()
    )
    return "\n".join(lines) + "\n\n" + q + "\n" + (_chat_table(m) if "chat" in m else "")


def _tiers(d: dict[str, int]) -> str:
    return " / ".join(str(d.get(t, 0)) for t in ("weak", "mid", "strong"))


def _chat_table(m: dict[str, Any]) -> str:
    c = m["chat"]
    th = m.get("thresholds", {})
    n_easy, n_hard = c["rows"] - c["hard"], c["hard"]
    lines = [
        "",
        f"## Chat-style prompts (`{c['file']}`: {n_easy} easy, {n_hard} hard, labelled by hand)",
        "",
        f"AUC {c['auc']:.3f}. Default thresholds: mid ≥ {th.get('mid')}, strong ≥ {th.get('strong')}. "
        "Final tier (weak / mid / strong) after the default policy:",
        "",
        "| provider | easy prompts | hard prompts |",
        "|---|---|---|",
    ]
    for prov, label in (("openai", "openai (has a mid model)"), ("anthropic", "anthropic, google (no mid model: mid → strong)")):
        t = c["by_provider"][prov]
        lines.append(f"| {label} | {_tiers(t['easy'])} | {_tiers(t['hard'])} |")
    held = [k for k in c["mid_sweep"][0] if k not in ("mid", "easy_weak", "hard_weak")]
    lines += [
        "",
        "Mid-threshold sweep (a score below it goes to the weak tier; at or above it, a provider "
        "without a mid model goes strong):",
        "",
        "| mid threshold | easy → weak | hard → weak | " + " | ".join(f"{h}: share ≥ it" for h in held) + " |",
        "|---:|---:|---:|" + "---:|" * len(held),
    ]
    for r in c["mid_sweep"]:
        lines.append(f"| {r['mid']} | {r['easy_weak']} of {n_easy} | {r['hard_weak']} of {n_hard} | "
                     + " | ".join(_pct(r[h]) for h in held) + " |")
    return "\n".join(lines) + "\n"


def _plot(curves: dict[str, dict[str, Curve]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.2), dpi=100)
    for ax, (name, cs) in zip(np.atleast_1d(axes), curves.items()):
        for router, style in (("onnx", "-"), ("rules", "--"), ("random", ":")):
            c = cs[router]
            ax.plot(100 * c.x, 100 * c.pgr, style, label=f"{router} (APGR {c.apgr():.3f})")
        ax.set_title(name)
        ax.set_xlabel("strong-model calls (%)")
        ax.set_ylabel("quality gap recovered (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
