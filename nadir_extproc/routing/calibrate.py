"""Threshold calibration: the score thresholds that reach a stated quality target on handed data.

A routing policy sends a prompt to the strong model when its score is at or above a threshold.
On a calibration set with the quality of both models' answers per prompt (correctness 0/1 or a
judge score), routing ``score >= t`` strong gives

    quality(t) = mean(strong_q if score >= t else weak_q)
    PGR(t)     = (quality(t) - mean(weak_q)) / (mean(strong_q) - mean(weak_q))     (RouteLLM)

``threshold_for(target)`` is the **highest** threshold whose PGR reaches the target, i.e. the
fewest strong calls that do (a threshold halfway between the last score sent strong and the next
lower score, so prompts scoring like the calibration ones fall on the intended side). A target can
also be stated as a share of the strong model's quality (``quality(t) >= q * mean(strong_q)``,
"keep 90 % of the strong model's quality"), converted to the PGR target
``(q * mean(strong_q) - mean(weak_q)) / (mean(strong_q) - mean(weak_q))``.

Tiers: the policy's ``mid`` threshold gets the higher-quality target (more prompts reach mid or
strong; on a provider without a mid model that band goes to the strong model, so it sets that
provider's quality) and ``strong`` the lower one. ``DEFAULT_TARGETS``: mid at PGR 0.8, strong at
PGR 0.5, on the out-of-fold scores of arena-bench-v1 (real chat prompts, GPT-4-1106 vs Mixtral judge
scores) — ``train.train`` writes the result to ``model/calibration.json`` and
``policy.DEFAULT_THRESHOLDS`` carries those numbers.

Operators recalibrate for their own model pair with ``nadir-extproc router calibrate`` (a JSONL of
``{"prompt", "strong", "weak"}`` quality rows, scored by the shipped model).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: tier -> PGR target of the default thresholds (module docstring).
DEFAULT_TARGETS: dict[str, float] = {"mid": 0.8, "strong": 0.5}
#: The source the default thresholds are calibrated on.
DEFAULT_SOURCE = "arena"


def pgr_target_from_quality(share: float, strong_q: np.ndarray, weak_q: np.ndarray) -> float:
    """The PGR target equivalent to keeping ``share`` of the strong model's mean quality.

    Raises ``ValueError`` when both models have the same mean quality."""
    s, w = float(np.mean(strong_q)), float(np.mean(weak_q))
    if s == w:
        raise ValueError("strong and weak models have the same mean quality: no gap to recover")
    return (share * s - w) / (s - w)


def threshold_for(scores: np.ndarray, strong_q: np.ndarray, weak_q: np.ndarray, target_pgr: float) -> dict[str, float]:
    """The highest threshold whose PGR reaches ``target_pgr`` (module docstring).

    Returns ``{"threshold", "strong_share", "pgr", "quality_share"}`` measured on this data.
    Equal scores move together (a threshold cannot split them). A target of 0 or less gives
    threshold 1.0 (above any score: nothing strong, PGR 0) when that already meets it; a target no
    threshold reaches gives the threshold of the best PGR. Raises ``ValueError`` for an empty set or
    no quality gap."""
    s = np.asarray(scores, dtype=np.float64)
    so = np.asarray(strong_q, dtype=np.float64)
    wo = np.asarray(weak_q, dtype=np.float64)
    if s.size == 0:
        raise ValueError("empty calibration set")
    gap = so.sum() - wo.sum()
    if gap == 0:
        raise ValueError("strong and weak models have the same total quality: no gap to recover")
    order = np.argsort(-s, kind="mergesort")
    ss, gain = s[order], (so - wo)[order]
    n = s.size
    # Candidate cut points: after each block of equal scores (descending).
    best = None  # (pgr, threshold, strong count)
    cum = 0.0
    cand = [(0.0, 1.0 if ss[0] < 1.0 else math.nextafter(1.0, 2.0), 0)]
    i = 0
    while i < n:
        j = i
        while j + 1 < n and ss[j + 1] == ss[i]:
            j += 1
        cum += gain[i : j + 1].sum()
        nxt = ss[j + 1] if j + 1 < n else -math.inf
        t = float((ss[j] + nxt) / 2.0) if j + 1 < n else float(ss[j])
        t = min(t, float(ss[j]))
        cand.append((cum / gap, t, j + 1))
        i = j + 1
    for pgr, t, k in cand:
        if pgr >= target_pgr - 1e-12:
            best = (pgr, t, k)
            break
    if best is None:
        best = max(cand, key=lambda c: (c[0], c[1]))
    pgr, t, k = best
    quality = (wo.sum() + pgr * gap) / n
    return {"threshold": t, "strong_share": k / n, "pgr": float(pgr), "quality_share": float(quality / so.mean()) if so.mean() else float("nan")}


def calibrate(scores: np.ndarray, strong_q: np.ndarray, weak_q: np.ndarray, targets: dict[str, float]) -> dict[str, Any]:
    """Policy thresholds for ``targets`` (tier -> PGR target) on this data.

    Returns ``{"thresholds": {"weak": 0.0, tier: t, ...}, "achieved": {tier: threshold_for(...)},
    "targets": targets, "rows": n, "quality_strong", "quality_weak"}``. Raises ``ValueError`` when
    the thresholds would not rise with the tiers (``mid`` above ``strong``) or there is no gap."""
    achieved = {tier: threshold_for(scores, strong_q, weak_q, t) for tier, t in targets.items()}
    th = {"weak": 0.0, **{tier: round(a["threshold"], 6) for tier, a in achieved.items()}}
    if "mid" in th and "strong" in th and th["mid"] > th["strong"]:
        raise ValueError(f"the mid target gives a higher threshold ({th['mid']}) than the strong one ({th['strong']}): "
                         "give mid the higher quality target")
    return {
        "thresholds": th,
        "targets": dict(targets),
        "achieved": achieved,
        "rows": int(np.asarray(scores).size),
        "quality_strong": float(np.mean(strong_q)),
        "quality_weak": float(np.mean(weak_q)),
    }


def calibrate_policy(examples: list, scores: np.ndarray, targets: dict[str, float], source: str = DEFAULT_SOURCE) -> dict[str, Any]:
    """``calibrate`` on the rows of ``source`` that have both qualities (``examples`` and ``scores``
    aligned), noting the data used."""
    idx = [i for i, e in enumerate(examples) if e.source == source and e.strong_q is not None]
    s = np.asarray(scores)[idx]
    so = np.array([examples[i].strong_q for i in idx])
    wo = np.array([examples[i].weak_q for i in idx])
    out = calibrate(s, so, wo, targets)
    out["data"] = f"{source} out-of-fold (cross-validated) scores"
    return out
