"""Training data: labels, contaminated prompts dropped, split held out by subject/source.
Reads ../shared/data/prompts in place; skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from nadir_extproc.routing.data import contaminated, labelled, split, weakly_labelled

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "prompts"
pytestmark = pytest.mark.skipif(not (DATA / "routellm_mmlu_responses.jsonl").exists(), reason=f"prompt data not found at {DATA}")


@pytest.fixture(scope="module")
def rows():
    return labelled(DATA), weakly_labelled(DATA)


def test_counts_after_dropping_contaminated_prompts(rows):
    lab, weak = rows
    # SOURCES.md: MMLU 14,042 rows, GSM8K 1,319; the contaminated lists name 5 MMLU and 12 GSM8K prompts.
    assert sum(e.source == "mmlu" for e in lab) == 14_042 - 5
    assert sum(e.source == "gsm8k" for e in lab) == 1_319 - 12
    bad = contaminated(DATA)
    assert not any(" ".join(e.prompt.split()) in bad for e in lab + weak)


def test_label_is_strong_right_and_weak_wrong(rows):
    lab, _ = rows
    assert all(e.label == int(e.strong_ok and not e.weak_ok) for e in lab)
    # SOURCES.md: 2,497 MMLU rows where only GPT-4 is right (before dropping contaminated rows).
    assert 2_490 <= sum(e.label for e in lab if e.source == "mmlu") <= 2_497


def test_weak_labels(rows):
    _, weak = rows
    # arena-hard v0.1 (500) + v2.0 (750) -> 1; HumanEval 164 -> 1; vicuna 80: coding/math/fermi -> 1.
    assert sum(e.source == "arena_hard" for e in weak) == 1250
    assert all(e.label == 1 for e in weak if e.source in ("arena_hard", "humaneval"))
    # vicuna categories: coding 7 + math 3 + fermi 10 = 20 labelled 1, the other 60 labelled 0.
    assert sum(e.label for e in weak if e.source == "vicuna") == 20
    assert all(e.strong_ok is None for e in weak)


def test_split_is_by_subject_and_source(rows):
    lab, weak = rows
    train, test = split(lab + weak, seed=7)
    train_groups = {e.group for e in train}
    test_groups = {e.group for e in test}
    assert not train_groups & test_groups
    assert "gsm8k" in test_groups and not any(e.source == "gsm8k" for e in train)
    # 57 MMLU subjects, 25 % held out -> 14.
    assert len([g for g in test_groups if g.startswith("mmlu/")]) == 14
    assert all(e.strong_ok is None for e in train if not e.group.startswith("mmlu/"))
    assert split(lab + weak, seed=7)[1] == test  # reproducible
