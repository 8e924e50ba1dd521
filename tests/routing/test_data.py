"""Training data: labels from measured answers only, contaminated prompts dropped, folds by subject.
Reads ../shared/data/prompts in place; skipped when absent."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from nadir_extproc.routing.data import (MMLU_CATEGORY, arena_bench, category_rows, contaminated, folds, load, load_all,
                                       mmlu_gsm8k, template_source)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "prompts"
pytestmark = pytest.mark.skipif(not (DATA / "arena_bench_v1_scores.jsonl").exists(), reason=f"prompt data not found at {DATA}")


@pytest.fixture(scope="module")
def rows():
    return load(DATA)


def test_counts_after_dropping_contaminated_prompts(rows):
    # SOURCES.md: MMLU 14,042 rows, GSM8K 1,319; the contaminated lists name 5 MMLU and 12 GSM8K prompts.
    assert sum(e.source == "mmlu" for e in rows) == 14_042 - 5
    assert sum(e.source == "gsm8k" for e in rows) == 1_319 - 12
    assert sum(e.source == "arena" for e in rows) == 200
    bad = contaminated(DATA)
    assert not any(" ".join(e.prompt.split()) in bad for e in rows)
    # Only labelled sources: no weakly labelled (whole-source) rows.
    assert {e.source for e in rows} == {"mmlu", "gsm8k", "arena"}


def test_difficulty_label_is_weak_wrong():
    lab = [e for e in load(DATA, "difficulty") if e.source != "arena"]
    assert all(e.label == int(e.weak_q == 0.0) for e in lab)
    # SOURCES.md: Mixtral is right on 68.1 % of MMLU -> about 31.9 % of 14,037 rows labelled 1.
    assert abs(sum(e.label for e in lab if e.source == "mmlu") / 14_037 - 0.319) < 0.002
    # SOURCES.md: Mixtral right on 842 of 1,319 GSM8K prompts (before dropping 12 contaminated ones).
    assert 477 - 12 <= sum(e.label for e in lab if e.source == "gsm8k") <= 477


def test_gap_label_is_strong_right_and_weak_wrong(rows):
    assert [e.label for e in rows if e.source != "arena"] == [e.label for e in mmlu_gsm8k(DATA, label="gap")]  # the default
    lab = mmlu_gsm8k(DATA, label="gap")
    assert all(e.label == int(e.strong_q == 1.0 and e.weak_q == 0.0) for e in lab)
    # SOURCES.md: 2,497 MMLU rows where only GPT-4 is right (before dropping contaminated rows).
    assert 2_490 <= sum(e.label for e in lab if e.source == "mmlu") <= 2_497
    with pytest.raises(ValueError):
        load(DATA, label="vibes")
    assert all(e.category == MMLU_CATEGORY[e.group.split("/", 1)[1]] for e in lab if e.source == "mmlu")
    assert all(e.category == "math" for e in lab if e.source == "gsm8k")


def test_arena_labels_by_hand():
    # Recompute both labels from the raw scores file for every question, split at the median.
    scores: dict[str, dict[str, float]] = {}
    for line in (DATA / "arena_bench_v1_scores.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        scores.setdefault(r["question_id"], {})[r["model"]] = r["score"]
    gap, weak_mean = {}, {}
    for q, sc in scores.items():
        g4 = [v for m, v in sc.items() if m.startswith("gpt-4")]
        other = [v for m, v in sc.items() if not m.startswith("gpt-4")]
        gap[q] = sum(g4) / len(g4) - sum(other) / len(other)
        weak_mean[q] = sum(other) / len(other)
    med_gap = statistics.median(gap.values())
    med_weak = statistics.median(weak_mean.values())
    ex, ex_gap = arena_bench(DATA, label="difficulty"), arena_bench(DATA)
    assert len(ex) == len(ex_gap) == 200
    for e, g in zip(ex, ex_gap):
        q = e.group.split("/", 1)[1]
        assert e.label == int(weak_mean[q] < med_weak)  # difficulty: the twelve weaker models score low
        assert g.label == int(gap[q] > med_gap)  # gap: GPT-4 leads by more than the median lead
        assert e.strong_q == scores[q].get("gpt-4-1106-preview") or e.strong_q is None
    # Median split: about half the prompts are labelled 1.
    assert 90 <= sum(e.label for e in ex) <= 110 and 90 <= sum(e.label for e in ex_gap) <= 110


def test_folds_keep_a_subject_together(rows):
    f = folds(rows, 5, seed=7)
    by_subject: dict[str, set[int]] = {}
    for e, k in zip(rows, f):
        if e.source == "mmlu":
            by_subject.setdefault(e.group, set()).add(k)
    assert len(by_subject) == 57 and all(len(v) == 1 for v in by_subject.values())
    assert set(f) == {0, 1, 2, 3, 4}
    # Every fold holds some of every source; reproducible.
    for k in range(5):
        assert {e.source for e, j in zip(rows, f) if j == k} == {"mmlu", "gsm8k", "arena"}
    assert folds(rows, 5, seed=7) == f


def test_mmlu_categories_cover_every_subject():
    subjects = {e.group.split("/", 1)[1] for e in mmlu_gsm8k(DATA) if e.source == "mmlu"}
    assert subjects == set(MMLU_CATEGORY)
    assert set(MMLU_CATEGORY.values()) == {"STEM", "humanities", "social sciences", "other"}


def test_category_rows_by_hand():
    # Counts from the files (SOURCES.md): arena-hard v2.0 253 coding + 247 math + 250 creative writing;
    # vicuna-bench 75 rows, of which math 2, coding 4, fermi 10 "strong" and generic, knowledge,
    # roleplay, writing, counterfactual, common-sense (10, 10, 10, 9, 10, 10) "weak"; HumanEval 164
    # (none of them on a contaminated list).
    rows = category_rows(DATA)
    by = {}
    for e in rows:
        by.setdefault((e.source, e.category, e.label), 0)
        by[(e.source, e.category, e.label)] += 1
    assert by == {
        ("arena_hard_v2", "coding", 1): 253, ("arena_hard_v2", "math", 1): 247, ("arena_hard_v2", "writing", 0): 250,
        ("vicuna", "math", 1): 2, ("vicuna", "coding", 1): 4, ("vicuna", "fermi", 1): 10,
        ("vicuna", "generic", 0): 10, ("vicuna", "knowledge", 0): 10, ("vicuna", "roleplay", 0): 10,
        ("vicuna", "writing", 0): 9, ("vicuna", "counterfactual", 0): 10, ("vicuna", "common-sense", 0): 10,
        ("humaneval", "coding", 1): 164,
    }
    # No model answers: never on a routing curve.
    assert all(e.strong_q is None and e.weak_q is None for e in rows)
    first = json.loads((DATA / "HumanEval.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [e for e in rows if e.source == "humaneval"][0].prompt == first["prompt"]
    # load_all = the answer-labelled rows, then these, then the hand-written templates, in this order.
    assert [e.group for e in load_all(DATA)] == ([e.group for e in load(DATA)] + [e.group for e in rows]
                                                 + [e.group for e in template_source()])
