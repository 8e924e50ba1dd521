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

``run_eval`` (``nadir-extproc router eval``) measures any set of scorers (``BUILTIN_SCORERS``: the
training recipe cross-validated, the shipped model, the rule router, prompt length, random; or
``onnx:PATH``) on each labelled data set (MMLU, GSM8K, arena-bench-v1: ``data.load``) with
bootstrap confidence intervals and per category, checks the shipped model on prompts outside the
data (``dev_checks``), measures fixed scorers on external sets handed to it (``read_external``,
``external_summary``: e.g. MT-bench-style questions with two models' judge scores; measured only,
never trained or calibrated on) and writes a Markdown report, a JSON file and a PNG of the curves
(matplotlib, from the ``train`` extra).

Quality may be correctness (0/1) or a judge score (1-10, arena-bench-v1): PGR is defined the same way.
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
        hit = np.flatnonzero(self.pgr >= p)
        if hit.size == 0:
            return float("nan")
        k = int(hit[0])
        if k == 0:
            return float(self.x[0])
        x0, x1, y0, y1 = self.x[k - 1], self.x[k], self.pgr[k - 1], self.pgr[k]
        return float(x0 + (p - y0) * (x1 - x0) / (y1 - y0))

    def at(self, x: float) -> float:
        """PGR at share ``x`` (linear interpolation)."""
        return float(np.interp(x, self.x, self.pgr))


def routing_curve(scores: np.ndarray, strong_ok: np.ndarray, weak_ok: np.ndarray) -> Curve:
    """The routing curve of ``scores`` (module docstring); ``strong_ok``/``weak_ok`` are each
    model's quality per prompt (correctness 0/1 or a judge score). Raises ``ValueError`` when the
    strong and weak models are equally good on these rows (PGR undefined)."""
    s = np.asarray(scores, dtype=np.float64)
    gain = np.asarray(strong_ok, dtype=np.float64) - np.asarray(weak_ok, dtype=np.float64)
    total = gain.sum()
    if total == 0:
        raise ValueError("strong and weak models have the same quality here: PGR is undefined")
    order = np.argsort(-s, kind="mergesort")
    ss, gg = s[order], gain[order]
    n = len(s)
    ends = np.flatnonzero(np.append(ss[1:] != ss[:-1], True))  # last index of each tie block
    cum = np.cumsum(gg)[ends]
    return Curve(np.concatenate(([0.0], (ends + 1) / n)), np.concatenate(([0.0], cum / total)))


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

    Returns ``auc``; ``by_kind``: kind -> ``[n on the intended side, n]`` (an easy prompt in the weak
    tier, a hard one in the strong tier, under ``policy``'s thresholds); ``by_provider``: provider -> ``{"easy": {tier: n}, "hard": {tier: n}}`` for
    ``openai`` (has a mid tier) and ``anthropic`` (no mid tier: the mid band goes to strong), the
    final tier of ``policy.pick``; and ``mid_sweep``: for each mid threshold in ``MID_SWEEP``, easy
    prompts sent weak, hard prompts sent weak (both counts), and, given ``held_out`` (set name ->
    scores), the share of each held-out set at or above that threshold (= sent strong by a provider
    without a mid model)."""
    from nadir_extproc.routing.policy import TierPolicy

    y = np.array([r["label"] for r in rows])
    out: dict[str, Any] = {"rows": len(rows), "hard": int(y.sum()), "auc": auc(y, scores), "by_provider": {}, "by_kind": {}}
    for r, lab, sc in zip(rows, y, scores):
        # kind -> [rows on the intended side (easy: weak tier; hard: strong tier, OpenAI policy), rows]
        tier = policy.tier_for_score(float(sc))
        k = out["by_kind"].setdefault(str(r.get("kind", "?")), [0, 0])
        k[0] += int(tier == ("strong" if lab else "weak"))
        k[1] += 1
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


# --------------------------------------------------------------------------------------------------
# Scorers: anything that maps prompt texts to scores (higher = more in need of the strong model).

#: Built-in scorer names of ``router eval`` (besides ``onnx:PATH``).
BUILTIN_SCORERS = ("cv", "shipped", "rules", "length", "random")
#: Also accepted: ``cv-difficulty`` — the recipe trained on the ``difficulty`` label rule, cross-validated.
SCORER_HELP = {
    "cv": "the training recipe, cross-validated: each prompt scored by a model trained without its fold",
    "cv-difficulty": "the same recipe trained on the difficulty label (the weak side fails) instead of gap, cross-validated",
    "shipped": "the shipped model (trained on all of this data: in-sample, optimistic)",
    "rules": "the rule router (1 strong / 0 weak)",
    "length": "prompt length in characters",
    "random": "all scores equal (the diagonal)",
}


def fixed_scorer(name: str):
    """``(score_many, in_sample)`` for a scorer that needs no training: ``shipped``, ``onnx:PATH``,
    ``rules``, ``length``, ``random``. ``score_many(texts) -> float64 (len,)``. Raises ``ValueError``
    for an unknown name and ``onnx_router.ModelError`` for a model that does not load."""
    if name == "shipped" or name.startswith("onnx:"):
        from nadir_extproc.routing.onnx_router import DEFAULT_MODEL_PATH, OnnxScorer

        sc = OnnxScorer(DEFAULT_MODEL_PATH if name == "shipped" else Path(name[5:]))
        return sc.score_many, name == "shipped"
    if name == "rules":
        from nadir_extproc.routing.base import RouteRequest
        from nadir_extproc.routing.policy import TierPolicy
        from nadir_extproc.routing.rules import RuleRouter

        r = RuleRouter(TierPolicy())
        return (lambda texts: np.array([r.route(RouteRequest("openai", "openai_chat", t)).score for t in texts], dtype=np.float64)), False
    if name == "length":
        return (lambda texts: np.array([len(t) for t in texts], dtype=np.float64)), False
    if name == "random":
        return (lambda texts: np.zeros(len(texts))), False
    raise ValueError(f"unknown scorer {name!r} (one of {', '.join(BUILTIN_SCORERS)} or onnx:PATH)")


def bootstrap(groups: np.ndarray, scores: np.ndarray, strong_q: np.ndarray, weak_q: np.ndarray,
              n: int, seed: int) -> dict[str, list[float]]:
    """95 % percentile intervals of APGR, CPT(50 %), CPT(80 %) by resampling ``groups`` (whole
    groups with replacement: MMLU subjects, single prompts elsewhere) ``n`` times, seeded.
    Returns ``{"apgr": [lo, hi], "cpt50": [...], "cpt80": [...]}`` (resamples without a quality gap
    are skipped)."""
    rnd = np.random.default_rng(seed)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    vals: dict[str, list[float]] = {"apgr": [], "cpt50": [], "cpt80": []}
    for _ in range(n):
        pick = rnd.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        try:
            c = routing_curve(scores[idx], strong_q[idx], weak_q[idx])
        except ValueError:
            continue
        if c.pgr[-1] <= 0:
            continue
        vals["apgr"].append(c.apgr())
        vals["cpt50"].append(c.cpt(0.5))
        vals["cpt80"].append(c.cpt(0.8))
    return {k: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))] if v else [float("nan")] * 2
            for k, v in vals.items()}


def read_external(path: Path) -> list[dict[str, Any]]:
    """Rows of an external evaluation set: JSONL, one object per line with a string ``prompt`` (what
    the router scores: the first user turn), numbers ``strong`` and ``weak`` (the quality of each
    model's answer: correctness 0/1 or a judge score, e.g. the mean over an MT-bench question's two
    turns) and optionally a string ``category``; other keys are kept. Blank lines are skipped.

    Raises ``ValueError`` naming the line for a row without those fields, and when the file has no
    row or the two models have the same total quality (PGR undefined)."""
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e})") from None
        ok = isinstance(row, dict) and isinstance(row.get("prompt"), str) and all(
            isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool) for k in ("strong", "weak"))
        if not ok or not isinstance(row.get("category", ""), str):
            raise ValueError(f"{path}:{n}: need a string 'prompt', numbers 'strong' and 'weak' (optional string 'category')")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    if sum(float(r["strong"]) for r in rows) == sum(float(r["weak"]) for r in rows):
        raise ValueError(f"{path}: strong and weak have the same total quality: PGR is undefined")
    return rows


def external_summary(rows: list[dict[str, Any]], scores: dict[str, np.ndarray], n_boot: int, seed: int,
                     thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Routing metrics of each scorer (name -> scores aligned with ``rows``) on an external set.

    Returns ``{"rows", "quality_strong", "quality_weak", "scorers": {name: {"apgr", "cpt50",
    "cpt80", "ci95"}}, "categories": {category: {"rows", "gap", "quality_strong", "quality_weak",
    name: {"apgr", "cpt50", "cpt80", "mean_score", "share_ge_mid", "share_ge_strong"} | None}}}``.
    ``ci95`` resamples single prompts (``bootstrap``, ``n_boot`` times, seeded; ``None`` for a
    scorer whose scores are all equal). A category whose models have the same total quality has
    ``None`` routing figures; rows without a category are in no category. The ``share_ge_*`` fields
    (share of the category at or above ``thresholds[mid|strong]``) are given with ``thresholds``."""
    so = np.array([float(r["strong"]) for r in rows])
    wo = np.array([float(r["weak"]) for r in rows])
    out: dict[str, Any] = {"rows": len(rows), "quality_strong": float(so.mean()), "quality_weak": float(wo.mean()),
                           "scorers": {}, "categories": {}}
    groups = np.array([str(i) for i in range(len(rows))])
    for name, sc in scores.items():
        sc = np.asarray(sc, dtype=np.float64)
        c = routing_curve(sc, so, wo)
        out["scorers"][name] = {"apgr": c.apgr(), "cpt50": c.cpt(0.5), "cpt80": c.cpt(0.8),
                                "ci95": None if np.all(sc == sc[0]) else bootstrap(groups, sc, so, wo, n_boot, seed)}
    cats = sorted({r["category"] for r in rows if r.get("category")})
    for cat in cats:
        idx = np.array([i for i, r in enumerate(rows) if r.get("category") == cat])
        row: dict[str, Any] = {"rows": int(idx.size), "gap": float(so[idx].mean() - wo[idx].mean()),
                               "quality_strong": float(so[idx].mean()), "quality_weak": float(wo[idx].mean())}
        for name, sc in scores.items():
            sc = np.asarray(sc, dtype=np.float64)[idx]
            try:
                c = routing_curve(sc, so[idx], wo[idx])
                row[name] = {"apgr": c.apgr(), "cpt50": c.cpt(0.5), "cpt80": c.cpt(0.8), "mean_score": float(sc.mean())}
            except ValueError:
                row[name] = None
                continue
            if thresholds:
                row[name]["share_ge_mid"] = float(np.mean(sc >= thresholds["mid"])) if "mid" in thresholds else None
                row[name]["share_ge_strong"] = float(np.mean(sc >= thresholds["strong"])) if "strong" in thresholds else None
        out["categories"][cat] = row
    return out


#: Display names of the evaluated data sets (``data.Example.source``).
SET_NAMES = {
    "arena": "arena-bench-v1 (chat; GPT-4-1106 vs Mixtral judge scores)",
    "gsm8k": "GSM8K (GPT-4-1106 vs Mixtral correctness)",
    "mmlu": "MMLU (GPT-4-1106 vs Mixtral correctness)",
}


def dev_checks(score_many, policy: Any, data_dir: Path, chat_prompts: Path | tuple[Path, ...] | list[Path] | None) -> dict[str, Any]:
    """Out-of-sample checks on prompts no model here trains on: the hand-labelled chat sets
    ``chat_prompts`` (one path or several; absent files skipped; AUC, per-kind counts and tiers of
    easy/hard prompts under ``policy``: ``chat_sets``, the first also as ``chat``), arena-hard v2.0 categories (AUC of math and coding
    prompts over creative-writing ones: the category structure of chat benchmarks, where the strong
    model's lead is in math/reasoning/coding), and the demo's prompts (score and tier each)."""
    from nadir_extproc.demo import PROMPTS

    out: dict[str, Any] = {}
    paths = [chat_prompts] if isinstance(chat_prompts, Path) else list(chat_prompts or ())
    for path in paths:
        if not path.is_file():
            continue
        rows = read_chat_set(path)
        summary = chat_summary(rows, score_many([r["prompt"] for r in rows]), policy)
        summary["file"] = path.name
        out.setdefault("chat", summary)
        out.setdefault("chat_sets", []).append(summary)
    p = data_dir / "arena_hard_v2.0_question.jsonl"
    if p.is_file():
        rows = [json.loads(x) for x in p.read_text(encoding="utf-8").split("\n") if x.strip()]
        sc = score_many([r["prompt"] for r in rows])
        cat = np.array([str(r.get("subcategory") or r.get("category")) for r in rows])
        w = sc[cat == "creative_writing"]
        out["arena_hard_categories"] = {
            c: auc(np.r_[np.ones((cat == c).sum()), np.zeros(w.size)], np.r_[sc[cat == c], w])
            for c in ("math", "coding") if (cat == c).any() and w.size
        }
    demo = []
    for dialect, prompt in PROMPTS:
        s = float(score_many([prompt])[0])
        tier = policy.tier_for_score(s)
        demo.append({"prompt": prompt if len(prompt) < 90 else prompt[:87] + "…", "dialect": dialect, "score": s,
                     "tier": tier, "two_tier_provider": policy.pick("anthropic", tier).tier})
    out["demo"] = demo
    return out


def run_eval(data_dir: Path, out_dir: Path, scorers: tuple[str, ...] = BUILTIN_SCORERS, seed: int | None = None,
             n_boot: int = 500, log=print, chat_prompts: Path | tuple[Path, ...] | None = None,
             calibration: Path | None = None, external: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Evaluate ``scorers`` on MMLU, GSM8K and arena-bench-v1 and write ``report.md``,
    ``metrics.json`` and ``routing_curve.png`` into ``out_dir``; returns the metrics.

    ``cv`` runs the training recipe under ``train.K``-fold cross-validation (``train.cross_validate``,
    seed ``seed`` or the shipped model's) — the honest figures; fixed scorers score every prompt.
    Per set: AUC, APGR, CPT(50 %), CPT(80 %) with bootstrap 95 % intervals (``bootstrap``, ``n_boot``
    resamples), and a per-category table. ``calibration`` (default ``model/calibration.json``): the
    thresholds' strong share and PGR per set for the ``cv`` scores. Checks on prompts outside the
    data (``dev_checks``) use the shipped model. Each file of ``external`` (``read_external``) is
    scored by the fixed scorers only (the cross-validated recipes score the data's own rows; to
    measure a trained candidate on an external set, pass it as ``onnx:PATH``) and summarised by
    ``external_summary`` under ``metrics["external"][file stem]``: a measurement, never an input to
    training, thresholds or model choice. Raises ``FileNotFoundError`` when data is missing,
    ``ValueError`` for an unknown scorer or a malformed external file."""
    from nadir_extproc.routing import train as tr
    from nadir_extproc.routing.data import CATEGORY_SOURCES, SOURCES, load_all
    from nadir_extproc.routing.policy import TierPolicy

    model_dir = Path(__file__).parent / "model"
    calibration = calibration or model_dir / "calibration.json"
    fixed = {n: fixed_scorer(n) for n in scorers if n not in ("cv", "cv-difficulty")}
    seed_given = seed
    if seed is None:
        seed = tr.DEFAULT_SEED
        if "shipped" in fixed:
            from nadir_extproc.routing.onnx_router import OnnxScorer

            seed = int(OnnxScorer().metadata.get("seed", seed))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        examples, x, _ = tr.prepare(data_dir, Path(tmp) / "tokenizer.json")
    texts = [e.prompt for e in examples]
    all_scores: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {"seed": seed, "k": tr.K, "bootstrap": n_boot, "scorers": {}, "sets": {}, "categories": {},
                               "command": eval_command(out_dir, scorers, n_boot, external, seed_given)}
    for name in scorers:
        if name in ("cv", "cv-difficulty"):
            log(f"cross-validating the recipe, {name} ({tr.K} folds, selection inside each fold) …")
            train_rows = examples if name == "cv" else load_all(data_dir, "difficulty")
            oof, _, info = tr.cross_validate(train_rows, x, seed, log=log)
            all_scores[name] = oof
            metrics["scorers"][name] = {"help": SCORER_HELP[name], "in_sample": False, "folds": info}
        else:
            fn, in_sample = fixed[name]
            all_scores[name] = np.asarray(fn(texts), dtype=np.float64)
            metrics["scorers"][name] = {"help": SCORER_HELP.get(name, f"the ONNX model {name[5:]}"), "in_sample": in_sample}
    curves: dict[str, dict[str, Curve]] = {}
    for s in SOURCES:
        idx = np.array([i for i, e in enumerate(examples) if e.source == s and e.strong_q is not None])
        if idx.size == 0:
            continue
        so = np.array([examples[i].strong_q for i in idx])
        wo = np.array([examples[i].weak_q for i in idx])
        y = np.array([examples[i].label for i in idx])
        groups = np.array([examples[i].group if s == "mmlu" else str(i) for i in idx])
        per: dict[str, Any] = {"rows": int(idx.size), "quality_strong": float(so.mean()), "quality_weak": float(wo.mean()),
                               "label_positive": int(y.sum())}
        curves[s] = {}
        for name, sc in all_scores.items():
            c = routing_curve(sc[idx], so, wo)
            curves[s][name] = c
            per[name] = {"auc": auc(y, sc[idx]), "apgr": c.apgr(), "cpt50": c.cpt(0.5), "cpt80": c.cpt(0.8),
                         "ci95": bootstrap(groups, sc[idx], so, wo, n_boot, seed) if name != "random" else None}
        metrics["sets"][s] = per
        log(f"{s}: " + ", ".join(f"{n} APGR {per[n]['apgr']:.3f} CPT50 {per[n]['cpt50']:.3f}" for n in all_scores))
    cats = sorted({e.category for e in examples if e.category and e.strong_q is not None})
    for cat in cats:
        idx = np.array([i for i, e in enumerate(examples) if e.category == cat and e.strong_q is not None])
        so = np.array([examples[i].strong_q for i in idx])
        wo = np.array([examples[i].weak_q for i in idx])
        row: dict[str, Any] = {"rows": int(idx.size), "sources": sorted({examples[i].source for i in idx}),
                               "gap": float(so.mean() - wo.mean())}
        for name, sc in all_scores.items():
            try:
                c = routing_curve(sc[idx], so, wo)
                row[name] = {"apgr": c.apgr(), "cpt50": c.cpt(0.5)}
            except ValueError:
                row[name] = None
        metrics["categories"][cat] = row
    # Category-labelled prompts (no model answers): how each scorer ranks a category's prompts
    # against writing/roleplay ones (AUC) and what share it sends strong at the default thresholds.
    # For cv these are out-of-fold scores (the rows are in the folds like every other row).
    pol0 = TierPolicy()
    ccat: dict[str, Any] = {}
    crows = [i for i, e in enumerate(examples) if e.source in CATEGORY_SOURCES]
    for cat in sorted({examples[i].category for i in crows}):
        idx = np.array([i for i in crows if examples[i].category == cat])
        low = np.array([i for i in crows if examples[i].category in ("writing", "roleplay")])
        row = {"rows": int(idx.size), "label": int(examples[idx[0]].label),
               "sources": sorted({examples[i].source for i in idx})}
        for name, sc in all_scores.items():
            row[name] = {"mean_score": float(sc[idx].mean()),
                         "auc_vs_writing_roleplay": auc(np.r_[np.ones(idx.size), np.zeros(low.size)], np.r_[sc[idx], sc[low]])
                         if cat not in ("writing", "roleplay") else None,
                         "share_ge_mid": float(np.mean(sc[idx] >= pol0.thresholds["mid"])),
                         "share_ge_strong": float(np.mean(sc[idx] >= pol0.thresholds["strong"]))}
        ccat[cat] = row
    metrics["category_labelled"] = ccat
    if calibration.is_file() and "cv" in all_scores:
        cal = json.loads(calibration.read_text(encoding="utf-8"))
        th = cal["thresholds"]
        at: dict[str, Any] = {}
        for s, per in metrics["sets"].items():
            idx = np.array([i for i, e in enumerate(examples) if e.source == s and e.strong_q is not None])
            sc = all_scores["cv"][idx]
            so = np.array([examples[i].strong_q for i in idx])
            wo = np.array([examples[i].weak_q for i in idx])
            at[s] = {}
            for tier in ("mid", "strong"):
                if tier in th:
                    strong = sc >= th[tier]
                    q = np.where(strong, so, wo).mean()
                    at[s][tier] = {"strong_share": float(strong.mean()), "pgr": float((q - wo.mean()) / (so.mean() - wo.mean()))}
        metrics["calibration"] = {**cal, "at_thresholds_cv": at}
    policy = TierPolicy()
    metrics["thresholds"] = dict(policy.thresholds)
    for name in ("shipped",) + tuple(n for n in scorers if n.startswith("onnx:")):
        if name in fixed:
            metrics.setdefault("checks", {})[name] = dev_checks(fixed[name][0], policy, data_dir, chat_prompts)
    for path in external:
        rows = read_external(path)
        texts_x = [r["prompt"] for r in rows]
        xs = {name: np.asarray(fixed[name][0](texts_x), dtype=np.float64) for name in scorers if name in fixed}
        summary = external_summary(rows, xs, n_boot, seed, dict(policy.thresholds))
        summary["file"] = path.name
        summary["not_scored"] = [n for n in scorers if n not in fixed]
        metrics.setdefault("external", {})[path.stem] = summary
        so = np.array([float(r["strong"]) for r in rows])
        wo = np.array([float(r["weak"]) for r in rows])
        curves[f"{path.stem} (external, measured only)"] = {n: routing_curve(sc, so, wo) for n, sc in xs.items()}
        log(f"external {path.stem}: " + ", ".join(f"{n} APGR {v['apgr']:.3f} CPT50 {v['cpt50']:.3f}"
                                                 for n, v in summary["scorers"].items()))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(_report(metrics), encoding="utf-8")
    _plot(curves, out_dir / "routing_curve.png")
    return metrics


def eval_command(out_dir: Path, scorers: tuple[str, ...], n_boot: int = 500, external: tuple[Path, ...] = (),
                 seed: int | None = None) -> str:
    """The ``router eval`` command line that makes a report with these arguments (the report's
    "Made by" line): ``--out`` as given, every ``-s``, and ``--seed`` / ``--bootstrap`` / ``-x`` only
    when they differ from the defaults (seed: the shipped model's; 500 resamples; no external set)."""
    parts = [".venv/bin/nadir-extproc router eval", f"--out {out_dir}"]
    parts += [f"-s {n}" for n in scorers]
    if seed is not None:
        parts.append(f"--seed {seed}")
    if n_boot != 500:
        parts.append(f"--bootstrap {n_boot}")
    parts += [f"-x {p}" for p in external]
    return " ".join(parts)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f} %"


def _ci(ci: list[float] | None, pct: bool) -> str:
    if not ci:
        return ""
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    return f" [{f(ci[0])}–{f(ci[1])}]"


def _report(m: dict[str, Any]) -> str:
    L = [
        "# Router evaluation: cost–quality curves, cross-validated",
        "",
        "Made by `" + m.get("command", eval_command(Path("docs/router-eval"), tuple(m["scorers"]), 500,
                                                    tuple(Path(x["file"]) for x in m.get("external", {}).values())))
        + "` (repo root, `train` extra, "
        f"`../shared/data/prompts` present); {m['k']}-fold cross-validation, seed {m['seed']}, "
        f"{m['bootstrap']} bootstrap resamples (MMLU resampled by subject). How to read it: `README.md` here.",
        "",
        "Scorers: " + "; ".join(f"**{n}** — {v['help']}" for n, v in m["scorers"].items()) + ".",
        "",
        "## Per data set (95 % bootstrap intervals in brackets)",
        "",
        "| data set | rows | scorer | AUC | APGR | CPT(50 %) | CPT(80 %) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for s, per in m["sets"].items():
        for n in m["scorers"]:
            x = per[n]
            ci = x["ci95"] or {}
            L.append(f"| {SET_NAMES.get(s, s)} | {per['rows']} | {n} | {x['auc']:.3f} | {x['apgr']:.3f}{_ci(ci.get('apgr'), False)} | "
                     f"{_pct(x['cpt50'])}{_ci(ci.get('cpt50'), True)} | {_pct(x['cpt80'])}{_ci(ci.get('cpt80'), True)} |")
    L += ["", "Quality strong-only / weak-only: " + "; ".join(
        f"{s} {per['quality_strong']:.3f} / {per['quality_weak']:.3f}" for s, per in m["sets"].items()) + ".", ""]
    names = list(m["scorers"])
    L += ["## Per category (APGR / CPT(50 %))", "",
          "Categories the data has: MMLU subjects grouped as STEM, humanities, social sciences, other; GSM8K is math. "
          "arena-bench-v1 has no categories. `gap` = strong-only minus weak-only quality.", "",
          "| category | rows | gap | " + " | ".join(names) + " |", "|---|---:|---:|" + "---:|" * len(names)]
    for cat, row in m["categories"].items():
        cells = [("—" if row[n] is None else f"{row[n]['apgr']:.3f} / {_pct(row[n]['cpt50'])}") for n in names]
        L.append(f"| {cat} | {row['rows']} | {row['gap']:.3f} | " + " | ".join(cells) + " |")
    if m.get("category_labelled"):
        L += ["", "## Per category, category-labelled prompts (cross-validated for cv)", "",
              "arena-hard v2.0 (math, coding, creative writing), vicuna-bench (categories), HumanEval (coding): "
              "no model answers, so no routing curve; trained on with the category as the label (`label` "
              "column: 1 = a category where the strong model's lead is largest). Per scorer: AUC of the category's prompts "
              "over writing + roleplay prompts (0.5 = no separation) / share of the category at or above the default "
              "`strong` threshold.", "",
              "| category | rows | label | " + " | ".join(names) + " |", "|---|---:|---:|" + "---:|" * len(names)]
        for cat, row in m["category_labelled"].items():
            cells = []
            for n in names:
                r = row[n]
                a = "—" if r["auc_vs_writing_roleplay"] is None or r["auc_vs_writing_roleplay"] != r["auc_vs_writing_roleplay"] \
                    else f"{r['auc_vs_writing_roleplay']:.3f}"
                cells.append(f"{a} / {_pct(r['share_ge_strong'])}")
            L.append(f"| {cat} | {row['rows']} | {row['label']} | " + " | ".join(cells) + " |")
    for xname, x in m.get("external", {}).items():
        xn = [n for n in names if n in x["scorers"]]
        L += ["", f"## External set `{x['file']}` (measured only: never trained, calibrated or tuned on)", "",
              f"{x['rows']} prompts; quality strong-only / weak-only {x['quality_strong']:.3f} / {x['quality_weak']:.3f}. "
              "Scored by the fixed scorers only" + (f" (not by {', '.join(x['not_scored'])}: those score the data's own rows)"
                                                   if x["not_scored"] else "") + "; 95 % bootstrap intervals by prompt.", "",
              "| scorer | APGR | CPT(50 %) | CPT(80 %) |", "|---|---:|---:|---:|"]
        for n in xn:
            v = x["scorers"][n]
            ci = v["ci95"] or {}
            L.append(f"| {n} | {v['apgr']:.3f}{_ci(ci.get('apgr'), False)} | {_pct(v['cpt50'])}{_ci(ci.get('cpt50'), True)} | "
                     f"{_pct(v['cpt80'])}{_ci(ci.get('cpt80'), True)} |")
        if x["categories"]:
            L += ["", "Per category: APGR / CPT(50 %) (a category's own routing curve; `gap` = strong-only minus weak-only "
                  "quality, the denominator of a category's PGR: with a gap near 0 the category's APGR is noise and can leave 0–1; "
                  "`≥ strong` = share of the category at or above the default `strong` threshold).", "",
                  "| category | rows | gap | " + " | ".join(xn) + " | ≥ strong (" + ", ".join(xn) + ") |",
                  "|---|---:|---:|" + "---:|" * len(xn) + "---:|"]
            for cat, row in x["categories"].items():
                cells = [("—" if row[n] is None else f"{row[n]['apgr']:.3f} / {_pct(row[n]['cpt50'])}") for n in xn]
                shares = ", ".join("—" if row[n] is None or row[n].get("share_ge_strong") is None else _pct(row[n]["share_ge_strong"])
                                   for n in xn)
                L.append(f"| {cat} | {row['rows']} | {row['gap']:.2f} | " + " | ".join(cells) + f" | {shares} |")
    if "calibration" in m:
        c = m["calibration"]
        L += ["", "## Thresholds", "",
              f"Default thresholds {c['thresholds']} (`nadir_extproc/routing/model/calibration.json`), calibrated on "
              f"{c.get('data', '?')} to the PGR targets {c['targets']} (mid: a provider without a mid model sends "
              "this band to its strong model). On the cross-validated scores of each set:", "",
              "| data set | score ≥ mid: strong share / PGR | score ≥ strong: strong share / PGR |", "|---|---:|---:|"]
        for s, at in c["at_thresholds_cv"].items():
            L.append(f"| {s} | " + " | ".join(f"{_pct(at[t]['strong_share'])} / {_pct(at[t]['pgr'])}" if t in at else "—" for t in ("mid", "strong")) + " |")
    for name, ch in m.get("checks", {}).items():
        L += ["", f"## Prompts outside the data ({name} model, default thresholds {m['thresholds']})", ""]
        for c in ch.get("chat_sets", [ch["chat"]] if "chat" in ch else []):
            L.append(f"- Hand-labelled chat set `{c['file']}` ({c['rows'] - c['hard']} easy, {c['hard']} hard): AUC {c['auc']:.3f}; "
                     f"tiers weak/mid/strong — OpenAI easy {_tiers(c['by_provider']['openai']['easy'])}, hard "
                     f"{_tiers(c['by_provider']['openai']['hard'])}; two-tier providers easy {_tiers(c['by_provider']['anthropic']['easy'])}, "
                     f"hard {_tiers(c['by_provider']['anthropic']['hard'])}.")
            if c.get("by_kind"):
                L.append("  On the intended side per kind (easy: weak tier; hard: strong tier): "
                         + ", ".join(f"{k} {a}/{b}" for k, (a, b) in c["by_kind"].items()) + ".")
        if "arena_hard_categories" in ch:
            L.append("- arena-hard v2.0: AUC of " + ", ".join(f"{k} prompts over creative writing {v:.3f}" for k, v in ch["arena_hard_categories"].items())
                     + " (0.5 = no separation; in-sample for a model trained on these categories, as the shipped one is: "
                     "the cross-validated figures are in the category table).")
        L += ["", "| demo prompt | score | tier | on a two-tier provider |", "|---|---:|---|---|"]
        for d in ch["demo"]:
            L.append(f"| {d['prompt'].replace('|', '/').replace(chr(10), ' ')} | {d['score']:.3f} | {d['tier']} | {d['two_tier_provider']} |")
    return "\n".join(L) + "\n"


def _tiers(d: dict[str, int]) -> str:
    return " / ".join(str(d.get(t, 0)) for t in ("weak", "mid", "strong"))


def _plot(curves: dict[str, dict[str, Curve]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(3, len(curves))
    nrow = -(-len(curves) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 4.4 * nrow), dpi=100, squeeze=False)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    styles = {"cv": "-", "cv-difficulty": (0, (3, 1)), "shipped": "-.", "rules": "--", "length": (0, (5, 1, 1, 1)), "random": ":"}
    for ax, (name, cs) in zip(axes.flat, curves.items()):
        for scorer, c in cs.items():
            ax.plot(100 * c.x, 100 * c.pgr, linestyle=styles.get(scorer, "-"), label=f"{scorer} (APGR {c.apgr():.3f})")
        ax.set_title(SET_NAMES.get(name, name), fontsize=9)
        ax.set_xlabel("strong-model calls (%)")
        ax.set_ylabel("quality gap recovered (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
