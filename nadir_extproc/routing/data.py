"""Router training and evaluation data, read in place from a prompts folder (``../shared/data/prompts``).

Three sources labelled from measured model answers (``load``), nothing labelled "strong needed"
by default (a source is never labelled 1 as a whole). Two label rules (``LABELS``):

- ``gap`` (the default, issue 15's recipe, what the shipped model is trained on): 1 = the strong side
  beats the weak side — MMLU/GSM8K: GPT-4 right and Mixtral wrong; arena-bench-v1: the mean judge
  score of the GPT-4 models minus the mean of the other twelve is above the median.
- ``difficulty`` (kept for comparison, ``router eval -s cv-difficulty``): 1 = the prompt is hard
  for the weak side — MMLU/GSM8K: Mixtral answered wrong; arena-bench-v1: the mean judge score of
  the twelve non-GPT-4 models is below the median.

Besides those, ``category_rows`` adds prompts labelled by their benchmark category (arena-hard
v2.0, vicuna-bench, HumanEval): math, coding and Fermi-estimation prompts 1; writing,
roleplay, generic, knowledge, counterfactual and common-sense prompts 0 — the categories where
chat benchmarks measure the strong model's largest and smallest lead (``STRONG_CATEGORIES``).
These are weak labels (a category, not an answer); ``load_all`` = ``load`` + ``category_rows`` is
what ``train`` fits on.

- **MMLU** (``routellm_mmlu_responses.jsonl``, 14,042 rows, RouteLLM) and **GSM8K**
  (``routellm_gsm8k_responses.csv``, 1,319 rows): per-model correctness of GPT-4
  (gpt-4-1106-preview, the strong model) and Mixtral-8x7B-Instruct (the weak model). Quality for
  the routing curve: ``strong_q``/``weak_q`` = 1.0 for a correct answer, else 0.0. ``group`` = ``mmlu/<subject>`` or ``gsm8k``; ``category`` =
  the MMLU category of the subject (``MMLU_CATEGORY``: STEM, humanities, social sciences, other) or
  ``math`` for GSM8K.
- **arena-bench-v1** (``arena_bench_v1_question.jsonl`` + ``arena_bench_v1_scores.jsonl``, 200 real
  Chatbot Arena prompts, GPT-4 judge scores 1-10 for 14 models; the GPT-4 models are
  ``ARENA_STRONG``, means over the models that were scored). Quality for the
  routing curve is the judge score of the same pair as MMLU/GSM8K: ``strong_q`` = gpt-4-1106-preview,
  ``weak_q`` = Mixtral-8x7B-Instruct-v0.1 (``None`` when either was not scored: such a prompt
  trains but is not evaluated). The prompt is the first turn. ``group`` = ``arena/<question_id>``,
  no category (the data has none).

Every prompt listed in ``routellm_*_contaminated_prompts.jsonl`` (either field, compared after
collapsing whitespace) is dropped from every source.

Cross-validation folds (``folds``): MMLU by subject (all questions of a subject in one fold), GSM8K
and arena-bench by prompt; seeded, so a given seed always gives the same folds.
"""

from __future__ import annotations

import csv
import json
import random
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
#: arena-bench-v1 model names of the strong side of the labels; the other 12 are the weak side.
ARENA_STRONG = ("gpt-4-0314", "gpt-4-1106-preview")
#: The arena-bench-v1 pair the routing curve is measured on (the same pair as MMLU/GSM8K).
ARENA_PAIR = ("gpt-4-1106-preview", "Mixtral-8x7B-Instruct-v0.1")
SOURCES = ("mmlu", "gsm8k", "arena")
#: Category-labelled (weakly supervised) sources (``category_rows``): trained on, never evaluated
#: as routing curves (no model answers), reported per category from out-of-fold scores.
CATEGORY_SOURCES = ("arena_hard_v2", "vicuna", "humaneval", "templates")
#: Label rules (module docstring); the first is the default.
LABELS = ("gap", "difficulty")
#: Categories whose prompts are labelled "strong needed" / "weak enough" in ``category_rows``
#: (MT-bench findings, Zheng et al. 2023 "Judging LLM-as-a-judge", fig. 3 and RouteLLM's MT-bench
#: per-category scores: the strong model's lead is largest on math, reasoning and coding and
#: smallest on writing, roleplay and knowledge questions).
STRONG_CATEGORIES = frozenset({"math", "coding", "fermi"})
WEAK_CATEGORIES = frozenset({"writing", "roleplay", "generic", "knowledge", "counterfactual", "common-sense"})

#: MMLU subject -> category, after Hendrycks et al.'s subject grouping (STEM, humanities, social
#: sciences, other; health and business subjects are "other").
MMLU_CATEGORY: dict[str, str] = {
    **dict.fromkeys(
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
        "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
        "high_school_mathematics high_school_physics high_school_statistics machine_learning".split(),
        "STEM",
    ),
    **dict.fromkeys(
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
        "prehistory professional_law world_religions".split(),
        "humanities",
    ),
    **dict.fromkeys(
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy".split(),
        "social sciences",
    ),
    **dict.fromkeys(
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management "
        "marketing medical_genetics miscellaneous nutrition professional_accounting professional_medicine "
        "virology".split(),
        "other",
    ),
}

_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled prompt.

    ``source`` (``mmlu``, ``gsm8k``, ``arena``), ``group`` (the unit of a cross-validation fold),
    ``prompt``, ``label`` 0/1 (by the label rule: 1 = hard for the weak side, or the strong side
    wins), ``strong_q``/``weak_q`` quality of
    the strong and the weak model's answer (correctness 0/1 or judge score 1-10; ``None`` = not
    measured, not evaluated), ``category`` (``None`` when the data has none)."""

    source: str
    group: str
    prompt: str
    label: int
    strong_q: float | None = None
    weak_q: float | None = None
    category: str | None = None


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def contaminated(data_dir: Path) -> set[str]:
    """Whitespace-collapsed prompts listed in any ``routellm_*_contaminated_prompts.jsonl``."""
    out: set[str] = set()
    for p in sorted(data_dir.glob("routellm_*_contaminated_prompts.jsonl")):
        for row in _jsonl(p):
            for k in ("train_prompt", "eval_prompt"):
                if isinstance(row.get(k), str):
                    out.add(_norm(row[k]))
    return out


def _bool(v: object) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def _check(label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"unknown label rule {label!r} (one of {', '.join(LABELS)})")


def mmlu_gsm8k(data_dir: Path, bad: set[str] | None = None, label: str = "gap") -> list[Example]:
    """MMLU and GSM8K rows with per-model correctness (contaminated prompts dropped), labelled by
    ``label`` (``LABELS``). Raises ``FileNotFoundError`` if either file is missing."""
    _check(label)
    bad = contaminated(data_dir) if bad is None else bad
    rule = (lambda s, w: int(not w)) if label == "difficulty" else (lambda s, w: int(s and not w))
    out: list[Example] = []
    for row in _jsonl(data_dir / "routellm_mmlu_responses.jsonl"):
        if _norm(row["prompt"]) in bad:
            continue
        s, w = _bool(row[f"{STRONG_MODEL}_correct"]), _bool(row[f"{WEAK_MODEL}_correct"])
        subj = row["subject"]
        out.append(Example("mmlu", f"mmlu/{subj}", row["prompt"], rule(s, w), float(s), float(w),
                           MMLU_CATEGORY.get(subj, "other")))
    with (data_dir / "routellm_gsm8k_responses.csv").open(encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if _norm(row["prompt"]) in bad:
                continue
            s, w = _bool(row[STRONG_MODEL]), _bool(row[WEAK_MODEL])
            out.append(Example("gsm8k", f"gsm8k/{i}", row["prompt"], rule(s, w), float(s), float(w), "math"))
    return out


def arena_bench(data_dir: Path, bad: set[str] | None = None, label: str = "gap") -> list[Example]:
    """arena-bench-v1 prompts labelled by ``label`` (module docstring), split at the source's median.

    Prompts with no score from either side are skipped. Raises ``FileNotFoundError`` if either file
    is missing."""
    _check(label)
    bad = contaminated(data_dir) if bad is None else bad
    scores: dict[str, dict[str, float]] = {}
    for row in _jsonl(data_dir / "arena_bench_v1_scores.jsonl"):
        scores.setdefault(row["question_id"], {})[row["model"]] = float(row["score"])
    rows = []
    for q in _jsonl(data_dir / "arena_bench_v1_question.jsonl"):
        turns = q.get("turns") or []
        prompt = turns[0] if turns and isinstance(turns[0], str) else None
        sc = scores.get(q["question_id"], {})
        strong = [v for m, v in sc.items() if m in ARENA_STRONG]
        weak = [v for m, v in sc.items() if m not in ARENA_STRONG]
        if not prompt or not prompt.strip() or _norm(prompt) in bad or not strong or not weak:
            continue
        # Both rules as "higher = label 1": the strong side's lead, or how badly the weak side does.
        value = statistics.fmean(strong) - statistics.fmean(weak) if label == "gap" else -statistics.fmean(weak)
        rows.append((q["question_id"], prompt, value, sc.get(ARENA_PAIR[0]), sc.get(ARENA_PAIR[1])))
    med = statistics.median(r[2] for r in rows) if rows else 0.0
    out = []
    for qid, prompt, value, s, w in rows:
        pair = (s, w) if s is not None and w is not None else (None, None)
        out.append(Example("arena", f"arena/{qid}", prompt, int(value > med), pair[0], pair[1], None))
    return out


def load(data_dir: Path, label: str = "gap") -> list[Example]:
    """All examples labelled from model answers: MMLU, GSM8K, then arena-bench-v1, by the label rule
    ``label`` (``FileNotFoundError`` if a file is missing, ``ValueError`` for an unknown rule)."""
    bad = contaminated(data_dir)
    return mmlu_gsm8k(data_dir, bad, label) + arena_bench(data_dir, bad, label)


def category_rows(data_dir: Path, bad: set[str] | None = None) -> list[Example]:
    """Prompts labelled by their benchmark category (weak supervision; ``CATEGORY_SOURCES``):

    - ``arena_hard_v2`` (``arena_hard_v2.0_question.jsonl``, 750): subcategory ``math`` and
      ``coding`` (hard real-user prompts) 1, ``creative_writing`` 0 (category ``writing``);
    - ``vicuna`` (``vicuna_bench_question.jsonl``, 75): category in ``STRONG_CATEGORIES`` 1, in
      ``WEAK_CATEGORIES`` 0, any other category dropped;
    - ``humaneval`` (``HumanEval.jsonl``, 164 function-completion prompts): 1, category ``coding``.

    (GSM8K train's 7,473 word problems, all "math", were tried and left out: they made the
    cross-validated GSM8K ranking worse than random, 0.480 APGR, by pushing every word problem up.)

    No model answers: ``strong_q``/``weak_q`` are ``None`` (never on a routing curve). ``group`` =
    ``<source>/<row number>``. Contaminated prompts are dropped. ``FileNotFoundError`` if a file is
    missing."""
    bad = contaminated(data_dir) if bad is None else bad
    out: list[Example] = []

    def add(source: str, i: int, prompt: object, label: int, category: str) -> None:
        if isinstance(prompt, str) and prompt.strip() and _norm(prompt) not in bad:
            out.append(Example(source, f"{source}/{i}", prompt, label, None, None, category))

    for i, r in enumerate(_jsonl(data_dir / "arena_hard_v2.0_question.jsonl")):
        sub = str(r.get("subcategory") or r.get("category"))
        cat = "writing" if sub == "creative_writing" else sub
        if cat in STRONG_CATEGORIES or cat in WEAK_CATEGORIES:
            add("arena_hard_v2", i, r.get("prompt"), int(cat in STRONG_CATEGORIES), cat)
    for i, r in enumerate(_jsonl(data_dir / "vicuna_bench_question.jsonl")):
        cat = r.get("category")
        if cat in STRONG_CATEGORIES or cat in WEAK_CATEGORIES:
            add("vicuna", i, (r.get("turns") or [None])[0], int(cat in STRONG_CATEGORIES), cat)
    for i, r in enumerate(_jsonl(data_dir / "HumanEval.jsonl")):
        add("humaneval", i, r.get("prompt"), 1, "coding")
    return out


def template_source() -> list[Example]:
    """The hand-written ``templates`` rows (``routing.templates``): generic easy requests 0, generic
    short hard requests 1; weak labels by construction, no model answers, ``group`` = ``templates/<n>``."""
    from nadir_extproc.routing.templates import SOURCE, template_rows

    return [Example(SOURCE, f"{SOURCE}/{i}", p, label, None, None, kind)
            for i, (p, label, kind) in enumerate(template_rows())]


def load_all(data_dir: Path, label: str = "gap") -> list[Example]:
    """The training rows: ``load`` (answer-labelled), ``category_rows`` (category-labelled), then
    the hand-written ``templates`` rows (``template_source``)."""
    bad = contaminated(data_dir)
    return (mmlu_gsm8k(data_dir, bad, label) + arena_bench(data_dir, bad, label) + category_rows(data_dir, bad)
            + template_source())


def folds(examples: list[Example], k: int, seed: int) -> list[int]:
    """Fold number in ``[0, k)`` of every example (module docstring: MMLU by subject, the others by
    prompt), seeded. Groups are shuffled per source and dealt round-robin, so each fold holds
    about 1/k of every source."""
    out = [0] * len(examples)
    rnd = random.Random(seed)
    for source in sorted({e.source for e in examples}):
        groups = sorted({e.group for e in examples if e.source == source})
        rnd.shuffle(groups)
        fold_of = {g: i % k for i, g in enumerate(groups)}
        for i, e in enumerate(examples):
            if e.source == source:
                out[i] = fold_of[e.group]
    return out
