"""The hand-written ``templates`` training source (nadir_extproc/routing/templates.py) must not copy
or paraphrase the prompts the router is checked on: the demo's (nadir_extproc/demo.py, which holds
the test_router.py chit-chat/hard prompts) and the hand-labelled chat sets (docs/router-eval:
chat_prompts, kinds_val, kinds_test)."""

import json
import re
from pathlib import Path

from nadir_extproc.demo import PROMPTS
from nadir_extproc.routing.data import template_source
from nadir_extproc.routing.templates import template_rows

ROOT = Path(__file__).resolve().parents[2]
N = 4  # no shared run of N words
MAX_RATIO = 0.35  # no row within this normalised edit distance


def words(s: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", s.lower())


def ngrams(s: str, n: int = N) -> set[tuple[str, ...]]:
    w = words(s)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def read_set(name: str) -> list[str]:
    return [json.loads(line)["prompt"] for line in (ROOT / "docs/router-eval" / name).read_text().splitlines() if line.strip()]


def protected() -> list[str]:
    chat = read_set("chat_prompts.jsonl")
    return [p for _, p in PROMPTS] + chat


def kinds_sets() -> list[str]:
    rows = read_set("kinds_val.jsonl") + read_set("kinds_test.jsonl") + read_set("kinds_final.jsonl")
    assert len(rows) == 100 + 85 + 98
    return rows


def test_template_rows_are_deterministic_balanced_and_unique():
    rows = template_rows()
    assert rows == template_rows()
    assert len({p for p, _, _ in rows}) == len(rows)
    easy = sum(1 for _, label, _ in rows if label == 0)
    hard = sum(1 for _, label, _ in rows if label == 1)
    assert easy >= 100 and hard >= 80
    assert all(e.source == "templates" and e.strong_q is None for e in template_source())


def test_no_template_row_copies_or_paraphrases_a_demo_or_chat_set_prompt():
    prot = [(p, p.lower().strip(), ngrams(p)) for p in protected()]
    bad = []
    for row, _, _ in template_rows():
        r = row.lower().strip()
        g = ngrams(row)
        for p, pl, pg in prot:
            shared = g & pg
            if shared:
                bad.append((row, p, "shares " + " ".join(next(iter(shared)))))
            elif abs(len(r) - len(pl)) <= MAX_RATIO * max(len(r), len(pl)) and edit_distance(r, pl) <= MAX_RATIO * max(len(r), len(pl)):
                bad.append((row, p, "edit distance"))
    assert not bad, bad[:10]


def test_the_checker_catches_a_near_copy():
    assert edit_distance("what is 17 + 25?", "what is 18 + 24?") <= MAX_RATIO * 16
    assert ngrams("Please derive the closed form of the sum") & ngrams("Derive the closed form of the sum 1 + 2 + ... + n.")


def test_no_template_row_copies_a_kinds_set_prompt():
    # The kinds sets were written by hand apart from the templates, on the same kinds: a one-line
    # sum is within a small edit distance of any other, and both sides name the famous examples of a
    # kind (quicksort's worst case, a mutable default argument), so shared word runs are expected.
    # The check here is an exact copy, case, spacing and end punctuation aside; docs/router-eval
    # reports the kinds figures also on the rows sharing no 4-word run with any template.
    def norm(p: str) -> str:
        return " ".join(p.lower().split()).rstrip("?.!")

    prot = {norm(p): p for p in kinds_sets()}
    bad = [(row, prot[norm(row)]) for row, _, _ in template_rows() if norm(row) in prot]
    assert not bad, bad[:10]
