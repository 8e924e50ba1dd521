"""Router training and evaluation data, read in place from a prompts folder (``../shared/data/prompts``).

Labels (``Example.label`` = 1 means "the strong model is needed"):

- **MMLU** (``routellm_mmlu_responses.jsonl``, 14,042 rows, RouteLLM) and **GSM8K**
  (``routellm_gsm8k_responses.csv``, 1,319 rows): per-model correctness of GPT-4 (gpt-4-1106-preview,
  the strong model) and Mixtral-8x7B-Instruct (the weak model). ``label = strong correct and weak
  wrong``. These rows keep both correctness bits (``strong_ok``, ``weak_ok``) for the routing curve;
  ``group`` is ``mmlu/<subject>`` or ``gsm8k``.
- **Weak labels** (no per-model correctness; training only, never evaluated; ``strong_ok`` and
  ``weak_ok`` are ``None``): arena-hard v0.1 and v2.0 questions -> 1 (prompts selected from Chatbot
  Arena for separating strong from weak models); HumanEval problems -> 1 (code synthesis, where the
  RouteLLM-era weak models trail GPT-4 by about 30 points); vicuna-bench questions -> 1 in the
  ``coding``, ``math`` and ``fermi`` categories, else 0 (everyday questions a small model answers well).
  Their rows carry a training weight of ``WEAK_WEIGHT[source]``: 0.25 for arena-hard and HumanEval
  (1,414 rows all labelled 1), 4.0 for vicuna-bench (the only everyday chat prompts, 80 rows, so they
  are not drowned by the hard ones); labelled rows weigh 1.

Every prompt listed in ``routellm_*_contaminated_prompts.jsonl`` (either field, compared after
collapsing whitespace) is dropped from every source.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Training weight of each weakly labelled source (module docstring).
WEAK_WEIGHT = {"arena_hard": 0.25, "humaneval": 0.25, "vicuna": 4.0}
STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Example:
    """One prompt: ``source`` (``mmlu``, ``gsm8k``, ``arena_hard``, ``humaneval``, ``vicuna``),
    ``group`` (the unit of the held-out split), ``label`` 0/1, ``weight``, and for labelled sources
    ``strong_ok``/``weak_ok`` (did each model answer correctly)."""

    source: str
    group: str
    prompt: str
    label: int
    weight: float = 1.0
    strong_ok: bool | None = None
    weak_ok: bool | None = None


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


def labelled(data_dir: Path) -> list[Example]:
    """MMLU and GSM8K rows with per-model correctness (contaminated prompts dropped).

    Raises ``FileNotFoundError`` if either file is missing."""
    bad = contaminated(data_dir)
    out: list[Example] = []
    for row in _jsonl(data_dir / "routellm_mmlu_responses.jsonl"):
        if _norm(row["prompt"]) in bad:
            continue
        s, w = _bool(row[f"{STRONG_MODEL}_correct"]), _bool(row[f"{WEAK_MODEL}_correct"])
        out.append(Example("mmlu", f"mmlu/{row['subject']}", row["prompt"], int(s and not w), 1.0, s, w))
    with (data_dir / "routellm_gsm8k_responses.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if _norm(row["prompt"]) in bad:
                continue
            s, w = _bool(row[STRONG_MODEL]), _bool(row[WEAK_MODEL])
            out.append(Example("gsm8k", "gsm8k", row["prompt"], int(s and not w), 1.0, s, w))
    return out


def weakly_labelled(data_dir: Path) -> list[Example]:
    """Arena-hard, HumanEval and vicuna-bench prompts with the weak labels of the module docstring
    (files that are absent are skipped)."""
    bad = contaminated(data_dir)
    out: list[Example] = []

    def add(source: str, group: str, prompt: object, label: int) -> None:
        if isinstance(prompt, str) and prompt.strip() and _norm(prompt) not in bad:
            out.append(Example(source, group, prompt, label, WEAK_WEIGHT[source]))

    for name in ("arena_hard_v0.1_question.jsonl", "arena_hard_v2.0_question.jsonl"):
        p = data_dir / name
        if p.exists():
            for row in _jsonl(p):
                add("arena_hard", f"arena_hard/{row.get('cluster') or row.get('subcategory') or ''}", row.get("prompt"), 1)
    p = data_dir / "HumanEval.jsonl"
    if p.exists():
        for row in _jsonl(p):
            add("humaneval", "humaneval", row.get("prompt"), 1)
    p = data_dir / "vicuna_bench_question.jsonl"
    if p.exists():
        for row in _jsonl(p):
            cat = row.get("category", "")
            turns = row.get("turns") or []
            add("vicuna", f"vicuna/{cat}", "\n".join(t for t in turns if isinstance(t, str)), int(cat in ("coding", "math", "fermi")))
    return out


def split(examples: list[Example], seed: int, test_share: float = 0.25) -> tuple[list[Example], list[Example]]:
    """Held-out split by subject/source, never by row: the test side is a seeded random
    ``test_share`` of the MMLU subjects (rounded to whole subjects) plus all of GSM8K (a source the
    model never trains on); weakly labelled rows always train. Returns ``(train, test)``."""
    import random

    subjects = sorted({e.group for e in examples if e.source == "mmlu"})
    k = round(len(subjects) * test_share)
    held = set(random.Random(seed).sample(subjects, k)) | {"gsm8k"}
    train = [e for e in examples if e.group not in held or e.strong_ok is None]
    test = [e for e in examples if e.group in held and e.strong_ok is not None]
    return train, test
